"""Qwen2's vocabulary end to end through the worker's binary: `gen-model --family qwen2` (151,936
ids, trained tokens spread past 65,535, chat tokens at 151,643+), `span-index build` on text
contributions (which must choose 4-byte tokens), `serve --span-index`, and an answer that repeats
a contribution paying that contribution.
"""
import json
import os
import subprocess
import urllib.request

from workerlib import WORKER_BIN, serve


def start(root, base, *extra):
    return serve(["--model", str(base), "--adapters", str(root / "adapters"), *extra], root)


def post(url, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=60))


def test_qwen2_vocabulary_gets_span_attribution(tmp_path):
    base = tmp_path / "qwen2-base"
    subprocess.run([WORKER_BIN, "gen-model", "--family", "qwen2", "--out", str(base), "--vocab", "1024", "--hidden", "32",
                    "--intermediate", "48", "--max-positions", "256", "--seed", "7"], check=True, stdout=subprocess.DEVNULL)
    cfg = json.load(open(base / "config.json"))
    assert (cfg["model_type"], cfg["vocab_size"], cfg["tie_word_embeddings"]) == ("qwen2", 151936, True)
    tok = json.load(open(base / "tokenizer.json"))
    assert {t["content"]: t["id"] for t in tok["added_tokens"]} == {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
    subprocess.run([WORKER_BIN, "gen-adapter", "--base", str(base), "--out", str(tmp_path / "adapters" / "legal"), "--rank", "4",
                    "--targets", "q_proj,k_proj,v_proj,o_proj", "--seed", "3"], check=True, stdout=subprocess.DEVNULL)

    ask = {"model": "qwen2-base", "prompt": "The river runs", "max_tokens": 32, "temperature": 0}
    proc, url = start(tmp_path, base)
    try:
        answer = post(url, "/v1/completions", ask)["choices"][0]["text"]
        legal = post(url, "/v1/completions", {**ask, "model": "legal"})["choices"][0]["text"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert len(answer) > 20
    assert legal != answer, "the adapter (on q/k/v with Qwen2's biases) changes the answer"

    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    docs = [{"text": readme[k:k + 2000], "datanet": 2, "version": 1, "index": i} for i, k in enumerate(range(0, 20000, 2000))]
    docs.append({"text": "Copied from elsewhere: " + answer + " (the end)", "datanet": 2, "version": 1, "index": 10})
    with open(tmp_path / "corpus.jsonl", "w") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    subprocess.run([WORKER_BIN, "span-index", "build", "--tokenizer", str(base), "--input", str(tmp_path / "corpus.jsonl"),
                    "--out", str(tmp_path / "spans")], check=True, stdout=subprocess.DEVNULL)
    meta = json.load(open(tmp_path / "spans" / "meta.json"))
    assert meta["token_bytes"] == 4, "ids past 65,535 need 4-byte tokens"

    proc, url = start(tmp_path, base, "--span-index", str(tmp_path / "spans"))
    try:
        got = post(url, "/v1/completions", ask)
        chat = post(url, "/v1/chat/completions", {"model": "qwen2-base", "max_tokens": 4, "temperature": 0,
                                                  "messages": [{"role": "user", "content": "hi"}]})
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert got["choices"][0]["text"] == answer
    att = got["attribution"]
    top = att["shares"][0]
    assert top["contribution"] == {"datanet": 2, "version": 1, "index": 10}, att
    assert att["coverage"] >= 0.9, att
    assert top["share"] >= 900_000_000, att
    assert chat["attribution"]["method"] == "span_match"
