//! `openledger-bench bench-lora`: decode throughput of one batch whose rows use 1, 8, 64, 512
//! distinct LoRA adapters, as a ratio of the base model's throughput on the same batch measured in
//! the same run; the merge-per-request baseline; adapter cold-load latency and memory.

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use openledger_worker::model::synthetic::{adapter_tensors, base_tensors, BaseSpec};
use openledger_worker::model::config::LlamaConfig;
use openledger_worker::model::llama::{KvCache, Llama, Row};
use openledger_worker::model::lora::{LoraAdapter, LoraPath, CONFIG_FILE, WEIGHTS_FILE};
use openledger_worker::parse_dtype;
use std::time::Instant;

/// The seeded base model of the benchmarks: a realistic shape for a CPU by default.
#[derive(clap::Args)]
pub struct ModelShape {
	#[arg(long, default_value_t = 1024)]
	pub hidden: usize,
	#[arg(long, default_value_t = 2816)]
	pub intermediate: usize,
	#[arg(long, default_value_t = 8)]
	pub layers: usize,
	#[arg(long, default_value_t = 16)]
	pub heads: usize,
	#[arg(long, default_value_t = 8)]
	pub kv_heads: usize,
	#[arg(long, default_value_t = 32000)]
	pub vocab: usize,
	#[arg(long, default_value = "f32")]
	pub dtype: String,
	#[arg(long, default_value_t = 7)]
	pub seed: u64,
}

impl ModelShape {
	/// Builds the seeded model in memory.
	pub fn build(&self) -> anyhow::Result<(Llama, LlamaConfig, DType)> {
		let dtype: DType = parse_dtype(&self.dtype)?;
		let device = Device::Cpu;
		let spec = BaseSpec {
			hidden: self.hidden,
			intermediate: self.intermediate,
			layers: self.layers,
			heads: self.heads,
			kv_heads: self.kv_heads,
			vocab: self.vocab,
			max_positions: 4096,
			seed: self.seed,
			..Default::default()
		};
		let cfg: LlamaConfig = spec.config(1, vec![2]);
		let tensors = base_tensors(&cfg, self.seed, &device)?;
		let model = Llama::load(VarBuilder::from_tensors(tensors, dtype, &device), cfg.clone())?;
		Ok((model, cfg, dtype))
	}
}

#[derive(clap::Parser)]
pub struct BenchArgs {
	#[command(flatten)]
	shape: ModelShape,
	#[arg(long, default_value_t = 16)]
	rank: usize,
	#[arg(long, value_delimiter = ',', default_value = "q_proj,v_proj")]
	targets: Vec<String>,
	/// Rows in the decode batch (the largest adapter count must not exceed it).
	#[arg(long, default_value_t = 512)]
	batch: usize,
	#[arg(long, value_delimiter = ',', default_value = "1,8,64,512")]
	adapters: Vec<usize>,
	/// Prompt tokens per row before the timed decode steps.
	#[arg(long, default_value_t = 8)]
	context: usize,
	/// Timed decode steps per configuration (after one warm-up step).
	#[arg(long, default_value_t = 3)]
	steps: usize,
	/// Rounds over all configurations (each reports its median).
	#[arg(long, default_value_t = 3)]
	rounds: usize,
	/// Requests in the merge-per-request baseline (each merges its adapter, then decodes alone).
	#[arg(long, default_value_t = 8)]
	merge_requests: usize,
	/// Tokens each merge-per-request request decodes (its merge is amortized over them).
	#[arg(long, default_value_t = 16)]
	merge_tokens: usize,
	/// Adapters written to disk and cold-loaded for the latency figures.
	#[arg(long, default_value_t = 64)]
	cold_loads: usize,
	/// Also time the accelerator's stacked path here on the CPU device at the largest adapter
	/// count: its adapter copies built each step vs made resident once at load (the overhead
	/// residency removes; the GPU's own figures need a GPU).
	#[arg(long)]
	device_paths: bool,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
	sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Tokens/s of `steps` decode steps of `batch` rows, each row with `adapter_of(row)`.
fn decode_rate(
	model: &Llama,
	caches: &[KvCache],
	adapters: &[LoraAdapter],
	distinct: usize,
	steps: usize,
	seed_token: u32,
	path: LoraPath,
) -> anyhow::Result<f64> {
	let mut caches: Vec<KvCache> = caches.to_vec();
	let tokens: Vec<[u32; 1]> = (0..caches.len()).map(|i| [(seed_token + i as u32) % model.cfg.vocab_size as u32]).collect();
	let run = |caches: &mut Vec<KvCache>| -> anyhow::Result<()> {
		let mut rows: Vec<Row<'_>> = caches
			.iter_mut()
			.zip(&tokens)
			.enumerate()
			.map(|(i, (c, t))| Row { tokens: t, cache: c, adapter: (distinct > 0).then(|| &adapters[i % distinct]) })
			.collect();
		model.forward_opts(&mut rows, path)?;
		Ok(())
	};
	run(&mut caches)?; // warm-up
	let t = Instant::now();
	for _ in 0..steps {
		run(&mut caches)?;
	}
	Ok((caches.len() * steps) as f64 / t.elapsed().as_secs_f64())
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
	let device = Device::Cpu;
	let max_distinct = a.adapters.iter().copied().max().unwrap_or(1);
	anyhow::ensure!(max_distinct <= a.batch, "more distinct adapters than rows");
	let t = Instant::now();
	let (model, cfg, dtype) = a.shape.build()?;
	eprintln!(
		"base model: hidden {}, {} layers, {} heads ({} kv), vocab {}, {:.0} MiB {:?} (built in {:.1}s)",
		a.shape.hidden,
		a.shape.layers,
		a.shape.heads,
		a.shape.kv_heads,
		a.shape.vocab,
		model.weight_bytes() as f64 / (1 << 20) as f64,
		dtype,
		t.elapsed().as_secs_f64()
	);
	let targets: Vec<&str> = a.targets.iter().map(String::as_str).collect();
	let t = Instant::now();
	let mut adapters = Vec::with_capacity(max_distinct);
	let mut cold_dir = None;
	for i in 0..max_distinct.max(a.merge_requests).max(a.cold_loads) {
		let (config, tensors) = adapter_tensors(&cfg, a.rank, 2.0 * a.rank as f64, &targets, 1000 + i as u64, &device)?;
		let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), None)?;
		if i < a.cold_loads {
			let dir = cold_dir.get_or_insert_with(|| tempfile::tempdir().expect("a temp dir"));
			let d = dir.path().join(format!("a{i}"));
			std::fs::create_dir_all(&d)?;
			std::fs::write(d.join(CONFIG_FILE), &config)?;
			std::fs::write(d.join(WEIGHTS_FILE), &bytes)?;
		}
		if i < max_distinct.max(a.merge_requests) {
			adapters.push(LoraAdapter::from_bytes(&config, &bytes, &format!("a{i}"), &cfg, &device)?);
		}
	}
	eprintln!("{} adapters generated in {:.1}s", adapters.len(), t.elapsed().as_secs_f64());

	// One shared prefill (base weights) for every configuration; only decode steps are timed.
	let t = Instant::now();
	let mut caches = vec![KvCache::default(); a.batch];
	let prompts: Vec<Vec<u32>> =
		(0..a.batch).map(|r| (0..a.context).map(|j| ((r * 31 + j * 7) % a.shape.vocab) as u32).collect()).collect();
	for chunk in (0..a.batch).collect::<Vec<_>>().chunks(64) {
		let mut part: Vec<KvCache> = chunk.iter().map(|_| KvCache::default()).collect();
		let mut rows: Vec<Row<'_>> =
			part.iter_mut().zip(chunk).map(|(c, r)| Row { tokens: &prompts[*r], cache: c, adapter: None }).collect();
		model.forward(&mut rows)?;
		for (c, r) in part.into_iter().zip(chunk) {
			caches[*r] = c;
		}
	}
	eprintln!("prefilled {} rows × {} tokens in {:.1}s", a.batch, a.context, t.elapsed().as_secs_f64());

	// Configurations take turns, round after round, so drift (thermal, page cache, other load)
	// hits all of them alike; each reports its median round.
	let configs: Vec<usize> = std::iter::once(0).chain(a.adapters.iter().copied()).collect();
	let mut samples = vec![Vec::new(); configs.len()];
	for round in 0..a.rounds {
		for (i, &n) in configs.iter().enumerate() {
			samples[i].push(decode_rate(&model, &caches, &adapters, n, a.steps, 5 + round as u32, LoraPath::Auto)?);
		}
		eprintln!("round {}/{} done", round + 1, a.rounds);
	}
	let median = |v: &mut Vec<f64>| {
		v.sort_by(f64::total_cmp);
		v[v.len() / 2]
	};
	let rates: Vec<f64> = samples.iter_mut().map(median).collect();
	let base = rates[0];
	let mut rows = vec![("base model, no adapter".to_string(), base)];
	for (n, r) in a.adapters.iter().zip(&rates[1..]) {
		rows.push((format!("{n} distinct adapters"), *r));
	}

	// Merge-per-request: each request merges its adapter into a copy of the targeted weights,
	// then decodes its tokens alone (different adapters cannot share a batch).
	let t = Instant::now();
	let mut tokens = 0usize;
	for i in 0..a.merge_requests {
		let merged = model.merged(&adapters[i % adapters.len()])?;
		let mut cache = caches[i].clone();
		for s in 0..a.merge_tokens {
			let tok = [(5 + s) as u32];
			merged.forward(&mut [Row { tokens: &tok, cache: &mut cache, adapter: None }])?;
			tokens += 1;
		}
	}
	let merge = tokens as f64 / t.elapsed().as_secs_f64();

	// Cold loads: read, hash, parse and convert a PEFT folder from disk.
	let mut lat = Vec::new();
	let mut per_adapter = 0;
	if let Some(dir) = &cold_dir {
		for i in 0..a.cold_loads {
			let t = Instant::now();
			let ad = LoraAdapter::load(&dir.path().join(format!("a{i}")), "cold", &cfg, &device)?;
			lat.push(t.elapsed().as_secs_f64() * 1e3);
			per_adapter = ad.bytes;
		}
	}
	lat.sort_by(f64::total_cmp);

	// The stacked device path on the CPU device: copies built each step, then resident.
	let mut device_rows = Vec::new();
	if a.device_paths {
		let n = a.adapters.iter().copied().max().unwrap_or(1);
		let mut built = Vec::new();
		let mut resident = Vec::new();
		for round in 0..a.rounds {
			built.push(decode_rate(&model, &caches, &adapters, n, a.steps, 5 + round as u32, LoraPath::Stacked)?);
		}
		for ad in adapters.iter_mut() {
			ad.make_resident(&device, dtype)?;
		}
		for round in 0..a.rounds {
			resident.push(decode_rate(&model, &caches, &adapters, n, a.steps, 5 + round as u32, LoraPath::Stacked)?);
		}
		device_rows = vec![(format!("stacked path, {n} adapters, copies built each step"), median(&mut built)), (format!("stacked path, {n} adapters, resident copies ({dtype:?})"), median(&mut resident))];
	}

	println!(
		"\n## LoRA serving: batch of {} rows, rank {}, targets {}, hidden {}, {} layers, vocab {}, {:?}, {} decode steps × {} rounds (median)",
		a.batch,
		a.rank,
		a.targets.join("+"),
		a.shape.hidden,
		a.shape.layers,
		a.shape.vocab,
		dtype,
		a.steps,
		a.rounds
	);
	println!("| decode batch | tokens/s | × base |");
	println!("|---|---:|---:|");
	for (name, r) in &rows {
		println!("| {name} | {r:.1} | {:.3} |", r / base);
	}
	let top = rows.last().map(|r| r.1).unwrap_or(base);
	println!(
		"| merge per request ({} requests × {} tokens, batch 1) | {merge:.1} | {:.3} |",
		a.merge_requests,
		a.merge_tokens,
		merge / base
	);
	for (name, r) in &device_rows {
		println!("| {name} (CPU device) | {r:.1} | {:.3} |", r / base);
	}
	println!(
		"\nmixed batch at {} adapters vs merge-per-request: {:.1}×",
		a.adapters.last().copied().unwrap_or(0),
		top / merge
	);
	if !lat.is_empty() {
		println!(
			"adapter cold load ({} loads from disk: read + id hash + parse): p50 {:.2} ms, p99 {:.2} ms; memory per adapter {:.2} MiB",
			lat.len(),
			percentile(&lat, 0.5),
			percentile(&lat, 0.99),
			per_adapter as f64 / (1 << 20) as f64
		);
	}
	Ok(())
}
