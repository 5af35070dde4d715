"""End to end: the official `openai` Python client against a running openledger-worker.

The fixture generates a seeded base model and two PEFT adapters with the worker's own commands,
starts the worker on loopback, and stops it by process id.
"""
import json
import subprocess
import time
import urllib.request

import openai
import pytest

from workerlib import WORKER_BIN, free_port, serve  # noqa: F401 (free_port: used by other tests)


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    root = tmp_path_factory.mktemp("worker")
    base, adapters = root / "demo-base", root / "adapters"
    subprocess.run([WORKER_BIN, "gen-model", "--out", str(base), "--hidden", "64", "--layers", "2",
                    "--vocab", "400", "--max-positions", "256", "--seed", "42"], check=True)
    for name, seed in [("legal", 1), ("medical", 2)]:
        subprocess.run([WORKER_BIN, "gen-adapter", "--base", str(base), "--out", str(adapters / name),
                        "--rank", "8", "--seed", str(seed)], check=True)
    proc, url = serve(["--model", str(base), "--adapters", str(adapters)], root)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def client(worker):
    return openai.OpenAI(base_url=worker + "/v1", api_key="unused", max_retries=0)


def metric(url, name):
    text = urllib.request.urlopen(url + "/metrics").read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def test_models_lists_base_and_adapters(client):
    ids = [m.id for m in client.models.list().data]
    assert ids == ["demo-base", "legal", "medical"]


@pytest.mark.parametrize("model", ["legal", "medical"])
def test_completion_not_streamed(client, model):
    r = client.completions.create(model=model, prompt="A datanet is", max_tokens=8, temperature=0)
    assert r.object == "text_completion" and r.model == model
    assert isinstance(r.choices[0].text, str)
    assert r.choices[0].finish_reason in ("stop", "length")
    assert 1 <= r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


@pytest.mark.parametrize("model", ["legal", "medical"])
def test_completion_streamed_matches_not_streamed(client, model):
    whole = client.completions.create(model=model, prompt="The river runs", max_tokens=10, temperature=0)
    chunks = list(client.completions.create(model=model, prompt="The river runs", max_tokens=10, temperature=0,
                                            stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_chat_streamed_and_not_with_usage(client):
    messages = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "What is a snapshot?"}]
    r = client.chat.completions.create(model="legal", messages=messages, max_tokens=12, seed=5)
    assert r.choices[0].message.role == "assistant"
    stream = client.chat.completions.create(model="legal", messages=messages, max_tokens=12, seed=5, stream=True,
                                            stream_options={"include_usage": True})
    parts, usage, finish = [], None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            parts.append(c.delta.content or "")
            finish = c.finish_reason or finish
    assert "".join(parts) == r.choices[0].message.content, "same seed, same answer, streamed or not"
    assert usage.completion_tokens == r.usage.completion_tokens
    assert finish == r.choices[0].finish_reason


def test_two_adapters_answer_differently_and_base_differs_too(client):
    ask = lambda m: client.completions.create(model=m, prompt="Who gets paid", max_tokens=12, temperature=0).choices[0].text
    legal, medical, base = ask("legal"), ask("medical"), ask("demo-base")
    assert legal != medical
    assert base not in (legal, medical)
    assert ask("legal") == legal, "greedy decoding is deterministic"


def test_errors_are_openai_errors(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="no-such-adapter", prompt="x")
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="legal", prompt="x", max_tokens=100000)
    assert e.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="legal", messages=[], max_tokens=3)


def test_client_disconnect_cancels_the_sequence(worker):
    before = metric(worker, "openledger_worker_cancelled_total")
    body = json.dumps({"model": "medical", "prompt": "Bread is made of", "max_tokens": 200, "stream": True,
                       "temperature": 0.9, "seed": 1}).encode()
    req = urllib.request.Request(worker + "/v1/completions", data=body, headers={"content-type": "application/json"})
    resp = urllib.request.urlopen(req)
    resp.readline()  # the first event arrived: the sequence is running
    resp.close()
    for _ in range(200):
        health = json.load(urllib.request.urlopen(worker + "/health"))
        if health["in_flight"] == 0:
            break
        time.sleep(0.02)
    assert health["in_flight"] == 0
    assert metric(worker, "openledger_worker_cancelled_total") == before + 1
