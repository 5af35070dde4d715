"""Span index benchmark: our index (`openledger-worker span-index`) vs the infini-gram package's
own indexer and engine, on one synthetic token corpus, in one run. Prints a table.

    python bench_spans.py --tokens 100000000

The corpus: documents of ~500 tokens built from fragments (3-20 tokens) of a Zipf-distributed
pool over a 32,000-token vocabulary, plus random tokens, so long repeated spans exist. Queries:
64-token prompts whose tail is a corpus fragment of 8-48 tokens after random tokens; the answer is
the longest suffix that occurs (infini-gram's `infgram_prob(...).suffix_len`, our
`longest_suffix`), and both must agree on every query.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from infini_gram.engine import InfiniGramEngine

p = argparse.ArgumentParser()
p.add_argument("--tokens", type=int, default=100_000_000)
p.add_argument("--queries", type=int, default=2000)
p.add_argument("--worker", default=os.environ.get("WORKER_BIN"))
p.add_argument("--dir", default=None)
a = p.parse_args()

work = a.dir or tempfile.mkdtemp(prefix="bench-spans-")
ig_dir, our_dir = os.path.join(work, "ig"), os.path.join(work, "ours")
os.makedirs(ig_dir, exist_ok=True)
rng = np.random.default_rng(11)

t = time.time()
vocab = 32000
pool = (rng.zipf(1.2, size=20_000_000) % (vocab - 2)).astype(np.uint16) + 1
n_frag = a.tokens // 11 + 1
lens = rng.integers(3, 21, size=n_frag)
starts = rng.integers(0, len(pool) - 21, size=n_frag)
total = int(lens.sum())
offs = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens) + np.arange(total)
body = pool[offs][: a.tokens]
noise = rng.random(len(body)) < 0.05
body[noise] = rng.integers(1, vocab - 1, size=int(noise.sum())).astype(np.uint16)
doc_len = 500
n_docs = len(body) // doc_len
docs = body[: n_docs * doc_len].reshape(n_docs, doc_len)
with_sep = np.concatenate([np.full((n_docs, 1), 0xFFFF, dtype=np.uint16), docs], axis=1).ravel()
with_sep.astype("<u2").tofile(os.path.join(ig_dir, "tokenized.0"))
(np.arange(n_docs, dtype="<u8") * (2 * (doc_len + 1))).tofile(os.path.join(ig_dir, "offset.0"))
n_tokens = n_docs * doc_len
print(f"corpus: {n_tokens:,} tokens in {n_docs:,} documents, generated in {time.time() - t:.1f}s", file=sys.stderr)

# Queries: random head + a corpus fragment tail.
queries = []
for _ in range(a.queries):
    d = int(rng.integers(0, n_docs))
    k = int(rng.integers(8, 49))
    s = int(rng.integers(0, doc_len - k))
    tail = docs[d, s:s + k].astype(int).tolist()
    head = rng.integers(1, vocab - 1, size=64 - k).astype(int).tolist()
    queries.append(head + tail)
qfile = os.path.join(work, "queries.jsonl")
with open(qfile, "w") as f:
    for q in queries:
        f.write(json.dumps(q) + "\n")

# --- builds -------------------------------------------------------------------------------------
os.makedirs(os.path.join(work, "empty"), exist_ok=True)
t = time.time()
subprocess.run([sys.executable, "-m", "infini_gram.indexing", "--data_dir", os.path.join(work, "empty"), "--save_dir",
                ig_dir, "--token_dtype", "u16", "--mem", "16", "--cpus", str(os.cpu_count()),
                "--ulimit", str(resource.getrlimit(resource.RLIMIT_NOFILE)[1])], check=True, stdout=subprocess.DEVNULL)
ig_build = time.time() - t
ig_bytes = sum(os.path.getsize(os.path.join(ig_dir, f)) for f in ("tokenized.0", "table.0", "offset.0"))

t = time.time()
out = subprocess.run([a.worker, "span-index", "build-tokens", "--tokenized", os.path.join(ig_dir, "tokenized.0"), "--out",
                      our_dir], check=True, capture_output=True, text=True).stdout
our_build = time.time() - t
our_bytes = sum(os.path.getsize(os.path.join(our_dir, f)) for f in ("tokens.bin", "sa.bin", "docs.u64"))

# --- queries ------------------------------------------------------------------------------------
engine = InfiniGramEngine(index_dir=ig_dir, eos_token_id=0xFFFE)
for q in queries[:50]:  # warm both page caches alike
    engine.infgram_prob(prompt_ids=q, cont_id=1)
subprocess.run([a.worker, "span-index", "bench-query", "--index", our_dir, "--queries", qfile], check=True,
               capture_output=True)
lat, ig_len = [], []
for q in queries:
    t = time.perf_counter()
    r = engine.infgram_prob(prompt_ids=q, cont_id=1)
    lat.append((time.perf_counter() - t) * 1e6)
    ig_len.append(r["suffix_len"])
lat.sort()
ig_p50, ig_p99 = lat[len(lat) // 2], lat[int(round((len(lat) - 1) * 0.99))]
ours = json.loads(subprocess.run([a.worker, "span-index", "bench-query", "--index", our_dir, "--queries", qfile],
                                 check=True, capture_output=True, text=True).stdout)
mismatch = sum(1 for x, y in zip(ours["lengths"], ig_len) if x != y)

print(f"\n## Span index: {n_tokens:,} tokens ({n_docs:,} documents), {len(queries)} longest-suffix queries of 64 tokens")
print("| | infini-gram 2.6.0 | ours | ratio |")
print("|---|---:|---:|---:|")
print(f"| index build (s) | {ig_build:.1f} | {our_build:.1f} | {ig_build / our_build:.2f}× faster |")
print(f"| bytes per token on disk | {ig_bytes / n_tokens:.2f} | {our_bytes / n_tokens:.2f} | |")
print(f"| longest-match query p50 (µs) | {ig_p50:.1f} | {ours['p50_us']:.1f} | {ig_p50 / ours['p50_us']:.1f}× faster |")
print(f"| longest-match query p99 (µs) | {ig_p99:.1f} | {ours['p99_us']:.1f} | {ig_p99 / ours['p99_us']:.1f}× faster |")
print(f"\nlongest-match lengths equal on {len(queries) - mismatch}/{len(queries)} queries; mean length {np.mean(ig_len):.1f}")
print("(infini-gram's latency is measured around its Python call; ours inside the process)")
sys.exit(1 if mismatch else 0)
