"""llama.cpp as the CPU yardstick: the same seeded weights, the same token ids, the same machine,
the same run.

    scripts/bench-llamacpp.sh            # sets up its own venv (gguf, llama-cpp-python), then:
    python yardstick_llamacpp.py --dtype f32
    python yardstick_llamacpp.py --dtype f16

A seeded Llama folder (`gen-model`, hidden 1024, 8 layers, 32,000 embedding rows) is converted to
GGUF here (HF → GGUF tensor names; q/k rows permuted to llama.cpp's rotary layout, as
llama.cpp's own converter does) and run with `llama-cpp-python` on the CPU's threads; ours runs
`openledger-bench bench-decode` on the folder. Both are fed the same prompt ids and decode
greedily; the table gives prompt processing (one 512-token prefill), single-stream decode, and
16 concurrent streams (llama.cpp: one context with 16 sequences decoded in one batch per step;
ours: one ragged batch, base model and 16 distinct adapters), and how many greedy tokens agree.

The two engines are measured in alternating rounds (ours, llama.cpp, ours, ...; `--rounds`,
default 3) and each figure is the engine's best round: a shared 2-core machine's speed moves by
a quarter from one minute to the next, and the best of alternating rounds compares the two at
their least disturbed.
"""
import argparse
import ctypes
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--worker", default=os.environ.get("WORKER_BIN", os.path.expanduser("~/.cache/openledger/target-worker/release/openledger-worker")))
p.add_argument("--bench", help="openledger-bench (default: beside --worker)")
p.add_argument("--dtype", default="f32", choices=["f32", "f16"])
p.add_argument("--hidden", type=int, default=1024)
p.add_argument("--intermediate", type=int, default=2816)
p.add_argument("--layers", type=int, default=8)
p.add_argument("--heads", type=int, default=16)
p.add_argument("--kv-heads", type=int, default=8)
p.add_argument("--vocab-rows", type=int, default=32000)
p.add_argument("--prompt", type=int, default=512)
p.add_argument("--decode", type=int, default=128)
p.add_argument("--streams", type=int, default=16)
p.add_argument("--threads", type=int, default=os.cpu_count())
p.add_argument("--dir")
p.add_argument("--rounds", type=int, default=3, help="alternating rounds per engine; each figure is the best")
p.add_argument("--json", action="store_true")
a = p.parse_args()

import gguf  # noqa: E402  (after argparse so that --help works without the venv)
import llama_cpp  # noqa: E402

work = a.dir or tempfile.mkdtemp(prefix="yardstick-")
model_dir, adapters = os.path.join(work, "base"), os.path.join(work, "adapters")
if not os.path.exists(os.path.join(model_dir, "config.json")):
    subprocess.run([a.worker, "gen-model", "--out", model_dir, "--hidden", str(a.hidden), "--intermediate", str(a.intermediate),
                    "--layers", str(a.layers), "--heads", str(a.heads), "--kv-heads", str(a.kv_heads), "--vocab", "32000",
                    "--vocab-rows", str(a.vocab_rows), "--max-positions", "2048", "--seed", "11"], check=True, stdout=subprocess.DEVNULL)
if not os.path.exists(os.path.join(adapters, f"adapter-{a.streams - 1:04}")):
    subprocess.run([a.worker, "gen-adapter", "--base", model_dir, "--out", adapters, "--rank", "8", "--count", str(a.streams)],
                   check=True, stdout=subprocess.DEVNULL)
cfg = json.load(open(os.path.join(model_dir, "config.json")))
tok = json.load(open(os.path.join(model_dir, "tokenizer.json")))
n_known = len(tok["model"]["vocab"]) + len([t for t in tok["added_tokens"] if t["content"] not in tok["model"]["vocab"]])


def safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info["dtype"]
        s, e = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + s:8 + n + e], dtype=np.float32).reshape(info["shape"])
    return out


def permute(w, heads):
    # HF keeps rotary pairs as halves of each head; llama.cpp's LLAMA rope pairs neighbours.
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


gguf_path = os.path.join(work, f"model-{a.dtype}.gguf")
if not os.path.exists(gguf_path):
    t = safetensors(os.path.join(model_dir, "model.safetensors"))
    w = gguf.GGUFWriter(gguf_path, "llama")
    h, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    w.add_name("openledger-seeded")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(h)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_rope_dimension_count(h // nh)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if a.dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)
    by_id = {i: s for s, i in tok["model"]["vocab"].items()}
    specials = {t["id"]: t["content"] for t in tok["added_tokens"]}
    tokens, types = [], []
    for i in range(cfg["vocab_size"]):
        if i in specials:
            tokens.append(specials[i]); types.append(gguf.TokenType.CONTROL)
        elif i in by_id:
            tokens.append(by_id[i]); types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"<|pad_{i}|>"); types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"][0] if isinstance(cfg["eos_token_id"], list) else cfg["eos_token_id"])
    w.add_add_bos_token(False)
    cast = (lambda x: x) if a.dtype == "f32" else (lambda x: x.astype(np.float16))
    w.add_tensor("token_embd.weight", cast(t["model.embed_tokens.weight"]))
    w.add_tensor("output_norm.weight", t["model.norm.weight"])
    w.add_tensor("output.weight", cast(t["lm_head.weight"]))
    for l in range(cfg["num_hidden_layers"]):
        g = lambda n: t[f"model.layers.{l}.{n}.weight"]  # noqa: E731
        w.add_tensor(f"blk.{l}.attn_norm.weight", g("input_layernorm"))
        w.add_tensor(f"blk.{l}.ffn_norm.weight", g("post_attention_layernorm"))
        w.add_tensor(f"blk.{l}.attn_q.weight", cast(permute(g("self_attn.q_proj"), nh)))
        w.add_tensor(f"blk.{l}.attn_k.weight", cast(permute(g("self_attn.k_proj"), nkv)))
        w.add_tensor(f"blk.{l}.attn_v.weight", cast(g("self_attn.v_proj")))
        w.add_tensor(f"blk.{l}.attn_output.weight", cast(g("self_attn.o_proj")))
        w.add_tensor(f"blk.{l}.ffn_gate.weight", cast(g("mlp.gate_proj")))
        w.add_tensor(f"blk.{l}.ffn_up.weight", cast(g("mlp.up_proj")))
        w.add_tensor(f"blk.{l}.ffn_down.weight", cast(g("mlp.down_proj")))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

# Ours first: it draws the prompt ids (seeded) and reports them.
env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
bench = a.bench or os.path.join(os.path.dirname(a.worker), "openledger-bench")


def run_ours():
    return json.loads(subprocess.run([bench, "bench-decode", "--model", model_dir, "--dtype", a.dtype, "--prompt", str(a.prompt),
                                      "--decode", str(a.decode), "--streams", str(a.streams), "--adapters", adapters,
                                      "--max-id", str(n_known)], check=True, capture_output=True, text=True, env=env).stdout)


ours = run_ours()

# llama.cpp through its C API (llama-cpp-python's bindings): one context, `streams` sequences.
llama_cpp.llama_backend_init()
QUIET = llama_cpp.llama_log_callback(lambda *_: None)  # kept referenced: llama.cpp calls it later
llama_cpp.llama_log_set(QUIET, ctypes.c_void_p(0))
mparams = llama_cpp.llama_model_default_params()
model = llama_cpp.llama_model_load_from_file(gguf_path.encode(), mparams)
assert model, "llama.cpp could not load the GGUF"
cparams = llama_cpp.llama_context_default_params()
cparams.n_ctx = max(a.prompt + a.decode, a.streams * (32 + a.decode)) + 16
cparams.n_batch = cparams.n_ubatch = max(a.prompt, a.streams * 32)
cparams.n_seq_max = a.streams
cparams.kv_unified = True  # one KV buffer shared by the sequences (the single stream uses all of it)
cparams.n_threads = cparams.n_threads_batch = a.threads
ctx = llama_cpp.llama_init_from_model(model, cparams)
assert ctx
n_vocab = cfg["vocab_size"]
batch = llama_cpp.llama_batch_init(cparams.n_batch, 0, a.streams)


def decode(rows):
    """rows: [(seq, [tokens], first position)]; logits for each row's last token. Returns argmaxes."""
    batch.n_tokens = 0
    last = []
    for seq, toks, pos in rows:
        for k, tk in enumerate(toks):
            i = batch.n_tokens
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = tk, pos + k, 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = k == len(toks) - 1
            batch.n_tokens += 1
        last.append(batch.n_tokens - 1)
    rc = llama_cpp.llama_decode(ctx, batch)
    assert rc == 0, f"llama_decode: {rc}"
    out = []
    for i in last:
        ptr = llama_cpp.llama_get_logits_ith(ctx, i)
        out.append(int(np.argmax(np.ctypeslib.as_array(ptr, shape=(n_vocab,)))))
    return out


def clear():
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)


def run_theirs():
    """One round of llama.cpp: tokens/s of each workload, and its greedy tokens."""
    clear()
    decode([(0, ours["prompt_ids"][:8], 0)])  # warm-up
    clear()
    t = time.perf_counter()
    (nxt,) = decode([(0, ours["prompt_ids"], 0)])
    prefill_s = time.perf_counter() - t
    greedy = [nxt]
    t = time.perf_counter()
    for k in range(1, a.decode):
        (nxt,) = decode([(0, [greedy[-1]], a.prompt + k - 1)])
        greedy.append(nxt)
    decode_s = time.perf_counter() - t
    clear()
    prompts = ours["stream_prompt_ids"]
    nxts = decode([(s, prompts[s], 0) for s in range(a.streams)])
    t = time.perf_counter()
    for k in range(1, a.decode):
        nxts = decode([(s, [nxts[s]], 32 + k - 1) for s in range(a.streams)])
    streams_s = time.perf_counter() - t
    return ({"prefill_tokens_per_s": a.prompt / prefill_s, "decode_tokens_per_s": (a.decode - 1) / decode_s,
             "streams_tokens_per_s": a.streams * (a.decode - 1) / streams_s}, greedy)


def best(a_, b_):
    return {k: max(v, b_[k]) if isinstance(v, float) and k.endswith("per_s") else v for k, v in a_.items()}


theirs, greedy = run_theirs()
for _ in range(1, a.rounds):
    ours = best(ours, run_ours())
    theirs = best(theirs, run_theirs()[0])
llama_cpp.llama_batch_free(batch)
llama_cpp.llama_free(ctx)
llama_cpp.llama_model_free(model)

agree = next((i for i, (x, y) in enumerate(zip(ours["greedy_ids"], greedy)) if x != y), len(greedy))
rows = [(f"prompt processing ({a.prompt} tokens)", "prefill_tokens_per_s", "prefill_tokens_per_s"),
        ("single-stream decode", "decode_tokens_per_s", "decode_tokens_per_s"),
        (f"{a.streams} streams, aggregate", "streams_tokens_per_s", "streams_tokens_per_s"),
        (f"{a.streams} streams, {a.streams} distinct adapters (ours)", "streams_with_adapters_tokens_per_s", "streams_tokens_per_s")]
if a.json:
    print(json.dumps({"dtype": a.dtype, "ours": {k: v for k, v in ours.items() if k.endswith("per_s")}, "llama_cpp": theirs,
                      "greedy_agree": agree, "greedy_of": len(greedy)}))
    sys.exit(0)
print(f"\nllama.cpp yardstick, {a.dtype}: hidden {a.hidden}, {a.layers} layers, {a.vocab_rows} vocabulary rows, "
      f"{a.threads} threads, best of {a.rounds} alternating rounds each; greedy tokens agree for the first {agree}/{len(greedy)}\n")
print("| workload | ours (tokens/s) | llama.cpp (tokens/s) | ours ÷ llama.cpp |")
print("|---|---:|---:|---:|")
for name, ok, tk in rows:
    print(f"| {name} | {ours[ok]:.1f} | {theirs[tk]:.1f} | {ours[ok] / theirs[tk]:.2f}× |")
