//! ModelFactory: from a Datanet snapshot to a served LoRA model.
//!
//! 1. [`data`]: the snapshots' contributions, verified against the on-chain Merkle roots,
//!    tokenized, split into train and held-out documents, mixed by weight;
//! 2. [`net`] + [`train`]: a LoRA adapter trained with candle (AdamW, schedule, dropout, clipping),
//!    evaluated before and after on the held-out split;
//! 3. [`finetune`] writes it in the PEFT layout into the adapter store (atomically: the worker
//!    never sees half an adapter) with a JSON report, and [`register`] registers it on chain with
//!    its lineage and training-config hash; a worker that lists the model serves it from the next
//!    finalized block;
//! 4. [`pretrain`] trains every weight of a (seeded) base model on a corpus, so that the demo's
//!    base model is a language model rather than noise.
//!
//! Everything is seeded: the same data, configuration and seed give the same adapter id on the
//! same machine.

pub mod cli;
pub mod data;
pub mod influence;
pub mod jobs;
pub mod net;
pub mod train;

use crate::chain::ChainClient;
use crate::model::config::{projection_index, LlamaConfig, PROJECTIONS};
use crate::model::llama::safetensors_files;
use crate::model::lora::{adapter_id, content_id, CONFIG_FILE, WEIGHTS_FILE};
use crate::tokenizer::TextTokenizer;
use anyhow::{anyhow, bail, ensure, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use data::{Doc, SnapshotRef};
use jsonrpsee::rpc_params;
use net::{LoraParams, Net};
use openledger_primitives::{tx, AccountId, ModelId};
use serde::{Deserialize, Serialize};
use sp_core::{sr25519, Pair};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use train::{OptimArgs, RunReport};

/// Domain tag of a base model's weights hash.
pub const MODEL_ID_DOMAIN: &[u8] = b"openledger:model:v1";
/// The report written next to a trained adapter.
pub const REPORT_FILE: &str = "training_report.json";

/// LoRA knobs.
#[derive(clap::Args, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoraArgs {
	/// LoRA rank r.
	#[arg(long, default_value_t = 8)]
	pub rank: usize,
	/// LoRA alpha (the update is scaled by alpha / r).
	#[arg(long, default_value_t = 16)]
	pub alpha: u16,
	/// Dropout on the LoRA branch's input during training.
	#[arg(long, default_value_t = 0.05)]
	pub dropout: f32,
	/// Projections to adapt (comma separated), or `all-linear`.
	#[arg(long, value_delimiter = ',', default_value = "q_proj,k_proj,v_proj,o_proj")]
	pub target_modules: Vec<String>,
}

/// A flattened argument group with every field at its command-line default (so the HTTP API
/// and the command line share one set of defaults).
pub fn clap_defaults<T: clap::Args + clap::FromArgMatches>() -> T {
	let cmd = T::augment_args(clap::Command::new("defaults"));
	let matches = cmd.get_matches_from(["defaults"]);
	T::from_arg_matches(&matches).expect("every field has a default; qed")
}

impl Default for LoraArgs {
	fn default() -> Self {
		clap_defaults()
	}
}

impl LoraArgs {
	pub fn targets(&self) -> Result<Vec<usize>> {
		if self.target_modules.iter().any(|t| t == "all-linear") {
			return Ok((0..PROJECTIONS.len()).collect());
		}
		ensure!(!self.target_modules.is_empty(), "--target-modules is empty");
		let mut v = self
			.target_modules
			.iter()
			.map(|t| projection_index(t).ok_or_else(|| anyhow!("--target-modules: {t:?} is not one of {PROJECTIONS:?}")))
			.collect::<Result<Vec<_>>>()?;
		v.sort_unstable();
		v.dedup();
		Ok(v)
	}

	pub fn check(&self) -> Result<()> {
		ensure!((1..=256).contains(&self.rank), "--rank must be in 1..=256");
		ensure!(self.alpha > 0, "--alpha must be positive");
		ensure!(self.target_modules.len() <= 8, "--target-modules: at most 8 names");
		ensure!((0.0..1.0).contains(&self.dropout), "--dropout is in [0, 1)");
		self.targets().map(|_| ())
	}
}

/// The weights hash of a model folder: SHA-256 over a domain tag, `config.json` (canonical) and
/// every tensor of its safetensors files (sorted by name). What a base model is registered with.
pub fn model_weights_hash(dir: &Path) -> Result<[u8; 32]> {
	let config = std::fs::read(dir.join("config.json")).with_context(|| format!("reading {}/config.json", dir.display()))?;
	let files = safetensors_files(dir)?;
	let maps = files
		.iter()
		.map(|f| {
			let file = std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?;
			// Safety: read-only mapping of a model file that is not modified while hashing.
			Ok(unsafe { memmap2::Mmap::map(&file)? })
		})
		.collect::<Result<Vec<_>>>()?;
	let slices: Vec<&[u8]> = maps.iter().map(|m| &m[..]).collect();
	content_id(MODEL_ID_DOMAIN, &config, &slices)
}

/// A model folder's config and weights (f32, by HF name).
pub fn load_weights(dir: &Path, device: &Device) -> Result<(LlamaConfig, HashMap<String, Tensor>)> {
	let cfg: LlamaConfig = serde_json::from_slice(&std::fs::read(dir.join("config.json")).with_context(|| format!("reading {}/config.json", dir.display()))?)
		.context("config.json")?;
	cfg.validate()?;
	let mut weights = HashMap::new();
	for f in safetensors_files(dir)? {
		for (name, t) in candle_core::safetensors::load(&f, device)? {
			weights.insert(name, t.to_dtype(DType::F32)?);
		}
	}
	Ok((cfg, weights))
}

fn special(tk: &TextTokenizer, token: &Option<String>) -> Option<u32> {
	token.as_ref().and_then(|t| tk.inner.token_to_id(t))
}

/// The BOS and end-of-document ids used to frame training documents.
fn framing(tk: &TextTokenizer, cfg: &LlamaConfig) -> (Option<u32>, Option<u32>) {
	let bos = special(tk, &tk.bos_token).or_else(|| cfg.bos_token_id.as_ref().and_then(|b| b.to_vec().first().copied()));
	// `</s>`-style document end rather than the chat end-of-turn token.
	let eos = tk.inner.token_to_id(crate::model::synthetic::EOS).or_else(|| cfg.eos_ids().first().copied());
	(bos, eos)
}

/// A fine-tuning job.
pub struct FinetuneSpec<'a> {
	pub base_dir: &'a Path,
	/// [`model_weights_hash`] of `base_dir` (computed once by the caller, who checks it on chain).
	pub base_hash: [u8; 32],
	/// The base model's on-chain id (recorded in the report and the config hash).
	pub base_model: Option<ModelId>,
	pub snapshots: &'a [SnapshotRef],
	pub docs: &'a [Doc],
	pub adapters_dir: &'a Path,
	pub name: &'a str,
	pub lora: &'a LoraArgs,
	pub optim: &'a OptimArgs,
	pub device: &'a Device,
	/// Called after every step with (step, total steps, loss).
	pub progress: &'a (dyn Fn(usize, usize, f64) + Sync),
}

/// Report of a fine-tuning run (also `training_report.json` in the adapter folder).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FinetuneReport {
	pub name: String,
	pub adapter_dir: PathBuf,
	pub adapter_id: String,
	pub training_config_hash: String,
	pub base_weights_hash: String,
	pub base_model: Option<ModelId>,
	pub snapshots: Vec<SnapshotRef>,
	/// Lineage weights in parts per billion (sum 10⁹), as registered.
	pub lineage_perbill: Vec<u32>,
	pub train_documents: usize,
	/// `(snapshot index, leaf index)` of the held-out documents.
	pub eval_documents: Vec<(usize, u32)>,
	pub lora: LoraArgs,
	pub optim: OptimArgs,
	pub run: RunReport,
	/// Training windows whose LoRA gradients were cached for influence attribution (0: the
	/// adapter is too large for the cache, see [`INFLUENCE_CACHE_LIMIT`]).
	#[serde(default)]
	pub influence_examples: usize,
}

/// Most gradient values (windows × LoRA parameters) cached for influence attribution.
pub const INFLUENCE_CACHE_LIMIT: usize = 64 << 20;

/// Normalises positive weights to parts per billion summing to exactly 10⁹ (largest remainder).
pub fn perbill_weights(weights: &[f64]) -> Vec<u32> {
	let total: f64 = weights.iter().sum();
	let exact: Vec<f64> = weights.iter().map(|w| w / total * 1e9).collect();
	let mut out: Vec<u32> = exact.iter().map(|e| e.floor() as u32).collect();
	let mut rest = 1_000_000_000u32 - out.iter().sum::<u32>();
	let mut order: Vec<usize> = (0..weights.len()).collect();
	order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
	for i in order.into_iter().cycle() {
		if rest == 0 {
			break;
		}
		out[i] += 1;
		rest -= 1;
	}
	out
}

/// Hash of everything that determines the adapter besides the data's bytes (which the snapshots
/// pin): base weights, snapshots and weights, LoRA and optimiser settings.
pub fn training_config_hash(base_weights: &[u8; 32], snapshots: &[SnapshotRef], lora: &LoraArgs, optim: &OptimArgs) -> Result<[u8; 32]> {
	let v = serde_json::json!({
		"domain": "openledger:training-config:v1",
		"base_weights": format!("0x{}", hex::encode(base_weights)),
		"snapshots": snapshots, "lora": lora, "optim": optim,
	});
	Ok(sp_core::hashing::blake2_256(&serde_json::to_vec(&v)?))
}

/// Trains a LoRA adapter on `spec.docs` and writes it (PEFT layout + report) to
/// `<adapters_dir>/<name>`.
pub fn finetune(spec: &FinetuneSpec<'_>) -> Result<FinetuneReport> {
	spec.lora.check()?;
	spec.optim.check()?;
	ensure!(crate::adapters::valid_name(spec.name), "adapter name {:?}: letters, digits, '-', '_', '.' only", spec.name);
	let out = spec.adapters_dir.join(spec.name);
	ensure!(!out.exists(), "{} exists already: choose another name", out.display());
	ensure!(!spec.docs.is_empty(), "no training documents");
	let base_hash = spec.base_hash;
	let (cfg, weights) = load_weights(spec.base_dir, spec.device)?;
	let tk = TextTokenizer::load(spec.base_dir)?;
	let (bos, eos) = framing(&tk, &cfg);
	let max_len = spec.optim.max_seq_len.min(cfg.max_position_embeddings - 1);

	let (train_docs, eval_docs) = data::split(spec.docs, spec.optim.eval_fraction, spec.optim.seed);
	let train_w = data::windows(&tk, spec.docs, &train_docs, bos, eos, max_len)?;
	let eval_w = data::windows(&tk, spec.docs, &eval_docs, bos, eos, max_len)?;
	let targets = spec.lora.targets()?;
	let scale = spec.lora.alpha as f64 / spec.lora.rank as f64;
	let lora = LoraParams::init(&cfg, spec.lora.rank, scale, spec.lora.dropout, &targets, spec.optim.seed, spec.device)?;
	let net = Net::new(&cfg, &weights, Some(&lora), max_len + 1, spec.device)?;
	let source_weights: Vec<f64> = spec.snapshots.iter().map(|s| s.weight).collect();
	let run = train::run(&net, lora.vars(), &train_w, &eval_w, &source_weights, spec.optim, spec.device, spec.name, spec.progress)?;

	let config_hash = training_config_hash(&base_hash, spec.snapshots, spec.lora, spec.optim)?;
	// The training gradients, for influence attribution of what the adapter will answer.
	let influence = if train_w.len() * lora.count() <= INFLUENCE_CACHE_LIMIT {
		let examples = train_w.iter().map(|w| influence::ExampleRef { source: w.source, leaf: spec.docs[w.doc].leaf }).collect();
		Some(influence::InfluenceCache::build(&net, &lora, &train_w, examples, spec.device)?)
	} else {
		None
	};
	let target_names: Vec<&str> = targets.iter().map(|&i| PROJECTIONS[i]).collect();
	let peft = serde_json::json!({
		"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": spec.lora.rank, "lora_alpha": spec.lora.alpha,
		"lora_dropout": spec.lora.dropout, "target_modules": target_names, "bias": "none",
		"fan_in_fan_out": false, "use_rslora": false, "inference_mode": true,
		"base_model_name_or_path": spec.base_dir.file_name().map(|n| n.to_string_lossy().into_owned()),
	});
	let config_bytes = serde_json::to_vec_pretty(&peft)?;
	let tensors = lora.peft_tensors();
	let tmp = spec.adapters_dir.join(format!(".tmp-{}-{}", spec.name, std::process::id()));
	std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
	std::fs::write(tmp.join(CONFIG_FILE), &config_bytes)?;
	candle_core::safetensors::save(&tensors, tmp.join(WEIGHTS_FILE))?;
	if let Some(c) = &influence {
		c.save(&tmp)?;
	}
	let id = adapter_id(&config_bytes, &std::fs::read(tmp.join(WEIGHTS_FILE))?)?;
	let report = FinetuneReport {
		name: spec.name.to_string(),
		adapter_dir: out.clone(),
		adapter_id: format!("0x{}", hex::encode(id)),
		training_config_hash: format!("0x{}", hex::encode(config_hash)),
		base_weights_hash: format!("0x{}", hex::encode(base_hash)),
		base_model: spec.base_model,
		snapshots: spec.snapshots.to_vec(),
		lineage_perbill: perbill_weights(&source_weights),
		train_documents: train_docs.len(),
		eval_documents: eval_docs.iter().map(|&d| (spec.docs[d].source, spec.docs[d].leaf)).collect(),
		lora: spec.lora.clone(),
		optim: spec.optim.clone(),
		run,
		influence_examples: influence.as_ref().map_or(0, |c| c.len()),
	};
	std::fs::write(tmp.join(REPORT_FILE), serde_json::to_vec_pretty(&report)?)?;
	std::fs::rename(&tmp, &out).with_context(|| format!("moving the adapter into {}", out.display()))?;
	Ok(report)
}

/// Report of a pretraining run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PretrainReport {
	pub model_dir: PathBuf,
	pub weights_hash_before: String,
	pub weights_hash: String,
	pub documents: usize,
	pub optim: OptimArgs,
	pub run: RunReport,
}

/// Trains every weight of the model in `dir` on `docs` and rewrites its `model.safetensors`.
pub fn pretrain(dir: &Path, docs: &[Doc], optim: &OptimArgs, device: &Device) -> Result<PretrainReport> {
	optim.check()?;
	let before = model_weights_hash(dir)?;
	let (cfg, weights) = load_weights(dir, device)?;
	let tk = TextTokenizer::load(dir)?;
	let (bos, eos) = framing(&tk, &cfg);
	let max_len = optim.max_seq_len.min(cfg.max_position_embeddings - 1);
	let mut vars = Vec::new();
	let mut params = HashMap::new();
	let mut names: Vec<&String> = weights.keys().collect();
	names.sort();
	for name in names {
		let v = Var::from_tensor(&weights[name])?;
		params.insert(name.clone(), v.as_tensor().clone());
		vars.push(v);
	}
	let (train_docs, eval_docs) = data::split(docs, optim.eval_fraction, optim.seed);
	let train_w = data::windows(&tk, docs, &train_docs, bos, eos, max_len)?;
	let eval_w = data::windows(&tk, docs, &eval_docs, bos, eos, max_len)?;
	let net = Net::new(&cfg, &params, None, max_len + 1, device)?;
	let run = train::run(&net, vars, &train_w, &eval_w, &[1.0], optim, device, "pretrain", &|_, _, _| {})?;
	let tmp = dir.join(".model.safetensors.tmp");
	candle_core::safetensors::save(&params, &tmp)?;
	for f in safetensors_files(dir)? {
		std::fs::remove_file(&f)?;
	}
	let _ = std::fs::remove_file(dir.join("model.safetensors.index.json"));
	std::fs::rename(&tmp, dir.join("model.safetensors"))?;
	Ok(PretrainReport {
		model_dir: dir.to_path_buf(),
		weights_hash_before: format!("0x{}", hex::encode(before)),
		weights_hash: format!("0x{}", hex::encode(model_weights_hash(dir)?)),
		documents: docs.len(),
		optim: optim.clone(),
		run,
	})
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModelJson {
	kind: String,
	versions: Vec<VersionJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionJson {
	weights_hash: String,
	deprecated: bool,
}

/// Checks that `base` on chain is a base model whose latest non-deprecated version has the
/// weights in `base_dir`; returns that weights hash.
pub async fn check_base(chain: &ChainClient, base: ModelId, base_dir: &Path) -> Result<[u8; 32]> {
	let m: ModelJson = chain.rpc("models_getModel", rpc_params![base, Option::<openledger_primitives::Hash>::None]).await
		.with_context(|| format!("base model {base}"))?;
	ensure!(m.kind == "base", "model {base} is an adapter, not a base model");
	let hash = model_weights_hash(base_dir)?;
	let ours = format!("0x{}", hex::encode(hash));
	let theirs = m.versions.iter().rev().find(|v| !v.deprecated).map(|v| v.weights_hash.clone()).unwrap_or_default();
	ensure!(
		theirs == ours,
		"base model {base} is registered with weights {theirs}, but {} has {ours} (`openledger-worker model-hash {}`)",
		base_dir.display(),
		base_dir.display()
	);
	Ok(hash)
}

/// Registers the adapter of `report` on chain as a model of `owner` on base `base`; returns its
/// model id.
pub async fn register(chain: &ChainClient, owner: &sr25519::Pair, base: ModelId, report: &FinetuneReport, license: &str, uri: &str) -> Result<ModelId> {
	let h = |s: &str| -> Result<[u8; 32]> {
		hex::decode(s.trim_start_matches("0x"))?.try_into().map_err(|_| anyhow!("bad hash {s}"))
	};
	let lineage: Vec<(u32, u32, u32)> =
		report.snapshots.iter().zip(&report.lineage_perbill).map(|(s, w)| (s.datanet, s.version, *w)).collect();
	let targets: Vec<Vec<u8>> = report.lora.targets()?.iter().map(|&i| PROJECTIONS[i].as_bytes().to_vec()).collect();
	let args = (
		base,
		report.name.as_bytes().to_vec(),
		license.as_bytes().to_vec(),
		report.lora.rank as u16,
		report.lora.alpha,
		targets,
		h(&report.adapter_id)?,
		uri.as_bytes().to_vec(),
		lineage,
		h(&report.training_config_hash)?,
	);
	let call = tx::encode_call(tx::MODELS_PALLET, tx::REGISTER_ADAPTER_CALL, &args);
	let done = chain.submit_and_finalize(owner, &call).await.context("registering the adapter")?;
	#[derive(Deserialize)]
	struct WeightsRef {
		model: ModelId,
	}
	let r: WeightsRef = chain
		.rpc("models_byWeightsHash", rpc_params![report.adapter_id.clone(), Some(done.block)])
		.await
		.context("the registration was finalized but the adapter is not in the registry (did the extrinsic fail? check the owner's balance)")?;
	Ok(r.model)
}

/// [`register`], unless a model with this adapter's id is registered already (a rerun after a
/// crash or a failed step); returns the model id either way.
pub async fn register_once(chain: &ChainClient, owner: &sr25519::Pair, base: ModelId, report: &FinetuneReport, license: &str, uri: &str) -> Result<ModelId> {
	/// `models_*` error code for "not found".
	const NOT_FOUND: i32 = 9201;
	let existing: Option<serde_json::Value> = chain
		.rpc_opt("models_byWeightsHash", rpc_params![report.adapter_id.clone(), Option::<openledger_primitives::Hash>::None], NOT_FOUND)
		.await?;
	let Some(m) = existing.and_then(|v| v["model"].as_u64()) else {
		return register(chain, owner, base, report, license, uri).await;
	};
	// Adopt only our own registration: the same weights registered by another account are
	// theirs (its revenue goes to its owner), and serving them as ours would bill for it.
	let model: serde_json::Value = chain.rpc("models_getModel", rpc_params![m, Option::<openledger_primitives::Hash>::None]).await?;
	let me = sp_core::crypto::Ss58Codec::to_ss58check(&AccountId::from(owner.public()));
	ensure!(
		model["owner"].as_str() == Some(me.as_str()),
		"the adapter's weights are already registered as model {m} by {}, not by {me}: the adapter is theirs (train with another seed or data)",
		model["owner"].as_str().unwrap_or("another account")
	);
	ensure!(
		model["base"].as_u64() == Some(base as u64),
		"the adapter's weights are registered as model {m}, an adapter of base {:?}, not of {base}",
		model["base"]
	);
	Ok(m as ModelId)
}

/// The report of an adapter already trained into `dir` with the same base, snapshots and
/// settings (so a rerun reuses it instead of training again); an error if `dir` holds another.
pub fn trained_before(dir: &Path, base_hash: &[u8; 32], snapshots: &[SnapshotRef], lora: &LoraArgs, optim: &OptimArgs) -> Result<Option<FinetuneReport>> {
	if !dir.join(REPORT_FILE).exists() {
		return Ok(None);
	}
	let report: FinetuneReport = serde_json::from_slice(&std::fs::read(dir.join(REPORT_FILE))?).context("the adapter's training report")?;
	let want = format!("0x{}", hex::encode(training_config_hash(base_hash, snapshots, lora, optim)?));
	ensure!(
		report.training_config_hash == want,
		"{} holds an adapter trained with another configuration (training-config hash {}); choose another name",
		dir.display(),
		report.training_config_hash
	);
	Ok(Some(report))
}

/// Adds `model` to the models the worker of `worker` serves (its on-chain record).
pub async fn serve_on(chain: &ChainClient, worker: &sr25519::Pair, model: ModelId) -> Result<()> {
	let who: AccountId = worker.public().into();
	let raw = chain
		.storage(&tx::worker_storage_key(&who), None)
		.await?
		.with_context(|| format!("{who} is not a bonded worker"))?;
	let head = <tx::WorkerRecordHead as codec::Decode>::decode(&mut &raw[..]).context("decoding the worker record")?;
	let mut models = head.models;
	if models.contains(&model) {
		return Ok(());
	}
	models.push(model);
	let args = (Option::<[u8; 32]>::None, Option::<Vec<u8>>::None, Some(models), Option::<u32>::None);
	let call = tx::encode_call(tx::STAKING_PALLET, tx::UPDATE_WORKER_CALL, &args);
	chain.submit_and_finalize(worker, &call).await.context("adding the model to the worker's record")?;
	let raw = chain.storage(&tx::worker_storage_key(&who), None).await?.context("worker record")?;
	let head = <tx::WorkerRecordHead as codec::Decode>::decode(&mut &raw[..])?;
	if !head.models.contains(&model) {
		bail!("the worker's record does not list model {model} after the update (too many models for one worker?)");
	}
	Ok(())
}
