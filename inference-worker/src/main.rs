//! `openledger-worker`: serve a base model and its LoRA adapters over an OpenAI-compatible API,
//! generate seeded model/adapter folders, benchmark mixed-adapter decoding.

use anyhow::Context;
use clap::{Parser, Subcommand};
use openledger_worker::adapters::AdapterCache;
use openledger_worker::engine::{Engine, EngineConfig};
use openledger_worker::gen::{write_adapter, write_base_model, BaseSpec};
use openledger_worker::http::{router, AppState};
use openledger_worker::metrics::Metrics;
use openledger_worker::model::config::LlamaConfig;
use openledger_worker::model::llama::Llama;
use openledger_worker::model::lora::{adapter_id, CONFIG_FILE, WEIGHTS_FILE};
use openledger_worker::tokenizer::TextTokenizer;
use openledger_worker::{parse_device, parse_dtype};
use std::path::PathBuf;
use std::sync::Arc;

mod bench;

#[derive(Parser)]
#[command(name = "openledger-worker", version, about)]
struct Cli {
	#[command(subcommand)]
	cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
	/// Serve the OpenAI-compatible API.
	Serve(ServeArgs),
	/// Write a seeded base model folder (config.json, safetensors, tokenizer.json, chat template).
	GenModel {
		#[arg(long)]
		out: PathBuf,
		#[arg(long, default_value_t = 64)]
		hidden: usize,
		#[arg(long, default_value_t = 176)]
		intermediate: usize,
		#[arg(long, default_value_t = 2)]
		layers: usize,
		#[arg(long, default_value_t = 4)]
		heads: usize,
		#[arg(long, default_value_t = 2)]
		kv_heads: usize,
		/// Tokenizer vocabulary to train (the model's vocab_size follows it).
		#[arg(long, default_value_t = 512)]
		vocab: usize,
		#[arg(long, default_value_t = 512)]
		max_positions: usize,
		#[arg(long, default_value_t = 42)]
		seed: u64,
		/// Write this many safetensors shards with an index, like large checkpoints.
		#[arg(long, default_value_t = 1)]
		shards: usize,
	},
	/// Write a seeded PEFT LoRA adapter folder for a base model.
	GenAdapter {
		#[arg(long)]
		base: PathBuf,
		#[arg(long)]
		out: PathBuf,
		#[arg(long, default_value_t = 8)]
		rank: usize,
		#[arg(long, default_value_t = 16.0)]
		alpha: f64,
		#[arg(long, value_delimiter = ',', default_value = "q_proj,v_proj")]
		targets: Vec<String>,
		#[arg(long, default_value_t = 1)]
		seed: u64,
	},
	/// Print the content id of a PEFT adapter folder (the id receipts carry).
	AdapterId { dir: PathBuf },
	/// Mixed-adapter decode throughput vs the base model and merge-per-request; cold loads.
	BenchLora(bench::BenchArgs),
	/// Span-attribution index: build from JSON lines, query counts / longest matches.
	#[command(subcommand)]
	SpanIndex(openledger_worker::attribution::cli::SpanCmd),
}

#[derive(Parser)]
struct ServeArgs {
	/// Hugging Face model folder (config.json, *.safetensors, tokenizer.json).
	#[arg(long, env = "OPENLEDGER_MODEL")]
	model: PathBuf,
	/// Adapter store: a folder of PEFT adapter folders; the folder name is the `model` to ask for.
	#[arg(long, env = "OPENLEDGER_ADAPTERS")]
	adapters: PathBuf,
	/// The name the base model answers to (default: the model folder's name).
	#[arg(long)]
	served_model_name: Option<String>,
	#[arg(long, default_value = "127.0.0.1")]
	host: String,
	#[arg(long, default_value_t = 8000)]
	port: u16,
	#[arg(long, default_value = "f32")]
	dtype: String,
	#[arg(long, default_value = "cpu")]
	device: String,
	#[arg(long, default_value_t = 32)]
	max_batch: usize,
	#[arg(long, default_value_t = 2048)]
	max_step_tokens: usize,
	/// Requests that may wait beyond a full batch; more get HTTP 429 with Retry-After.
	#[arg(long, default_value_t = 64)]
	queue: usize,
	/// Memory for resident adapters, in MiB (LRU beyond it).
	#[arg(long, default_value_t = 1024)]
	adapter_cache_mib: usize,
	/// Span-attribution index (`span-index build`); answers then carry an `attribution` object.
	#[arg(long)]
	span_index: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
	tracing_subscriber::fmt()
		.with_env_filter(
			tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".parse().expect("static; qed")),
		)
		.init();
	match Cli::parse().cmd {
		Cmd::Serve(args) => serve(args).await,
		Cmd::GenModel { out, hidden, intermediate, layers, heads, kv_heads, vocab, max_positions, seed, shards } => {
			let spec = BaseSpec { hidden, intermediate, layers, heads, kv_heads, vocab, max_positions, seed };
			let cfg = write_base_model(&out, &spec, shards)?;
			println!(
				"wrote {} (llama, hidden {}, {} layers, vocab {}, seed {seed})",
				out.display(),
				cfg.hidden_size,
				cfg.num_hidden_layers,
				cfg.vocab_size
			);
			Ok(())
		},
		Cmd::GenAdapter { base, out, rank, alpha, targets, seed } => {
			let cfg: LlamaConfig = serde_json::from_slice(&std::fs::read(base.join("config.json"))?)?;
			let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
			write_adapter(&out, &cfg, rank, alpha, &targets, seed)?;
			let id = adapter_id(&std::fs::read(out.join(CONFIG_FILE))?, &std::fs::read(out.join(WEIGHTS_FILE))?)?;
			println!("wrote {} (rank {rank}, {targets:?}) id 0x{}", out.display(), hex::encode(id));
			Ok(())
		},
		Cmd::AdapterId { dir } => {
			let id = adapter_id(&std::fs::read(dir.join(CONFIG_FILE))?, &std::fs::read(dir.join(WEIGHTS_FILE))?)?;
			println!("0x{}", hex::encode(id));
			Ok(())
		},
		Cmd::BenchLora(args) => bench::run(args),
		Cmd::SpanIndex(cmd) => openledger_worker::attribution::cli::run(cmd),
	}
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
	let device = parse_device(&args.device)?;
	let dtype = parse_dtype(&args.dtype)?;
	let started = std::time::Instant::now();
	let model = Arc::new(Llama::load_dir(&args.model, dtype, &device)?);
	let tokenizer = Arc::new(TextTokenizer::load(&args.model)?);
	let base_name = args.served_model_name.unwrap_or_else(|| {
		args.model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "base".into())
	});
	tracing::info!(
		"loaded {} ({} layers, hidden {}, {:.1} MiB of weights, {:?}) in {:.2}s",
		base_name,
		model.cfg.num_hidden_layers,
		model.cfg.hidden_size,
		model.weight_bytes() as f64 / (1 << 20) as f64,
		dtype,
		started.elapsed().as_secs_f64()
	);
	std::fs::create_dir_all(&args.adapters).with_context(|| format!("creating {}", args.adapters.display()))?;
	let metrics = Metrics::new();
	let adapters = Arc::new(AdapterCache::new(
		args.adapters.clone(),
		model.cfg.clone(),
		device.clone(),
		args.adapter_cache_mib << 20,
		metrics.clone(),
	));
	let engine = Engine::start(
		model,
		tokenizer.clone(),
		EngineConfig { max_batch: args.max_batch, max_step_tokens: args.max_step_tokens, queue: args.queue },
		metrics.clone(),
	);
	let state = Arc::new(AppState {
		engine,
		tokenizer,
		adapters,
		base_name,
		metrics,
		created: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs(),
		next_id: Default::default(),
		spans: match &args.span_index {
			Some(dir) => Some(Arc::new(openledger_worker::attribution::span::SpanIndex::open(dir)?)),
			None => None,
		},
	});
	let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
		.await
		.with_context(|| format!("binding {}:{}", args.host, args.port))?;
	tracing::info!("serving the OpenAI API on http://{}", listener.local_addr()?);
	axum::serve(listener, router(state))
		.with_graceful_shutdown(async {
			let _ = tokio::signal::ctrl_c().await;
		})
		.await?;
	Ok(())
}
