//! `openledger-bench bench-kv`: what the paged KV pool's prefix cache buys through the real
//! engine (scheduler, block pool, candle model): requests that share a long system prompt and
//! differ in a short question, with the prefix cache on and off, on the same seeded model in the
//! same run. A first request warms the cache (and the engine); the rest arrive together.
//!
//! With `--preemption`: distinct prompts into a pool that holds every prompt but not every
//! answer, so decoding sequences preempt each other: recomputed (no swap memory) vs swapped out
//! and back (`--kv-swap-mib`), same run, same greedy answers.

use candle_core::{DType, Device};
use openledger_worker::engine::sampling::SamplingParams;
use openledger_worker::engine::{Engine, EngineConfig, Event, PrefixCache};
use openledger_worker::metrics::Metrics;
use openledger_worker::model::llama::Llama;
use openledger_worker::model::synthetic::{write_base_model, BaseSpec};
use openledger_worker::tokenizer::TextTokenizer;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct BenchKvArgs {
	/// Tokens of the shared system prompt.
	#[arg(long, default_value_t = 512)]
	pub system: usize,
	/// Tokens of each request's own question after it.
	#[arg(long, default_value_t = 16)]
	pub question: usize,
	/// Tokens each answer decodes.
	#[arg(long, default_value_t = 16)]
	pub answer: usize,
	/// Requests after the warm-up one, submitted together.
	#[arg(long, default_value_t = 16)]
	pub requests: usize,
	#[arg(long, default_value_t = 8)]
	pub max_batch: usize,
	#[arg(long, default_value_t = 512)]
	pub hidden: usize,
	#[arg(long, default_value_t = 8)]
	pub layers: usize,
	#[arg(long, default_value_t = 3)]
	pub seed: u64,
	/// Distinct prompts (`system` + `question` random tokens each) into a pool of
	/// `max_batch × (prompt + answer / 4)` positions: preemption by recompute vs by swap.
	#[arg(long)]
	pub preemption: bool,
}

struct Outcome {
	wall: Duration,
	ttft: Vec<Duration>,
	answers: Vec<Vec<u32>>,
	prefix_tokens: u64,
	preemptions: u64,
	swaps: u64,
}

async fn run_one(model: Arc<Llama>, tok: Arc<TextTokenizer>, a: &BenchKvArgs, prompts: &[Vec<u32>], cfg: EngineConfig) -> anyhow::Result<Outcome> {
	let m = Metrics::new();
	let cfg = EngineConfig { max_batch: a.max_batch, queue: prompts.len() + 1, ..cfg };
	let e = Engine::start(model, tok, cfg, m.clone())?;
	let params = SamplingParams { temperature: 0.0, max_tokens: a.answer, seed: Some(1), ..Default::default() };
	let collect = |rx: tokio::sync::mpsc::Receiver<Event>, t0: Instant| async move {
		let mut rx = rx;
		let (mut ids, mut first) = (vec![], None);
		while let Some(ev) = rx.recv().await {
			match ev {
				Event::Token { id, .. } => {
					first.get_or_insert_with(|| t0.elapsed());
					ids.push(id);
				},
				Event::Done { .. } => break,
				Event::Error(e) => anyhow::bail!("engine error: {e}"),
			}
		}
		Ok((ids, first.unwrap_or_default()))
	};
	let (warm, _) = collect(e.submit(prompts[0].clone(), None, params.clone())?, Instant::now()).await?;
	let t0 = Instant::now();
	let rxs = prompts[1..].iter().map(|p| e.submit(p.clone(), None, params.clone())).collect::<Result<Vec<_>, _>>()?;
	let outs = futures::future::join_all(rxs.into_iter().map(|rx| collect(rx, t0))).await;
	let wall = t0.elapsed();
	let mut answers = vec![warm];
	let mut ttft = vec![];
	for o in outs {
		let (ids, t) = o?;
		answers.push(ids);
		ttft.push(t);
	}
	ttft.sort();
	Ok(Outcome { wall, ttft, answers, prefix_tokens: m.prefix_cached_tokens.get(), preemptions: e.health.preemptions(), swaps: e.health.swaps() })
}

pub fn run(a: BenchKvArgs) -> anyhow::Result<()> {
	let dir = tempfile::tempdir()?;
	let spec = BaseSpec {
		hidden: a.hidden,
		intermediate: a.hidden * 11 / 4,
		layers: a.layers,
		heads: 8,
		kv_heads: 4,
		vocab: 4096,
		max_positions: (a.system + a.question + a.answer).next_power_of_two(),
		seed: a.seed,
		..Default::default()
	};
	write_base_model(dir.path(), &spec, 1)?;
	let model = Arc::new(Llama::load_dir(dir.path(), DType::F32, &Device::Cpu)?);
	let tok = Arc::new(TextTokenizer::load(dir.path())?);
	let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
	let top = model.cfg.vocab_size as u32;
	let mut ids = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.gen_range(4..top)).collect() };
	let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
	let p = |v: &[Duration], q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
	let tokens = (a.requests * a.answer) as f64;
	if a.preemption {
		let prompts: Vec<Vec<u32>> = (0..=a.requests).map(|_| ids(a.system + a.question)).collect();
		let c = &model.cfg;
		let per_position = 2 * c.num_hidden_layers * c.kv_heads() * c.head_dim() * 4;
		let positions = a.max_batch * (a.system + a.question + a.answer / 4);
		let base = EngineConfig { kv_cache_bytes: Some(positions * per_position), prefix_cache: PrefixCache::Off, ..Default::default() };
		let recompute = rt.block_on(run_one(model.clone(), tok.clone(), &a, &prompts, base.clone()))?;
		let swap = rt.block_on(run_one(model, tok, &a, &prompts, EngineConfig { kv_swap_bytes: 1 << 30, ..base }))?;
		anyhow::ensure!(recompute.answers == swap.answers, "swapping changed a greedy answer");
		anyhow::ensure!(swap.swaps > 0, "nothing was swapped: the pool is large enough for every answer");
		println!(
			"{} requests of {} distinct prompt tokens, {} answer tokens each, max batch {}, a pool of {positions} positions ({} MiB), hidden {} × {} layers f32 (greedy answers identical)",
			a.requests,
			a.system + a.question,
			a.answer,
			a.max_batch,
			positions * per_position >> 20,
			a.hidden,
			a.layers
		);
		println!("| preempted sequences | wall s | answer tokens/s | TTFT p50 / p99 ms | preemptions | swapped | × recompute (tokens/s) |");
		println!("|---|---:|---:|---:|---:|---:|---:|");
		for (name, o) in [("recomputed", &recompute), ("swapped out and back", &swap)] {
			println!(
				"| {name} | {:.2} | {:.1} | {:.0} / {:.0} | {} | {} | {:.2} |",
				o.wall.as_secs_f64(),
				tokens / o.wall.as_secs_f64(),
				p(&o.ttft, 0.5),
				p(&o.ttft, 0.99),
				o.preemptions,
				o.swaps,
				recompute.wall.as_secs_f64() / o.wall.as_secs_f64()
			);
		}
		return Ok(());
	}
	let system = ids(a.system);
	let prompts: Vec<Vec<u32>> = (0..=a.requests).map(|_| system.iter().copied().chain(ids(a.question)).collect()).collect();
	let cfg = |prefix_cache| EngineConfig { prefix_cache, ..Default::default() };
	let off = rt.block_on(run_one(model.clone(), tok.clone(), &a, &prompts, cfg(PrefixCache::Off)))?;
	let on = rt.block_on(run_one(model, tok, &a, &prompts, cfg(PrefixCache::Global)))?;
	anyhow::ensure!(on.answers == off.answers, "the prefix cache changed a greedy answer");
	println!(
		"{} requests of a {}-token shared system prompt + {}-token question, {} answer tokens each, max batch {}, hidden {} × {} layers f32 (greedy answers identical with and without the cache)",
		a.requests, a.system, a.question, a.answer, a.max_batch, a.hidden, a.layers
	);
	println!("| prefix cache | wall s | answer tokens/s | TTFT p50 / p99 ms | prompt tokens read from cache | × off (tokens/s) |");
	println!("|---|---:|---:|---:|---:|---:|");
	for (name, o) in [("off", &off), ("on", &on)] {
		println!(
			"| {name} | {:.2} | {:.1} | {:.0} / {:.0} | {} | {:.2} |",
			o.wall.as_secs_f64(),
			tokens / o.wall.as_secs_f64(),
			p(&o.ttft, 0.5),
			p(&o.ttft, 0.99),
			o.prefix_tokens,
			off.wall.as_secs_f64() / o.wall.as_secs_f64()
		);
	}
	Ok(())
}
