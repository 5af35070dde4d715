"""Hostile clients against a running worker (no chain): what they send must never crash it,
leave it unhealthy, or get a 5xx.

- multi-byte output with stop strings (the stop filter once sliced inside a character and
  killed the engine thread: every later request got 503 while /health said ok);
- huge numbers and unsupported fields through the official client;
- the admin routes without a token;
- the OpenAPI document fuzzed by schemathesis (no 5xx, responses as documented);
- an overload from locust at 10x the worker's capacity: refusals are 429 with Retry-After,
  nothing else fails, the worker stays up and within its memory bound.
The billing attacks (vouchers, disconnects, escrow, a stalled chain) need a node: they are in
tests/e2e/worker.test.js.
"""
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import openai
import pytest

from test_openai import metric
from workerlib import WORKER_BIN, serve

VENV_BIN = os.path.dirname(sys.executable)


def start_worker(root, *extra):
    base, adapters = root / "base", root / "adapters"
    if not base.exists():
        subprocess.run([WORKER_BIN, "gen-model", "--out", str(base), "--hidden", "64", "--layers", "2",
                        "--vocab", "400", "--max-positions", "256", "--seed", "42"], check=True)
        subprocess.run([WORKER_BIN, "gen-adapter", "--base", str(base), "--out", str(adapters / "legal"),
                        "--rank", "8", "--seed", "1"], check=True)
    return serve(["--model", str(base), "--adapters", str(adapters), "--served-model-name", "demo-base", *extra], root)


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    proc, url = start_worker(tmp_path_factory.mktemp("hostile"))
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def health(url):
    try:
        r = urllib.request.urlopen(url + "/health", timeout=5)
        return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def post(url, path, body, headers=None):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        r = urllib.request.urlopen(req, timeout=60)
        return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def test_multi_byte_output_with_stop_strings_never_stops_the_engine(worker):
    # Sampled hot from a random model over a byte-level vocabulary: multi-byte characters
    # come out; stop strings of one and several bytes are searched across every delta.
    multi = 0
    for seed in range(40):
        for stream in (False, True):
            status, _, text = post(worker, "/v1/completions", {
                "model": "legal", "prompt": "Ünïcode ✓ über café", "max_tokens": 48, "temperature": 2.0,
                "seed": seed, "stop": ["é", "zz", "日本", "ab"], "stream": stream})
            assert status == 200, text
            if not stream:
                out = json.loads(text)["choices"][0]["text"]
                multi += any(ord(c) > 127 for c in out)
    assert multi > 0, "the test must produce multi-byte output to mean anything"
    status, h = health(worker)
    assert (status, h["status"], h["engine_panics"]) == (200, "ok", 0)


def test_huge_and_unsupported_knobs_are_refused(worker):
    client = openai.OpenAI(base_url=worker + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="legal", prompt="x", max_tokens=2**63)
    assert e.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="legal", prompt="x", logprobs=5)
    assert e.value.code == "unsupported_parameter"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="legal", messages=[{"role": "user", "content": "x"}], frequency_penalty=1.5)
    assert e.value.code == "unsupported_parameter"
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="legal", prompt="x", stop=["x" * 300])
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="legal", prompt="x", extra_body={"top_k": 2**62})
    status, _, text = post(worker, "/v1/completions", {"model": "legal", "prompt": "x" * (3 << 20)})
    assert status == 413 and "error" in json.loads(text)
    assert health(worker)[0] == 200


def test_admin_routes_need_a_token(worker):
    for path, body in [("/v1/factory/jobs", {"name": "x", "snapshots": [{"datanet": 0, "version": 1, "weight": 1}],
                                             "optim": {"max_steps": 10**17}})]:
        status, headers, text = post(worker, path, body)
        assert status == 401, text
        assert headers["www-authenticate"] == "Bearer"
    try:
        urllib.request.urlopen(worker + "/v1/factory/jobs")
        raise AssertionError("listing jobs without a token")
    except urllib.error.HTTPError as e:
        assert e.code == 401


def test_schemathesis_finds_no_server_error(worker, tmp_path):
    # Schema-driven fuzzing of every documented operation; responses must be as documented.
    r = subprocess.run([os.path.join(VENV_BIN, "st"), "run", worker + "/openapi.json",
                        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                        "--max-examples", "60", "--seed", "1", "--request-timeout", "30",
                        "--suppress-health-check", "all", "--no-color"],
                       capture_output=True, text=True, timeout=900, cwd=tmp_path)
    print(r.stdout[-4000:])
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    status, h = health(worker)
    assert (status, h["engine_panics"]) == (200, 0)


def test_overload_at_ten_times_capacity(tmp_path):
    # Capacity 4 (2 running + 2 queued); 40 users without think time for 8 s.
    proc, url = start_worker(tmp_path, "--max-batch", "2", "--queue", "2", "--kv-cache-mib", "64")
    try:
        out = tmp_path / "locust"
        r = subprocess.run([os.path.join(VENV_BIN, "locust"), "-f", os.path.join(os.path.dirname(__file__), "locustfile.py"),
                            "--headless", "-u", "40", "-r", "40", "-t", "8s", "--host", url, "--csv", str(out),
                            "--only-summary", "--exit-code-on-error", "0"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        header, *lines = (tmp_path / "locust_stats.csv").read_text().splitlines()
        cols = header.split(",")
        rows = {row.split(",")[1]: dict(zip(cols, row.split(","))) for row in lines}
        assert proc.poll() is None, "the worker survived"
        assert "error" not in rows, f"only 200 and 429-with-Retry-After are allowed: {rows.get('error')}"
        assert int(rows["admitted"]["Request Count"]) > 0 and int(rows["refused"]["Request Count"]) > 0, rows
        assert int(rows["Aggregated"]["Failure Count"]) == 0, rows
        status, h = health(url)
        assert (status, h["engine_panics"], h["in_flight"]) == (200, 0, 0)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
