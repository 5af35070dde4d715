"""bench-serve: the real HTTP server under a replayed trace of many concurrent streamed requests.

    python bench_serve.py --requests 240 --rate 8   # 1 vs 2,000 adapters, overloaded: the README's table
    python bench_serve.py                           # 160 requests at 3/s, which the 2-core machine keeps up with
    python bench_serve.py --adapters 200 --requests 60 --rate 2   # smaller

One trace (seeded): Poisson arrivals at `--rate` requests/s, prompt lengths (words of the bundled
corpus) and answer lengths drawn uniformly, and each request's adapter drawn from a Zipf
distribution (exponent 1) over the adapters. The same trace is replayed against a fresh server
three times: every request to one adapter, every request to its Zipf-drawn adapter of
`--adapters`, and the base model alone. Reported per run: generated tokens/s (from the first
arrival to the last completion), time to first token and inter-token latency (p50, p99, over
every streamed chunk that carries text), requests refused, TTFT for requests whose adapter the fresh
server had not loaded yet vs the others, and the server's peak resident memory (VmHWM). The
ratio of the many-adapter run to the one-adapter run is S-LoRA's measure (S-LoRA keeps ~95 % of
throughput at 2,000 adapters on a GPU).
"""
import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time

try:
    import httpx
except ImportError:  # the openai package's HTTP client, renamed (httpx2) in the pinned release
    import httpx2 as httpx

from workerlib import serve

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
p = argparse.ArgumentParser()
p.add_argument("--worker", default=os.environ.get("WORKER_BIN", os.path.expanduser("~/.cache/openledger/target-worker/release/openledger-worker")))
p.add_argument("--adapters", type=int, default=2000)
p.add_argument("--requests", type=int, default=160)
p.add_argument("--rate", type=float, default=3.0, help="mean arrivals per second (Poisson)")
p.add_argument("--prompt-words", default="20,160")
p.add_argument("--answer-tokens", default="16,64")
p.add_argument("--hidden", type=int, default=512)
p.add_argument("--intermediate", type=int, default=1376)
p.add_argument("--layers", type=int, default=8)
p.add_argument("--vocab", type=int, default=4096)
p.add_argument("--rank", type=int, default=8)
p.add_argument("--max-batch", type=int, default=32)
p.add_argument("--adapter-cache-mib", type=int, default=1024)
p.add_argument("--seed", type=int, default=7)
p.add_argument("--dir")
p.add_argument("--json", action="store_true", help="print the rows as JSON, not a table")
a = p.parse_args()

work = a.dir or tempfile.mkdtemp(prefix="bench-serve-")
base, adapters = os.path.join(work, "base"), os.path.join(work, "adapters")
if not os.path.exists(os.path.join(base, "config.json")):
    subprocess.run([a.worker, "gen-model", "--out", base, "--hidden", str(a.hidden), "--intermediate", str(a.intermediate),
                    "--layers", str(a.layers), "--heads", "8", "--kv-heads", "4", "--vocab", str(a.vocab),
                    "--max-positions", "1024", "--seed", str(a.seed)], check=True, stdout=subprocess.DEVNULL)
if not os.path.exists(os.path.join(adapters, f"adapter-{a.adapters - 1:04}")):
    subprocess.run([a.worker, "gen-adapter", "--base", base, "--out", adapters, "--rank", str(a.rank),
                    "--count", str(a.adapters), "--seed", "1000"], check=True, stdout=subprocess.DEVNULL)

# The trace.
rng = random.Random(a.seed)
words = open(os.path.join(ROOT, "inference-worker", "assets", "corpus.txt")).read().split()
pw, at = [int(x) for x in a.prompt_words.split(",")], [int(x) for x in a.answer_tokens.split(",")]
zipf = [1.0 / k for k in range(1, a.adapters + 1)]
trace, t = [], 0.0
for _ in range(a.requests):
    t += rng.expovariate(a.rate)
    n = rng.randint(*pw)
    start = rng.randrange(0, len(words) - n)
    trace.append({"at": t, "prompt": " ".join(words[start:start + n]), "max_tokens": rng.randint(*at),
                  "adapter": rng.choices(range(a.adapters), weights=zipf)[0]})
distinct = len({r["adapter"] for r in trace})


def peak_rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def one(client, url, req, model, t0, out):
    await asyncio.sleep(max(0.0, t0 + req["at"] - time.perf_counter()))
    body = {"model": model, "prompt": req["prompt"], "max_tokens": req["max_tokens"], "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    sent = time.perf_counter()
    times, tokens = [], 0
    async with client.stream("POST", url + "/v1/completions", json=body) as r:
        if r.status_code != 200:
            await r.aread()
            out.append({"refused": r.status_code})
            return
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0].get("text"):
                times.append(time.perf_counter())
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    out.append({"sent": sent, "times": times, "tokens": tokens, "done": time.perf_counter(), "model": model})


async def replay(url, model_of):
    out = []
    limits = httpx.Limits(max_connections=a.requests, max_keepalive_connections=a.requests)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        # Warm-up (not measured): the first request pays one-time costs.
        await one(client, url, {"at": 0, "prompt": "warm up", "max_tokens": 4}, model_of(trace[0]), time.perf_counter(), [])
        t0 = time.perf_counter()
        await asyncio.gather(*(one(client, url, r, model_of(r), t0, out) for r in trace))
    return out, t0


def run(name, model_of):
    proc, url = serve(["--model", base, "--adapters", adapters, "--max-batch", str(a.max_batch), "--queue", str(a.requests),
                       "--adapter-cache-mib", str(a.adapter_cache_mib)], work, worker=a.worker, name=name.split(" (")[0].replace(" ", "-"))
    try:
        out, t0 = asyncio.run(replay(url, model_of))
        rss = peak_rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ok = [o for o in out if "tokens" in o]
    ttft = [o["times"][0] - o["sent"] for o in ok if o["times"]]
    # Cold: the first request to an adapter the fresh server has not loaded yet (the warm-up
    # request loaded the first one); warm: the rest.
    seen, cold, warm = {model_of(trace[0])}, [], []
    for o in sorted((o for o in ok if o["times"]), key=lambda o: o["sent"]):
        (warm if o["model"] in seen else cold).append(o["times"][0] - o["sent"])
        seen.add(o["model"])
    itl = [b - x for o in ok for x, b in zip(o["times"], o["times"][1:])]
    tokens = sum(o["tokens"] for o in ok)
    span = max(o["done"] for o in ok) - t0
    return {"run": name, "requests": len(ok), "refused": len(out) - len(ok), "tokens": tokens,
            "tokens_per_s": tokens / span, "ttft_p50_ms": 1e3 * pct(ttft, 0.5), "ttft_p99_ms": 1e3 * pct(ttft, 0.99),
            "itl_p50_ms": 1e3 * pct(itl, 0.5), "itl_p99_ms": 1e3 * pct(itl, 0.99), "peak_rss_mib": rss,
            "cold": len(cold), "ttft_cold_p50_ms": 1e3 * pct(cold, 0.5), "ttft_warm_p50_ms": 1e3 * pct(warm, 0.5)}


rows = [run("1 adapter", lambda r: "adapter-0000"),
        run(f"{a.adapters} adapters (Zipf; {distinct} distinct in the trace)", lambda r: f"adapter-{r['adapter']:04}"),
        run("base model", lambda r: "base")]
if a.json:
    print(json.dumps(rows))
    sys.exit(0)
print(f"\nbench-serve: {a.requests} requests, Poisson {a.rate}/s, prompts {a.prompt_words} words, answers "
      f"{a.answer_tokens} tokens, model hidden {a.hidden} × {a.layers} layers, LoRA rank {a.rank} (q, v), "
      f"max batch {a.max_batch}, {os.cpu_count()} CPUs\n")
print("| run | requests (refused) | tokens/s | × 1 adapter | TTFT p50 / p99 (ms) | ITL p50 / p99 (ms) | TTFT p50 cold adapter (n) / warm (ms) | peak RSS (MiB) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
one_rate = rows[0]["tokens_per_s"]
for r in rows:
    print(f"| {r['run']} | {r['requests']} ({r['refused']}) | {r['tokens_per_s']:.1f} | {r['tokens_per_s'] / one_rate:.3f} | "
          f"{r['ttft_p50_ms']:.0f} / {r['ttft_p99_ms']:.0f} | {r['itl_p50_ms']:.0f} / {r['itl_p99_ms']:.0f} | "
          f"{r['ttft_cold_p50_ms']:.0f} ({r['cold']}) / {r['ttft_warm_p50_ms']:.0f} | {r['peak_rss_mib']:.0f} |")
