//! `openledger-worker`: serve a base model and its LoRA adapters over an OpenAI-compatible API,
//! generate seeded model/adapter folders, benchmark mixed-adapter decoding.

use anyhow::Context;
use clap::{Parser, Subcommand};
use openledger_worker::adapters::AdapterCache;
use openledger_worker::chain::ChainState;
use openledger_worker::engine::{Engine, EngineConfig};
use openledger_worker::model::synthetic::{write_adapter, write_base_model, BaseSpec, Family};
use openledger_worker::http::{router, AppState};
use openledger_worker::metrics::Metrics;
use openledger_worker::model::config::LlamaConfig;
use openledger_worker::model::llama::Llama;
use openledger_worker::model::lora::{adapter_id, CONFIG_FILE, WEIGHTS_FILE};
use openledger_worker::tokenizer::TextTokenizer;
use openledger_worker::{parse_device, parse_dtype};
use std::path::PathBuf;
use std::sync::Arc;


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
		/// Tokenizer vocabulary to train (a llama model's vocab_size follows it; a qwen2 model
		/// always has Qwen2's 151,936 rows, these tokens spread over them).
		#[arg(long, default_value_t = 512)]
		vocab: usize,
		/// The layout to imitate: llama, or qwen2 (its 151,936-token id space, q/k/v biases,
		/// tied embeddings).
		#[arg(long, value_enum, default_value_t = Family::Llama)]
		family: Family,
		/// Rows of the embedding and output matrices when more than the tokenizer's tokens (a
		/// llama model padded like many checkpoints; ids past the tokenizer are never sampled).
		#[arg(long)]
		vocab_rows: Option<usize>,
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
		/// Write this many adapters, `OUT/adapter-0000`, `OUT/adapter-0001`, … with seeds
		/// `seed`, `seed + 1`, … (for benchmarks with thousands of adapters).
		#[arg(long)]
		count: Option<usize>,
	},
	/// Print the content id of a PEFT adapter folder (the id receipts carry).
	AdapterId { dir: PathBuf },
	/// Print the weights hash of a model folder (what its base model is registered with).
	ModelHash { dir: PathBuf },
	/// Print the id of a composition of the store's adapters (`legal+medical`,
	/// `legal:0.7+medical:0.3`): the weights hash to register it with, so that a worker serves and
	/// bills it under that name.
	CompositionId {
		#[arg(long)]
		adapters: PathBuf,
		composition: String,
	},
	/// ModelFactory: fine-tune LoRA adapters from Datanet snapshots; pretrain a base model.
	#[command(subcommand)]
	Factory(openledger_worker::factory::cli::FactoryCmd),
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
	/// KV-cache memory, in MiB: a pool of blocks that requests are admitted into as their
	/// prompts fit (the rest wait in the queue; the newest running request is preempted and
	/// swapped out or recomputed when decoding runs out of blocks). A request whose prompt + max_tokens could
	/// never fit gets 400. 0: room for --max-batch sequences of the model's whole context,
	/// taken as used.
	#[arg(long, default_value_t = 1024)]
	kv_cache_mib: usize,
	/// Host memory, in MiB, for the keys and values of sequences preempted when the KV cache runs
	/// out: they are copied out and back instead of recomputed while they fit (0: always
	/// recompute).
	#[arg(long, default_value_t = 1024)]
	kv_swap_mib: usize,
	/// Positions per KV block (full blocks of identical prompt prefixes are shared).
	#[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
	kv_block_size: u32,
	/// Who shares the KV blocks of identical prompt prefixes: `tenant` (requests paid by the same
	/// account; unpaid requests share with no one), `global` (every request: one trust domain,
	/// since a cached prefix answers sooner and so can be probed), or `off`.
	#[arg(long, default_value = "tenant")]
	prefix_cache: openledger_worker::engine::PrefixCache,
	/// Memory for resident adapters, in MiB (LRU beyond it).
	#[arg(long, default_value_t = 1024)]
	adapter_cache_mib: usize,
	/// Span-attribution index (`span-index build`); answers then carry an `attribution` object.
	#[arg(long)]
	span_index: Option<PathBuf>,
	/// Attribute answers of factory-trained adapters by the influence of their training examples
	/// (DataInf; holds a second, f32 copy of the base weights for the gradients).
	#[arg(long)]
	influence: bool,
	/// Memory for loaded influence caches (training gradients and their Gram matrices), in MiB;
	/// LRU beyond it, and an adapter whose cache alone is larger is refused.
	#[arg(long, default_value_t = 512)]
	influence_cache_mib: usize,
	/// Influence attributions computed at once; more requests that need one get 429.
	#[arg(long, default_value_t = 1)]
	influence_concurrency: usize,
	#[command(flatten)]
	chain: ChainArgs,
}

/// Billing on chain: vouchers in, signed receipts out (off without `--chain-rpc`).
#[derive(clap::Args)]
struct ChainArgs {
	/// The node's WebSocket JSON-RPC endpoint, e.g. ws://127.0.0.1:9944.
	#[arg(long, env = "OPENLEDGER_CHAIN_RPC")]
	chain_rpc: Option<String>,
	/// The worker's bonded account (signs the receipt-batch extrinsics, pays their fees): a
	/// development URI (`//Charlie`) here; any other secret URI in `--account-file` or the
	/// environment variable (a value on the command line is visible to every user in `ps`).
	#[arg(long, env = "OPENLEDGER_WORKER_ACCOUNT", hide_env_values = true)]
	account: Option<String>,
	/// File whose first line is the account's secret URI.
	#[arg(long)]
	account_file: Option<PathBuf>,
	/// The receipt-signing key registered for the worker (`bond_worker`/`update_worker`):
	/// development URI here, else `--signing-key-file` or the environment variable. Without
	/// either, the worker keeps its own key in `<receipts>/signing-key` (made at first start,
	/// mode 600, its public key logged): a key separate from the funded account.
	#[arg(long, env = "OPENLEDGER_SIGNING_KEY", hide_env_values = true)]
	signing_key: Option<String>,
	/// File whose first line is the signing key's secret URI.
	#[arg(long)]
	signing_key_file: Option<PathBuf>,
	/// File whose first line is the bearer token of the admin endpoints (`/v1/factory/*`);
	/// required with --content-store. Clients send `Authorization: Bearer <token>`.
	#[arg(long)]
	admin_token_file: Option<PathBuf>,
	/// On-chain model id of the base model, to bill requests to it (adapters are found by their id).
	#[arg(long)]
	base_model_id: Option<u32>,
	/// Folder of the durable receipt queue.
	#[arg(long, default_value = "worker-receipts")]
	receipts: PathBuf,
	/// Receipts per extrinsic (the runtime takes at most 256).
	#[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=256))]
	receipt_batch: u64,
	/// Wait this long for a fuller batch once a receipt is queued.
	#[arg(long, default_value_t = 200)]
	receipt_linger_ms: u64,
	/// Serve requests without a voucher (unbilled) instead of refusing them with 402.
	#[arg(long)]
	allow_unpaid: bool,
	/// Contributions' content store (`ab/cd/abcd…`): enables `POST /v1/factory/jobs`, which
	/// fine-tunes adapters of the base model (--base-model-id) on Datanet snapshots, registers them
	/// as models of --account and serves them.
	#[arg(long, requires_all = ["chain_rpc", "base_model_id"])]
	content_store: Option<PathBuf>,
	/// Folder of the factory's job files.
	#[arg(long, default_value = "worker-factory")]
	factory_jobs: PathBuf,
	/// How often to look for disputes of this worker's receipts to answer, in milliseconds.
	#[arg(long, default_value_t = 2000)]
	dispute_poll_ms: u64,
	/// TESTS ONLY: credit another contribution of the index with the top contribution's spans
	/// (a share no span backs), to exercise disputes. Never use it on a real network.
	#[arg(long, hide = true)]
	test_misattribute: bool,
}

impl ChainArgs {
	/// A secret from the environment (clap read it there), a file, or a development URI.
	fn secret(value: &Option<String>, var: &str, file: Option<&std::path::Path>, what: &str) -> anyhow::Result<Option<String>> {
		if file.is_none() && value.is_some() && std::env::var(var).ok() == *value {
			return Ok(value.clone());
		}
		openledger_worker::secrets::secret_uri(value.as_deref(), file, what)
	}
	fn account_uri(&self) -> anyhow::Result<Option<String>> {
		Self::secret(&self.account, "OPENLEDGER_WORKER_ACCOUNT", self.account_file.as_deref(), "account")
	}
	fn signing_key_uri(&self) -> anyhow::Result<Option<String>> {
		Self::secret(&self.signing_key, "OPENLEDGER_SIGNING_KEY", self.signing_key_file.as_deref(), "signing-key")
	}
}

/// The worker's own receipt-signing key, `<receipts>/signing-key` (a random seed, mode 600),
/// made at first start.
fn own_signing_key(receipts: &std::path::Path) -> anyhow::Result<sp_core::sr25519::Pair> {
	use sp_core::Pair;
	std::fs::create_dir_all(receipts).with_context(|| format!("creating {}", receipts.display()))?;
	let path = receipts.join("signing-key");
	if !path.exists() {
		let (_, seed) = sp_core::sr25519::Pair::generate();
		let tmp = receipts.join(".signing-key.tmp");
		{
			use std::io::Write;
			let mut opts = std::fs::OpenOptions::new();
			opts.write(true).create(true).truncate(true);
			#[cfg(unix)]
			std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
			let mut f = opts.open(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
			writeln!(f, "0x{}", hex::encode(seed))?;
			f.sync_all()?;
		}
		std::fs::rename(&tmp, &path)?;
	}
	let uri = openledger_worker::secrets::read_secret_file(&path)?;
	let pair = openledger_worker::chain::keypair(uri.lines().next().unwrap_or_default().trim())?;
	tracing::info!(
		"receipt-signing key {} (0x{}): register it with bond_worker / update_worker",
		path.display(),
		hex::encode(pair.public().0)
	);
	Ok(pair)
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (what service managers and scripts/start.sh send):
/// the server stops taking connections and finishes the requests in flight.
async fn shutdown_signal() {
	// A signal that cannot be listened for never fires (it must not stop the server at once).
	let ctrl_c = async {
		if let Err(e) = tokio::signal::ctrl_c().await {
			tracing::warn!("cannot listen for Ctrl-C: {e}");
			std::future::pending::<()>().await;
		}
	};
	#[cfg(unix)]
	let term = async {
		match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
			Ok(mut term) => {
				term.recv().await;
			},
			Err(e) => {
				tracing::warn!("cannot listen for SIGTERM: {e}");
				std::future::pending::<()>().await;
			},
		}
	};
	#[cfg(not(unix))]
	let term = std::future::pending::<()>();
	tokio::select! {
		_ = ctrl_c => {},
		_ = term => {},
	}
	tracing::info!("shutting down: finishing the requests in flight");
}

/// Connects to the chain, loads the worker's registration and starts following the chain and
/// settling receipts.
async fn start_chain(
	args: &ChainArgs,
	base_name: &str,
	adapters_dir: &std::path::Path,
	metrics: &Metrics,
	spans: Option<Arc<openledger_worker::attribution::span::SpanIndex>>,
) -> anyhow::Result<Option<Arc<ChainState>>> {
	use openledger_worker::chain::{self, queue::ReceiptQueue, registry::Registry, settler};
	use sp_core::Pair;
	let Some(url) = &args.chain_rpc else { return Ok(None) };
	let account = chain::keypair(&args.account_uri()?.context("--account (or --account-file) is required with --chain-rpc")?)?;
	let signing_key = match args.signing_key_uri()? {
		Some(s) => chain::keypair(&s)?,
		None => own_signing_key(&args.receipts)?,
	};
	let client = chain::ChainClient::connect(url).await?;
	let registry = Arc::new(Registry::new(
		account.public().into(),
		signing_key.public().0,
		client.genesis,
		base_name.to_string(),
		args.base_model_id,
		adapters_dir.to_path_buf(),
	));
	registry.refresh(&client).await?;
	let queue = Arc::new(ReceiptQueue::open(&args.receipts)?);
	let (pending, settled, rejected) = queue.counts();
	tracing::info!(
		"billing on chain {url} as {}: serving {:?}; receipt queue {} ({pending} pending, {settled} settled, {rejected} rejected)",
		registry.account,
		registry.served(),
		args.receipts.display()
	);
	metrics.receipts_queued.set(pending as i64);
	let conn = Arc::new(settler::Connection::new(url.clone(), client));
	let evidence = Arc::new(chain::evidence::EvidenceStore::open(&args.receipts.join("evidence"))?);
	tokio::spawn(chain::evidence::answer_disputes(
		conn.clone(),
		account.clone(),
		evidence.clone(),
		spans,
		std::time::Duration::from_millis(args.dispute_poll_ms.max(100)),
	));
	if args.test_misattribute {
		tracing::warn!("--test-misattribute: this worker credits contributions no span backs (tests only)");
	}
	tokio::spawn(chain::follow(conn.clone(), registry.clone(), queue.clone(), evidence.clone()));
	tokio::spawn(
		settler::Settler {
			conn: conn.clone(),
			queue: queue.clone(),
			account,
			batch: args.receipt_batch as usize,
			linger: std::time::Duration::from_millis(args.receipt_linger_ms),
			metrics: metrics.clone(),
			uncertain: Default::default(),
			limit: std::sync::atomic::AtomicUsize::new(args.receipt_batch as usize),
		}
		.run(),
	);
	Ok(Some(Arc::new(ChainState {
		registry,
		queue,
		conn,
		signing_key,
		require_voucher: !args.allow_unpaid,
		evidence,
		misattribute: args.test_misattribute,
	})))
}

#[global_allocator]
static ALLOC: openledger_worker::LineAligned = openledger_worker::LineAligned;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
	openledger_worker::init_logging();
	openledger_worker::tune_allocator();
	match Cli::parse().cmd {
		Cmd::Serve(args) => serve(args).await,
		Cmd::GenModel { out, hidden, intermediate, layers, heads, kv_heads, vocab, family, vocab_rows, max_positions, seed, shards } => {
			let spec = BaseSpec { hidden, intermediate, layers, heads, kv_heads, vocab, max_positions, seed, family, vocab_rows };
			let cfg = write_base_model(&out, &spec, shards)?;
			println!(
				"wrote {} ({}, hidden {}, {} layers, vocab {}, seed {seed})",
				out.display(),
				cfg.model_type,
				cfg.hidden_size,
				cfg.num_hidden_layers,
				cfg.vocab_size
			);
			Ok(())
		},
		Cmd::GenAdapter { base, out, rank, alpha, targets, seed, count } => {
			let cfg: LlamaConfig = serde_json::from_slice(&std::fs::read(base.join("config.json"))?)?;
			let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
			if let Some(n) = count {
				for i in 0..n {
					write_adapter(&out.join(format!("adapter-{i:04}")), &cfg, rank, alpha, &targets, seed + i as u64)?;
				}
				println!("wrote {n} adapters under {} (rank {rank}, {targets:?})", out.display());
				return Ok(());
			}
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
		Cmd::CompositionId { adapters, composition } => {
			let parts = openledger_worker::model::lora::parse_composition(&composition)
				.context("a composition names two or more adapters joined by `+`")?
				.map_err(|e| anyhow::anyhow!(e))?;
			let mut ids = Vec::new();
			for (name, w) in &parts {
				let dir = adapters.join(name);
				ids.push((adapter_id(&std::fs::read(dir.join(CONFIG_FILE))?, &std::fs::read(dir.join(WEIGHTS_FILE))?)?, *w));
			}
			println!("0x{}", hex::encode(openledger_worker::model::lora::composition_id(&ids)));
			Ok(())
		},
		Cmd::ModelHash { dir } => {
			println!("0x{}", hex::encode(openledger_worker::factory::model_weights_hash(&dir)?));
			Ok(())
		},
		Cmd::Factory(cmd) => openledger_worker::factory::cli::run(cmd).await,
		Cmd::SpanIndex(cmd) => openledger_worker::attribution::cli::run(cmd).await,
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
	let adapters = AdapterCache::new(args.adapters.clone(), model.cfg.clone(), device.clone(), args.adapter_cache_mib << 20, metrics.clone());
	// On an accelerator the device paths read resident copies in the serving dtype, counted in the
	// cache's budget; the CPU's kernel reads the host copies in place.
	let adapters = Arc::new(if device.is_cpu() { adapters } else { adapters.with_resident(dtype) });
	let spans = match &args.span_index {
		Some(dir) => Some(Arc::new(openledger_worker::attribution::span::SpanIndex::open(dir)?)),
		None => None,
	};
	let retrieval = match (&args.span_index, &spans) {
		(Some(dir), Some(idx)) => {
			let r = openledger_worker::attribution::retrieval::RetrievalIndex::open(dir, idx)?;
			if r.is_none() {
				tracing::warn!("the span index has no retrieval index: `attribution: \"retrieval\"` is off (span build-retrieval --index DIR)");
			}
			r.map(Arc::new)
		},
		_ => None,
	};
	let chain = start_chain(&args.chain, &base_name, &args.adapters, &metrics, spans.clone()).await?;
	let factory = match (&args.chain.content_store, &chain) {
		(Some(store), Some(chain)) => {
			let f = openledger_worker::factory::jobs::Factory::open(
				args.model.clone(),
				args.chain.base_model_id.context("--base-model-id is required with --content-store")?,
				args.adapters.clone(),
				store.clone(),
				args.chain.factory_jobs.clone(),
				chain.conn.clone(),
				openledger_worker::chain::keypair(&args.chain.account_uri()?.context("--account")?)?,
			)?;
			tokio::spawn(f.clone().run());
			Some(f)
		},
		_ => None,
	};
	let admin_token = match &args.chain.admin_token_file {
		Some(p) => Some(openledger_worker::secrets::AdminToken::from_file(p)?),
		None if factory.is_some() => anyhow::bail!("--content-store enables the factory endpoints: give them an --admin-token-file"),
		None => None,
	};
	let engine = Engine::start(
		model,
		tokenizer.clone(),
		EngineConfig {
			max_batch: args.max_batch,
			max_step_tokens: args.max_step_tokens,
			queue: args.queue,
			kv_cache_bytes: (args.kv_cache_mib > 0).then_some(args.kv_cache_mib.saturating_mul(1 << 20)),
			kv_block_size: args.kv_block_size as usize,
			kv_swap_bytes: args.kv_swap_mib.saturating_mul(1 << 20),
			prefix_cache: args.prefix_cache,
			suppress_tokens: openledger_worker::model::config::suppress_tokens(&args.model)?,
		},
		metrics.clone(),
	)?;
	let state = Arc::new(AppState {
		engine,
		tokenizer,
		adapters,
		base_name,
		metrics,
		created: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs(),
		next_id: Default::default(),
		spans,
		retrieval,
		chain,
		influence: if args.influence {
			Some(Arc::new(openledger_worker::attribution::influence::Attributor::new(
				&args.model,
				&args.adapters,
				args.influence_cache_mib << 20,
				args.influence_concurrency,
			)?))
		} else {
			None
		},
		factory,
		admin_token,
	});
	let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
		.await
		.with_context(|| format!("binding {}:{}", args.host, args.port))?;
	tracing::info!("serving the OpenAI API on http://{}", listener.local_addr()?);
	axum::serve(listener, router(state))
		.with_graceful_shutdown(shutdown_signal())
		.await?;
	// The requests in flight are answered. A factory job still training on a blocking thread
	// would hold the runtime's shutdown until it ends: its files resume it at the next start.
	tracing::info!("stopped");
	std::process::exit(0)
}
