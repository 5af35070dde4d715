//! `openledger-worker factory …`: fine-tune from snapshots, pretrain a base model.

use super::data::{self, SnapshotRef};
use super::train::OptimArgs;
use super::{check_base, finetune, pretrain, register_once, serve_on, trained_before, FinetuneSpec, LoraArgs};
use crate::chain::{keypair, ChainClient};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum FactoryCmd {
	/// Fine-tunes a LoRA adapter on Datanet snapshots, writes it (PEFT layout) into the adapter
	/// store with a JSON report, and (with --owner) registers it on chain.
	Finetune(FinetuneArgs),
	/// Trains every weight of a base model folder on a corpus (the bundled one by default) and
	/// rewrites its weights.
	Pretrain(PretrainArgs),
}

#[derive(Args, Debug)]
pub struct FinetuneArgs {
	/// The node (JSON-RPC over WebSocket).
	#[arg(long, default_value = "ws://127.0.0.1:9944")]
	pub chain_rpc: String,
	/// Training data: `datanet:version[:weight]`, repeatable (weights are relative).
	#[arg(long = "snapshot", required = true)]
	pub snapshots: Vec<SnapshotRef>,
	/// The contributions' content store (`ab/cd/abcd…` by blake2-256 of the bytes).
	#[arg(long)]
	pub store: PathBuf,
	/// The base model's folder (config.json, safetensors, tokenizer.json).
	#[arg(long)]
	pub base_dir: PathBuf,
	/// The base model's on-chain id (its registered weights must be those of --base-dir).
	#[arg(long)]
	pub base_model: u32,
	/// The adapter store: the adapter is written to `<adapters>/<name>`.
	#[arg(long)]
	pub adapters: PathBuf,
	/// Adapter (and on-chain model) name.
	#[arg(long)]
	pub name: String,
	/// License recorded on chain.
	#[arg(long, default_value = "cc-by-4.0")]
	pub license: String,
	/// Where the weights can be fetched (recorded on chain); default `store://<name>`.
	#[arg(long)]
	pub uri: Option<String>,
	/// Register the adapter on chain as a model of this account: a development URI (`//Dave`)
	/// here, any other secret URI in `--owner-file` or `OPENLEDGER_OWNER` (never on the command
	/// line, where `ps` shows it).
	#[arg(long, env = "OPENLEDGER_OWNER", hide_env_values = true)]
	pub owner: Option<String>,
	/// File whose first line is the owner's secret URI.
	#[arg(long)]
	pub owner_file: Option<std::path::PathBuf>,
	/// Also add the registered model to this worker's served models: the worker's secret URI
	/// (development URI here; otherwise `--serve-with-file` or `OPENLEDGER_WORKER_ACCOUNT`).
	#[arg(long, env = "OPENLEDGER_WORKER_ACCOUNT", hide_env_values = true)]
	pub serve_with: Option<String>,
	/// File whose first line is the worker account's secret URI.
	#[arg(long)]
	pub serve_with_file: Option<std::path::PathBuf>,
	#[arg(long, default_value = "cpu")]
	pub device: String,
	#[command(flatten)]
	pub lora: LoraArgs,
	#[command(flatten)]
	pub optim: OptimArgs,
}

#[derive(Args, Debug)]
pub struct PretrainArgs {
	/// The model folder to train in place.
	#[arg(long)]
	pub model: PathBuf,
	/// A text corpus (paragraphs separated by blank lines); the bundled corpus by default.
	#[arg(long)]
	pub corpus: Option<PathBuf>,
	#[arg(long, default_value = "cpu")]
	pub device: String,
	#[command(flatten)]
	pub optim: OptimArgs,
}

pub async fn run(cmd: FactoryCmd) -> Result<()> {
	match cmd {
		FactoryCmd::Finetune(a) => {
			let device = crate::parse_device(&a.device)?;
			a.lora.check()?;
			a.optim.check()?;
			let chain = ChainClient::connect(&a.chain_rpc).await?;
			// Environment values count as "not on the command line" (clap read them there).
			let from_env = |v: &Option<String>, var: &str| v.is_some() && std::env::var(var).ok() == *v;
			let owner_uri = if from_env(&a.owner, "OPENLEDGER_OWNER") { a.owner.clone() } else { crate::secrets::secret_uri(a.owner.as_deref(), a.owner_file.as_deref(), "owner")? };
			let worker_uri = if from_env(&a.serve_with, "OPENLEDGER_WORKER_ACCOUNT") {
				a.serve_with.clone()
			} else {
				crate::secrets::secret_uri(a.serve_with.as_deref(), a.serve_with_file.as_deref(), "serve-with")?
			};
			anyhow::ensure!(worker_uri.is_none() || owner_uri.is_some(), "--serve-with needs --owner (the model is registered first)");
			let owner = owner_uri.as_deref().map(keypair).transpose()?;
			let worker = worker_uri.as_deref().map(keypair).transpose()?;
			let base_hash = check_base(&chain, a.base_model, &a.base_dir).await?;
			let out_dir = a.adapters.join(&a.name);
			let before = trained_before(&out_dir, &base_hash, &a.snapshots, &a.lora, &a.optim)?;
			let docs = match before {
				Some(_) => vec![],
				None => data::snapshot_docs(&chain, &a.snapshots, &a.store).await?,
			};
			eprintln!("{} documents from {} snapshot(s), verified against their on-chain roots", docs.len(), a.snapshots.len());
			let spec = FinetuneSpec {
				base_dir: &a.base_dir,
				base_hash,
				base_model: Some(a.base_model),
				snapshots: &a.snapshots,
				docs: &docs,
				adapters_dir: &a.adapters,
				name: &a.name,
				lora: &a.lora,
				optim: &a.optim,
				device: &device,
				progress: &|_, _, _| {},
			};
			let report = match before {
				Some(r) => {
					eprintln!("{} was trained earlier with these settings: reusing it", out_dir.display());
					r
				},
				None => tokio::task::block_in_place(|| finetune(&spec))?,
			};
			print_eval(&report.run);
			let mut out = serde_json::to_value(&report)?;
			out["run"]["loss_curve"] = serde_json::Value::Null; // in the report file; too long here
			if let Some(owner) = owner {
				let uri = a.uri.clone().unwrap_or_else(|| format!("store://{}", a.name));
				let model = register_once(&chain, &owner, a.base_model, &report, &a.license, &uri).await?;
				eprintln!("registered as model {model}");
				out["model"] = model.into();
				if let Some(w) = worker {
					serve_on(&chain, &w, model).await?;
					eprintln!("added to the served models of worker {}", sp_core::crypto::Ss58Codec::to_ss58check(&openledger_primitives::AccountId::from(sp_core::Pair::public(&w))));
				}
			}
			println!("{}", serde_json::to_string_pretty(&out)?);
		}
		FactoryCmd::Pretrain(a) => {
			let device = crate::parse_device(&a.device)?;
			let text = match &a.corpus {
				Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
				None => crate::model::synthetic::CORPUS.to_string(),
			};
			let docs = data::corpus_docs(&text);
			let report = tokio::task::block_in_place(|| pretrain(&a.model, &docs, &a.optim, &device))?;
			print_eval(&report.run);
			let mut out = serde_json::to_value(&report)?;
			out["run"]["loss_curve"] = serde_json::Value::Null;
			println!("{}", serde_json::to_string_pretty(&out)?);
		}
	}
	Ok(())
}

fn print_eval(r: &super::train::RunReport) {
	let on = if r.eval_on_train { "training data (nothing could be held out)" } else { "held-out split" };
	eprintln!(
		"eval on the {on}: loss {:.4} → {:.4}, perplexity {:.2} → {:.2} ({} steps, {:.0} tokens/s)",
		r.eval_before.loss, r.eval_after.loss, r.eval_before.perplexity, r.eval_after.perplexity, r.steps, r.tokens_per_second
	);
}
