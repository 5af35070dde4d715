"""Span index benchmark: our index (`openledger-worker span-index`) vs the infini-gram package's
own indexer and engine, on one synthetic token corpus, in one run. Prints a table.

    python bench_spans.py --tokens 100000000
    python bench_spans.py --tokens 1000000000 --wide --shard-mib 2048   # u32 ids, no peer

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
p.add_argument("--answers", type=int, default=200, help="256-token answers attributed (p50/p99)")
p.add_argument("--wide", action="store_true", help="u32 token ids over a Qwen2-sized vocabulary (151,936)")
p.add_argument("--no-peer", action="store_true", help="skip infini-gram (its indexer at 1 G tokens takes longer than a run here)")
p.add_argument("--shard-mib", type=int, default=None, help="our build in shards of this much memory each")
p.add_argument("--worker", default=os.environ.get("WORKER_BIN"))
p.add_argument("--dir", default=None)
a = p.parse_args()
peer = not a.no_peer and not a.wide

work = a.dir or tempfile.mkdtemp(prefix="bench-spans-")
ig_dir, our_dir = os.path.join(work, "ig"), os.path.join(work, "ours")
os.makedirs(ig_dir, exist_ok=True)
rng = np.random.default_rng(11)

t = time.time()
vocab = 151_936 if a.wide else 32000
dtype, sep = (np.uint32, 0xFFFFFFFF) if a.wide else (np.uint16, 0xFFFF)
pool = (rng.zipf(1.2, size=20_000_000) % (vocab - 2)).astype(dtype) + 1
doc_len = 500
n_docs = a.tokens // doc_len
# Written in chunks of documents, so that a billion tokens never sit in memory as int64 offsets.
chunk_docs = 100_000
kept = []  # a few documents per chunk, for queries and answers
with open(os.path.join(ig_dir, "tokenized.0"), "wb") as out:
    for c0 in range(0, n_docs, chunk_docs):
        nd = min(chunk_docs, n_docs - c0)
        n = nd * doc_len
        n_frag = n // 11 + 1
        lens = rng.integers(3, 21, size=n_frag)
        starts = rng.integers(0, len(pool) - 21, size=n_frag)
        total = int(lens.sum())
        offs = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens) + np.arange(total)
        body = pool[offs][:n]
        noise = rng.random(n) < 0.05
        body[noise] = rng.integers(1, vocab - 1, size=int(noise.sum())).astype(dtype)
        docs_c = body.reshape(nd, doc_len)
        for d in rng.integers(0, nd, size=max(1, (a.queries + a.answers) * chunk_docs // max(n_docs, 1) + 1)):
            kept.append(docs_c[d].copy())
        np.concatenate([np.full((nd, 1), sep, dtype=dtype), docs_c], axis=1).ravel().astype("<u4" if a.wide else "<u2").tofile(out)
if peer:
    (np.arange(n_docs, dtype="<u8") * (2 * (doc_len + 1))).tofile(os.path.join(ig_dir, "offset.0"))
n_tokens = n_docs * doc_len
print(f"corpus: {n_tokens:,} tokens in {n_docs:,} documents ({'u32' if a.wide else 'u16'} ids, vocabulary {vocab:,}), generated in {time.time() - t:.1f}s", file=sys.stderr)

def fragment(k):
    d = kept[int(rng.integers(0, len(kept)))]
    s = int(rng.integers(0, doc_len - k))
    return d[s:s + k].astype(int).tolist()

# Queries: random head + a corpus fragment tail.
queries = []
for _ in range(a.queries):
    k = int(rng.integers(8, 49))
    queries.append(rng.integers(1, vocab - 1, size=64 - k).astype(int).tolist() + fragment(k))
qfile = os.path.join(work, "queries.jsonl")
with open(qfile, "w") as f:
    for q in queries:
        f.write(json.dumps(q) + "\n")
# Answers: 256 tokens alternating corpus fragments (8-48 tokens) and random tokens (4-16), as a
# model that repeats pieces of its training data writes.
answers = []
for _ in range(a.answers):
    ans = []
    while len(ans) < 256:
        ans += fragment(int(rng.integers(8, 49)))
        ans += rng.integers(1, vocab - 1, size=int(rng.integers(4, 17))).astype(int).tolist()
    answers.append(ans[:256])
afile = os.path.join(work, "answers.jsonl")
with open(afile, "w") as f:
    for x in answers:
        f.write(json.dumps(x) + "\n")

# --- builds -------------------------------------------------------------------------------------
ig_build = ig_bytes = None
if peer:
    os.makedirs(os.path.join(work, "empty"), exist_ok=True)
    t = time.time()
    subprocess.run([sys.executable, "-m", "infini_gram.indexing", "--data_dir", os.path.join(work, "empty"), "--save_dir",
                    ig_dir, "--token_dtype", "u16", "--mem", "16", "--cpus", str(os.cpu_count()),
                    "--ulimit", str(resource.getrlimit(resource.RLIMIT_NOFILE)[1])], check=True, stdout=subprocess.DEVNULL)
    ig_build = time.time() - t
    ig_bytes = sum(os.path.getsize(os.path.join(ig_dir, f)) for f in ("tokenized.0", "table.0", "offset.0"))

t = time.time()
cmd = [a.worker, "span-index", "build-tokens", "--tokenized", os.path.join(ig_dir, "tokenized.0"), "--out", our_dir,
       "--token-bytes", "4" if a.wide else "2"]
if a.shard_mib:
    cmd += ["--shard-mib", str(a.shard_mib)]
built = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
our_build = time.time() - t
our_bytes = built["bytes_per_token"] * n_tokens
if not peer:
    os.remove(os.path.join(ig_dir, "tokenized.0"))  # our index holds the tokens now

# --- queries ------------------------------------------------------------------------------------
subprocess.run([a.worker, "span-index", "bench-query", "--index", our_dir, "--queries", qfile], check=True, capture_output=True)
ours = json.loads(subprocess.run([a.worker, "span-index", "bench-query", "--index", our_dir, "--queries", qfile],
                                 check=True, capture_output=True, text=True).stdout)
attr = json.loads(subprocess.run([a.worker, "span-index", "bench-attribute", "--index", our_dir, "--answers", afile],
                                 check=True, capture_output=True, text=True).stdout)
mismatch = 0
if peer:
    engine = InfiniGramEngine(index_dir=ig_dir, eos_token_id=0xFFFE)
    for q in queries[:50]:  # warm both page caches alike
        engine.infgram_prob(prompt_ids=q, cont_id=1)
    lat, ig_len = [], []
    for q in queries:
        t = time.perf_counter()
        r = engine.infgram_prob(prompt_ids=q, cont_id=1)
        lat.append((time.perf_counter() - t) * 1e6)
        ig_len.append(r["suffix_len"])
    lat.sort()
    ig_p50, ig_p99 = lat[len(lat) // 2], lat[int(round((len(lat) - 1) * 0.99))]
    mismatch = sum(1 for x, y in zip(ours["lengths"], ig_len) if x != y)

print(f"\n## Span index: {n_tokens:,} tokens ({n_docs:,} documents, {'u32' if a.wide else 'u16'} ids), {built['shards']} shard(s), "
      f"{len(queries)} longest-suffix queries of 64 tokens, {len(answers)} answers of 256 tokens")
if peer:
    print("| | infini-gram 2.6.0 | ours | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| index build (s) | {ig_build:.1f} | {our_build:.1f} | {ig_build / our_build:.2f}× faster |")
    print(f"| bytes per token on disk | {ig_bytes / n_tokens:.2f} | {our_bytes / n_tokens:.2f} | |")
    print(f"| longest-match query p50 (µs) | {ig_p50:.1f} | {ours['p50_us']:.1f} | {ig_p50 / ours['p50_us']:.1f}× faster |")
    print(f"| longest-match query p99 (µs) | {ig_p99:.1f} | {ours['p99_us']:.1f} | {ig_p99 / ours['p99_us']:.1f}× faster |")
    print(f"| attribution of a 256-token answer p50 / p99 (ms) | | {attr['p50_ms']:.2f} / {attr['p99_ms']:.2f} | |")
    print(f"\nlongest-match lengths equal on {len(queries) - mismatch}/{len(queries)} queries; mean length {np.mean(ig_len):.1f}")
    print("(infini-gram's latency is measured around its Python call; ours inside the process)")
else:
    print("| | ours |")
    print("|---|---:|")
    print(f"| index build (s) | {our_build:.1f} |")
    print(f"| bytes per token on disk | {our_bytes / n_tokens:.2f} ({built['token_bytes']}-byte ids, {built['entry_bytes']}-byte entries) |")
    print(f"| longest-match query p50 / p99 (µs) | {ours['p50_us']:.1f} / {ours['p99_us']:.1f} |")
    print(f"| attribution of a 256-token answer p50 / p99 (ms) | {attr['p50_ms']:.2f} / {attr['p99_ms']:.2f} |")
    print(f"| answer tokens covered by spans (mean) | {attr['mean_coverage']:.2f} |")
sys.exit(1 if mismatch else 0)
