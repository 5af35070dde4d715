//! `openledger-bench bench-decode`: the model's raw speed on a Hugging Face folder, for the
//! llama.cpp yardstick (`tests/worker/yardstick_llamacpp.py` runs llama.cpp on the same weights
//! converted to GGUF, with the same token ids): prompt processing (one prefill of `--prompt`
//! tokens), single-stream greedy decode, and `--streams` concurrent greedy streams in one ragged
//! batch, with the base model and with a distinct adapter per stream. Prints one JSON object
//! (times, tokens/s, and the greedy ids, so the two engines' outputs can be compared).

use candle_core::Device;
use candle_core::Tensor;
use openledger_worker::model::llama::{argmax_row, KvCache, Llama, PagedKv, PagedRow, Row};
use openledger_worker::model::lora::LoraAdapter;
use openledger_worker::parse_dtype;
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchDecodeArgs {
	/// Hugging Face model folder.
	#[arg(long)]
	pub model: PathBuf,
	#[arg(long, default_value = "f32")]
	pub dtype: String,
	/// Prompt tokens of the single stream (seeded ids of the tokenizer's range).
	#[arg(long, default_value_t = 512)]
	pub prompt: usize,
	/// Greedy tokens decoded after it.
	#[arg(long, default_value_t = 128)]
	pub decode: usize,
	/// Concurrent streams (each a 32-token prompt, then `--decode` tokens each).
	#[arg(long, default_value_t = 16)]
	pub streams: usize,
	/// A folder of PEFT adapters (`gen-adapter --count`): the streams run again, each with its
	/// own adapter.
	#[arg(long)]
	pub adapters: Option<PathBuf>,
	/// Ids are drawn below this (the tokenizer's size; default: the model's vocabulary).
	#[arg(long)]
	pub max_id: Option<u32>,
	#[arg(long, default_value_t = 7)]
	pub seed: u64,
	/// Long context instead: for each of these prompt lengths, a prefill then `--decode`
	/// greedy steps, reporting prefill tokens/s, decode ms/token, KV bytes per position and the
	/// process's peak resident memory above where the row started (KV and scratch; Linux).
	#[arg(long, value_delimiter = ',')]
	pub contexts: Vec<usize>,
	/// Where keys and values live: `paged` (the server's block pool, 16 positions a block,
	/// blocks interleaved between streams as the server allocates them) or `contiguous` (one
	/// buffer per sequence). The long-context table measures both.
	#[arg(long, default_value = "paged")]
	pub kv: String,
}

/// The sequences' keys and values, in either layout, behind one step function.
enum Kv {
	Contiguous(Vec<KvCache>),
	/// The pool, each sequence's block table and position.
	Paged(PagedKv, Vec<Vec<u32>>, Vec<usize>),
}

const BLOCK: usize = 16;

impl Kv {
	fn new(model: &Llama, kind: &str, seqs: usize, reserve: usize) -> anyhow::Result<Self> {
		Ok(match kind {
			"contiguous" => Kv::Contiguous((0..seqs).map(|_| KvCache::with_capacity(reserve)).collect()),
			"paged" => {
				let per = reserve.div_ceil(BLOCK);
				// Block b of sequence i is pool block b·seqs + i: interleaved, as the server's
				// lowest-free-first allocation hands them out to sequences decoding together.
				let tables = (0..seqs).map(|i| (0..per).map(|b| (b * seqs + i) as u32).collect()).collect();
				Kv::Paged(PagedKv::new(model, per * seqs, BLOCK)?, tables, vec![0; seqs])
			},
			other => anyhow::bail!("--kv {other}: paged or contiguous"),
		})
	}

	/// One step: sequence `i` feeds `feeds[i]`; logits of every row's last token.
	fn step(&mut self, model: &Llama, feeds: &[&[u32]], adapters: &[Option<LoraAdapter>]) -> anyhow::Result<Tensor> {
		match self {
			Kv::Contiguous(caches) => {
				let mut rows: Vec<Row<'_>> =
					caches.iter_mut().zip(feeds).zip(adapters).map(|((c, f), a)| Row { tokens: f, cache: c, adapter: a.as_ref() }).collect();
				model.forward(&mut rows)
			},
			Kv::Paged(kv, tables, pos) => {
				let rows: Vec<PagedRow<'_>> = feeds
					.iter()
					.enumerate()
					.map(|(i, f)| PagedRow { tokens: f, pos: pos[i], blocks: &tables[i], adapter: adapters[i].as_ref() })
					.collect();
				let logits = model.forward_paged(kv, &rows, &vec![true; rows.len()])?.expect("every row samples; qed");
				for (p, f) in pos.iter_mut().zip(feeds) {
					*p += f.len();
				}
				Ok(logits)
			},
		}
	}

	fn bytes(&self) -> usize {
		match self {
			Kv::Contiguous(c) => c.iter().map(KvCache::bytes).sum(),
			Kv::Paged(kv, _, _) => kv.bytes(),
		}
	}
}

/// A field of /proc/self/status in KiB (VmRSS: now; VmHWM: the peak since the last reset).
fn status_kib(field: &str) -> Option<u64> {
	let s = std::fs::read_to_string("/proc/self/status").ok()?;
	s.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak (VmHWM) to the current resident size; false where the kernel does not allow it.
fn reset_peak() -> bool {
	std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn contexts(model: &Llama, a: &BenchDecodeArgs, ids: &mut dyn FnMut(usize) -> Vec<u32>) -> anyhow::Result<()> {
	println!("| prompt tokens | KV layout | prefill tokens/s | decode ms/token | KV MiB | KV bytes/position | peak memory of the row MiB |");
	println!("|---:|---|---:|---:|---:|---:|---:|");
	for &n in &a.contexts {
		anyhow::ensure!(n + a.decode <= model.cfg.max_position_embeddings, "context {n} + {} past the model's {}", a.decode, model.cfg.max_position_embeddings);
		let prompt = ids(n);
		for kind in ["contiguous", "paged"] {
			let before = if reset_peak() { status_kib("VmRSS:") } else { None };
			let mut kv = Kv::new(model, kind, 1, n + a.decode)?;
			let t = Instant::now();
			let logits = kv.step(model, &[&prompt], &[None])?;
			let prefill = t.elapsed().as_secs_f64();
			let mut next = argmax_row(&logits, 0)?;
			let t = Instant::now();
			for _ in 1..a.decode {
				let logits = kv.step(model, &[&[next]], &[None])?;
				next = argmax_row(&logits, 0)?;
			}
			let decode = t.elapsed().as_secs_f64() / (a.decode - 1) as f64;
			// Everything this row allocated at its peak: the KV buffers and any scratch.
			let grown = match (before, status_kib("VmHWM:")) {
				(Some(b), Some(p)) => format!("{:.1}", p.saturating_sub(b) as f64 / 1024.0),
				_ => "n/a".into(),
			};
			let positions = (n + a.decode).next_multiple_of(BLOCK);
			println!(
				"| {n} | {kind} | {:.1} | {:.2} | {:.1} | {} | {grown} |",
				n as f64 / prefill,
				decode * 1e3,
				kv.bytes() as f64 / (1 << 20) as f64,
				kv.bytes() / positions.max(1)
			);
		}
	}
	Ok(())
}

fn streams(model: &Llama, kind: &str, prompts: &[Vec<u32>], adapters: &[Option<LoraAdapter>], decode: usize) -> anyhow::Result<(f64, Vec<Vec<u32>>)> {
	let n = prompts.len();
	let mut kv = Kv::new(model, kind, n, prompts[0].len() + decode)?;
	let feeds: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
	let logits = kv.step(model, &feeds, adapters)?;
	let mut next: Vec<u32> = (0..n).map(|i| argmax_row(&logits, i)).collect::<anyhow::Result<_>>()?;
	let mut out: Vec<Vec<u32>> = next.iter().map(|&t| vec![t]).collect();
	let t = Instant::now();
	for _ in 1..decode {
		let feed: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
		let feeds: Vec<&[u32]> = feed.iter().map(|f| f.as_slice()).collect();
		let logits = kv.step(model, &feeds, adapters)?;
		for i in 0..n {
			next[i] = argmax_row(&logits, i)?;
			out[i].push(next[i]);
		}
	}
	Ok((t.elapsed().as_secs_f64(), out))
}

pub fn run(a: BenchDecodeArgs) -> anyhow::Result<()> {
	let dtype = parse_dtype(&a.dtype)?;
	let device = Device::Cpu;
	let model = Llama::load_dir(&a.model, dtype, &device)?;
	let max_id = a.max_id.unwrap_or(model.cfg.vocab_size as u32);
	let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
	let mut ids = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.gen_range(4..max_id)).collect() };
	if !a.contexts.is_empty() {
		return contexts(&model, &a, &mut ids);
	}
	let prompt = ids(a.prompt);
	let stream_prompts: Vec<Vec<u32>> = (0..a.streams).map(|_| ids(32)).collect();

	// Warm-up: one short prefill and step (allocations, thread pools).
	streams(&model, &a.kv, &[prompt[..8].to_vec()], &[None], 2)?;
	// Prompt processing: one prefill of the whole prompt.
	let mut kv = Kv::new(&model, &a.kv, 1, a.prompt + a.decode)?;
	let t = Instant::now();
	let logits = kv.step(&model, &[&prompt], &[None])?;
	let prefill_s = t.elapsed().as_secs_f64();
	// Single-stream greedy decode after it.
	let mut greedy = vec![argmax_row(&logits, 0)?];
	let t = Instant::now();
	for _ in 1..a.decode {
		let feed = [*greedy.last().expect("one at least; qed")];
		let logits = kv.step(&model, &[&feed], &[None])?;
		greedy.push(argmax_row(&logits, 0)?);
	}
	let decode_s = t.elapsed().as_secs_f64();
	let none: Vec<Option<LoraAdapter>> = (0..a.streams).map(|_| None).collect();
	let (streams_s, _) = streams(&model, &a.kv, &stream_prompts, &none, a.decode)?;
	let mut out = serde_json::json!({
		"dtype": a.dtype, "threads": rayon::current_num_threads(), "kv": a.kv,
		"prompt_ids": prompt, "greedy_ids": greedy, "stream_prompt_ids": stream_prompts,
		"prefill_tokens_per_s": a.prompt as f64 / prefill_s,
		"decode_tokens_per_s": (a.decode - 1) as f64 / decode_s,
		"streams": a.streams,
		"streams_tokens_per_s": (a.streams * (a.decode - 1)) as f64 / streams_s,
	});
	if let Some(dir) = &a.adapters {
		let mut names: Vec<String> = std::fs::read_dir(dir)?
			.filter_map(|e| e.ok().and_then(|e| e.file_name().into_string().ok()))
			.filter(|n| dir.join(n).join(openledger_worker::model::lora::CONFIG_FILE).exists())
			.collect();
		names.sort();
		anyhow::ensure!(names.len() >= a.streams, "{} adapters in {}, {} streams", names.len(), dir.display(), a.streams);
		let adapters: Vec<Option<LoraAdapter>> = names[..a.streams]
			.iter()
			.map(|n| LoraAdapter::load(&dir.join(n), n, &model.cfg, &device).map(Some))
			.collect::<anyhow::Result<_>>()?;
		let (s, _) = streams(&model, &a.kv, &stream_prompts, &adapters, a.decode)?;
		out["streams_with_adapters_tokens_per_s"] = ((a.streams * (a.decode - 1)) as f64 / s).into();
	}
	println!("{out}");
	Ok(())
}
