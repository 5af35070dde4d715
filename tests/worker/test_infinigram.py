"""Span attribution against a peer: the `infini-gram` PyPI package.

The same token ids (our tokenizer on a corpus of the repository's own text) are indexed twice:
by `openledger-worker span-index build` and by infini-gram's indexer (fed our tokens in its
on-disk layout, since its own tokenization step wants a hub tokenizer). Then thousands of sampled
queries must give equal n-gram counts and equal longest-match lengths (infini-gram's ∞-gram
`suffix_len` of each answer prefix).
"""
import glob
import json
import os
import random
import resource
import subprocess
import sys

import numpy as np
import pytest
from infini_gram.engine import InfiniGramEngine

WORKER_BIN = os.environ.get("WORKER_BIN", os.path.expanduser("~/.cache/openledger/target-worker/release/openledger-worker"))
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    d = tmp_path_factory.mktemp("spans")
    subprocess.run([WORKER_BIN, "gen-model", "--out", str(d / "base"), "--vocab", "1024"], check=True,
                   stdout=subprocess.DEVNULL)
    files = sorted(glob.glob(f"{ROOT}/pallets/**/*.rs", recursive=True) + glob.glob(f"{ROOT}/*.md")
                   + glob.glob(f"{ROOT}/inference-worker/src/**/*.rs", recursive=True))
    with open(d / "corpus.jsonl", "w") as out:
        n = 0
        for p in files:
            text = open(p, errors="replace").read()
            for k in range(0, len(text), 3000):
                out.write(json.dumps({"text": text[k:k + 3000], "datanet": 1, "version": 1, "index": n}) + "\n")
                n += 1
    subprocess.run([WORKER_BIN, "span-index", "build", "--tokenizer", str(d / "base"), "--input", str(d / "corpus.jsonl"),
                    "--out", str(d / "ours"), "--infini-gram", str(d / "ig")], check=True)
    (d / "empty").mkdir()
    subprocess.run([sys.executable, "-m", "infini_gram.indexing", "--data_dir", str(d / "empty"), "--save_dir",
                    str(d / "ig"), "--token_dtype", "u16", "--mem", "2", "--cpus", "2",
                    "--ulimit", str(resource.getrlimit(resource.RLIMIT_NOFILE)[1])],
                   check=True, stdout=subprocess.DEVNULL, cwd=d)
    return d


def ours(index, queries):
    lines = "".join(json.dumps(q) + "\n" for q in queries)
    p = subprocess.run([WORKER_BIN, "span-index", "query", "--index", str(index)], input=lines, capture_output=True,
                       text=True, check=True)
    return [json.loads(l) for l in p.stdout.splitlines()]


def corpus_docs(d):
    arr = np.frombuffer(open(d / "ig" / "tokenized.0", "rb").read(), dtype=np.uint16)
    cut = np.where(arr == 0xFFFF)[0].tolist() + [len(arr)]
    return [arr[a + 1:b].astype(int).tolist() for a, b in zip(cut, cut[1:]) if b > a + 1]


def test_counts_and_longest_matches_equal_infini_gram(indexes):
    engine = InfiniGramEngine(index_dir=str(indexes / "ig"), eos_token_id=0xFFFE)
    docs = corpus_docs(indexes)
    rng = random.Random(7)
    total = sum(len(x) for x in docs)
    assert total > 100_000, total

    def piece(n):
        doc = rng.choice([x for x in docs if len(x) >= n] or docs)
        s = rng.randrange(0, max(1, len(doc) - n + 1))
        return doc[s:s + n]

    # 3,000 n-gram counts: present n-grams, perturbed ones, random ones.
    count_queries = []
    for i in range(3000):
        q = piece(rng.randint(1, 12))
        if i % 3 == 1:
            q[rng.randrange(len(q))] = rng.randrange(1024)
        elif i % 3 == 2:
            q = [rng.randrange(1024) for _ in range(rng.randint(1, 4))]
        count_queries.append(q)
    got = ours(indexes / "ours", [{"count": q} for q in count_queries])
    mismatches = [(q, g["count"], engine.count(input_ids=q)["count"]) for q, g in zip(count_queries, got)
                  if g["count"] != engine.count(input_ids=q)["count"]]
    assert not mismatches, mismatches[:5]
    assert sum(1 for g in got if g["count"] > 1) > 300, "the sample has repeated n-grams"

    # Longest match ending at every position of 200 answers (fragments of the corpus spliced with
    # random tokens): infini-gram's ∞-gram suffix length of each prefix.
    answers = []
    for _ in range(200):
        a = []
        while len(a) < 30:
            a += piece(rng.randint(2, 15)) if rng.random() < 0.7 else [rng.randrange(1024)]
        answers.append(a[:30])
    got = ours(indexes / "ours", [{"longest": a} for a in answers])
    checked = 0
    for a, g in zip(answers, got):
        for i in range(len(a)):
            want = engine.infgram_prob(prompt_ids=a[:i + 1], cont_id=0)["suffix_len"]
            assert g["longest"][i] == want, (a, i, g["longest"][i], want)
            checked += 1
    assert checked == 6000
    assert max(max(g["longest"]) for g in got) >= 10


def test_bytes_per_token_and_attribution_shares(indexes):
    sizes = sum(os.path.getsize(indexes / "ours" / f) for f in ("tokens.bin", "sa.bin", "docs.u64"))
    meta = json.load(open(indexes / "ours" / "meta.json"))
    assert sizes / meta["tokens"] <= 6.05
    docs = corpus_docs(indexes)
    answer = docs[3][10:40] + [5, 6, 7] + docs[8][0:20]
    (att,) = ours(indexes / "ours", [{"attribute": answer}])
    credited = {(r["datanet"], r["version"], r["index"]) for r, _ in att["shares"]}
    assert (1, 1, 3) in credited and (1, 1, 8) in credited
    assert sum(s for _, s in att["shares"]) <= 1_000_000_000
