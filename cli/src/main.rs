//! `openledger`: the contributor's command line.
//!
//! ```text
//! openledger datanet create --name medical-qa --license CC-BY-4.0 --curated
//! openledger contribute 0 ./records/ --store ./content-store
//! openledger curate accept 0 1 2 --suri //Charlie
//! openledger snapshot 0
//! openledger list 0
//! openledger proof 0 1 0
//! openledger evidence 0x…request-id --worker http://127.0.0.1:8000
//! openledger challenge share 0x…request-id 0 1 4
//! openledger challenge omission 0x…request-id 0 1 7 --output answer.txt --store ./content-store
//! openledger escrow deposit 10
//! openledger pay-proxy --worker http://127.0.0.1:8000 --max-fee 0.5 --daily-cap 20
//! openledger voucher --worker 5F…worker --model 1 --max-fee 0.1 --prompt "The court held that"
//! openledger earnings && openledger claim
//! openledger worker bond 1000 --signing-key 0x… --endpoint https://w.example --model 1
//! openledger delegate 5F…worker 10
//! ```
//!
//! Keys come from `OPENLEDGER_SURI` (or `--suri`, for dev accounts: argv is visible to every
//! local user): a dev URI like `//Alice` or a mnemonic. Amounts are in OPEN (`2.5`) or in the
//! smallest unit (`1500planck`).

mod chain;
mod money;
mod proxy;
mod records;
mod store;
mod studio;

use anyhow::{bail, Context, Result};
use chain::{account_of, keypair, parse_account, Chain};
use clap::{Parser, Subcommand};
use futures::{stream, StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use jsonrpsee::rpc_params;
use openledger_runtime::{RuntimeCall, RuntimeEvent};
use pallet_datanets::{CurationMode, DepositPolicy};
use sp_core::{crypto::Ss58Codec, H256};
use std::{path::PathBuf, time::Instant};
use store::ContentStore;

#[derive(Debug, Parser)]
#[command(name = "openledger", version, about = "Contribute data to OpenLedger Datanets and curate them")]
struct Cli {
	/// Node JSON-RPC endpoint.
	#[arg(long, global = true, env = "OPENLEDGER_URL", default_value = "ws://127.0.0.1:9944")]
	url: String,
	/// Secret URI of the signing account (`//Alice`, a mnemonic, ...).
	#[arg(long, global = true, env = "OPENLEDGER_SURI", default_value = "//Alice", hide_env_values = true)]
	suri: String,
	#[command(subcommand)]
	cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
	/// Create and manage Datanets.
	#[command(subcommand)]
	Datanet(DatanetCmd),
	/// Store a file or a folder of records (JSONL lines, text files) and contribute them.
	Contribute {
		datanet: u32,
		path: PathBuf,
		/// Content store: a directory, or an s3:// gs:// az:// URL (`cloud` feature).
		#[arg(long, env = "OPENLEDGER_STORE", default_value = "./content-store")]
		store: String,
		/// Contributions per extrinsic (`utility.batch_all`).
		#[arg(long, default_value_t = 100)]
		batch: usize,
		/// Extrinsics in flight at once.
		#[arg(long, default_value_t = 8)]
		in_flight: usize,
		/// License of these records, if it differs from the Datanet's.
		#[arg(long)]
		license: Option<String>,
		/// Store and hash each JSONL line's bytes as they are, instead of the line re-encoded as
		/// compact JSON with sorted keys (what `jq -cS` prints).
		#[arg(long)]
		verbatim: bool,
		/// Print a JSON summary instead of text.
		#[arg(long)]
		json: bool,
	},
	/// Accept or reject pending contributions (curator or owner).
	#[command(subcommand)]
	Curate(CurateCmd),
	/// Withdraw your contributions that no snapshot contains yet.
	Withdraw { ids: Vec<u64> },
	/// Freeze the accepted contributions into a new snapshot version.
	Snapshot { datanet: u32 },
	/// List a Datanet's contributions.
	List {
		datanet: u32,
		/// Only this status (`pending` or `accepted`).
		#[arg(long)]
		status: Option<String>,
	},
	/// List an account's contributions (default: the signer's).
	Mine { account: Option<String> },
	/// Fetch and verify the Merkle proof of (datanet, version, index) against the on-chain root.
	Proof { datanet: u32, version: u32, index: u32 },
	/// Print the content of a contribution from the store, checked against its on-chain hash.
	Cat {
		id: u64,
		#[arg(long, env = "OPENLEDGER_STORE", default_value = "./content-store")]
		store: String,
	},
	/// Fetch a span-match receipt's evidence from its worker (as its payer: `--suri` signs the
	/// request) and check every claim against the chain: committed under the receipt's claims
	/// root, the answer's bytes under its output root equal to the contribution's under its
	/// content root (itself proven against the snapshot root), and every share justified by the
	/// bytes its claims cover.
	Evidence {
		request_id: H256,
		/// The worker's HTTP endpoint (`GET /v1/evidence/{id}`).
		#[arg(long)]
		worker: String,
	},
	/// Dispute a receipt, holding the challenge bond.
	#[command(subcommand)]
	Challenge(ChallengeCmd),
	/// The payer's inference escrow: hold OPEN for vouchers, ask for it back, take it back.
	#[command(subcommand)]
	Escrow(EscrowCmd),
	/// Sign a voucher for one request to a worker (for calling it directly, e.g. with curl):
	/// prints the `X-OpenLedger-Voucher` header, the request id and the exact bytes signed.
	Voucher {
		/// The worker's account (SS58).
		#[arg(long)]
		worker: String,
		/// The on-chain model id (its latest version that is not deprecated, at its current terms).
		#[arg(long)]
		model: u32,
		/// The most the worker may charge, in OPEN.
		#[arg(long)]
		max_fee: String,
		/// The `/v1/completions` prompt it pays for.
		#[arg(long, conflicts_with = "chat", required_unless_present = "chat")]
		prompt: Option<String>,
		/// A JSON file holding the `/v1/chat/completions` `messages` it pays for.
		#[arg(long)]
		chat: Option<PathBuf>,
		/// Unique per payer (default: from the clock).
		#[arg(long)]
		nonce: Option<u64>,
		/// Blocks it stays valid (at most 14400, a day).
		#[arg(long, default_value_t = 600)]
		expires_in: u32,
	},
	/// A settled receipt (until it is pruned, a day after settlement).
	Receipt { request_id: H256 },
	/// Earnings (vested, claimed, claimable, pending) and escrow of an account (default: the signer).
	Earnings { account: Option<String> },
	/// Claim vested rewards: attribution rewards of ACCOUNT (default: the signer; anyone may
	/// claim for anyone, the OPEN goes to ACCOUNT), or with `--staking WORKER` the signer's
	/// staking rewards from that worker's pool. Free of fees when it pays anything.
	Claim {
		account: Option<String>,
		#[arg(long, conflicts_with = "account")]
		staking: Option<String>,
	},
	/// Run an inference worker on chain: bond, update, add or remove stake.
	#[command(subcommand)]
	Worker(WorkerCmd),
	/// Register, price and look up models.
	#[command(subcommand)]
	Model(ModelCmd),
	/// Delegate AMOUNT OPEN to WORKER (at least 10 OPEN; slashed with it).
	Delegate { worker: String, amount: String },
	/// Start unbonding AMOUNT OPEN of a delegation (withdrawn after the unbonding period with
	/// `openledger worker withdraw-unbonded`).
	Undelegate { worker: String, amount: String },
	/// Serve the OpenAI API on localhost, paying a worker from the signer's escrow: signs a
	/// voucher per request, checks each receipt against the chain and logs every fee.
	PayProxy {
		/// The worker's HTTP endpoint.
		#[arg(long)]
		worker: String,
		/// Address to listen on (loopback unless OPENLEDGER_PROXY_KEY is set).
		#[arg(long, default_value = "127.0.0.1:8088")]
		listen: std::net::SocketAddr,
		/// The most one request may cost, in OPEN (each voucher's maximum).
		#[arg(long)]
		max_fee: String,
		/// The most spent per UTC day, in OPEN, counting requests in flight at their maximum.
		#[arg(long)]
		daily_cap: Option<String>,
		/// Append-only JSON lines, one per paid request (its fee in the smallest unit).
		#[arg(long, default_value = "./spend.jsonl")]
		spend_log: PathBuf,
		/// Blocks each voucher stays valid.
		#[arg(long, default_value_t = 600)]
		expires_in: u32,
		/// Clients must send it as `Authorization: Bearer <key>` (the `openai` client's
		/// `api_key`); read from the environment only.
		#[arg(long = "api-key-from-env", env = "OPENLEDGER_PROXY_KEY", hide_env_values = true, hide = true)]
		api_key: Option<String>,
	},
	/// Serve OpenLedger Studio (the web app, built into web/dist) on loopback: the page talks
	/// to the node (`--url`, as the browser reaches it) and the worker, signs with the user's
	/// browser extension or a dev account, and stores uploaded files in `--store`.
	Studio {
		/// Address to listen on (loopback only).
		#[arg(long, default_value = "127.0.0.1:3000")]
		listen: std::net::SocketAddr,
		/// The built app.
		#[arg(long, default_value = "web/dist")]
		dir: PathBuf,
		/// Content store for uploaded files (a directory).
		#[arg(long, default_value = "./content-store")]
		store: String,
		/// The worker's HTTP endpoint (the Studio passes the page's requests to it).
		#[arg(long)]
		worker: Option<String>,
	},
}

#[derive(Debug, Subcommand)]
enum EscrowCmd {
	/// Hold AMOUNT OPEN for inference.
	Deposit { amount: String },
	/// Ask for AMOUNT OPEN back after the withdrawal delay (replaces an earlier request).
	RequestWithdrawal { amount: String },
	/// Take back the requested escrow once the delay has passed.
	Withdraw,
	/// Show an account's escrow (default: the signer's).
	Show { account: Option<String> },
}

#[derive(Debug, Subcommand)]
enum ModelCmd {
	/// Register a base model owned by the signer, paying the registration fee; prints its id
	/// (`openledger model find` finds it by its weights hash).
	RegisterBase {
		name: String,
		/// Hash of its weights (`openledger-worker model-hash DIR` for a model folder).
		#[arg(long)]
		weights_hash: H256,
		#[arg(long, default_value = "")]
		license: String,
		#[arg(long, default_value = "llama")]
		architecture: String,
		/// Where its weights can be fetched.
		#[arg(long, default_value = "")]
		uri: String,
		/// Hash of its training configuration (zero when not given).
		#[arg(long)]
		training_config_hash: Option<H256>,
	},
	/// Set the price of the signer's model MODEL, in OPEN.
	SetPrice {
		model: u32,
		#[arg(long)]
		per_request: String,
		#[arg(long)]
		per_1k_tokens: String,
	},
	/// The model and version registered with a weights hash (an adapter's id), as JSON
	/// (`{"model":…,"version":…}`), or `null` when there is none.
	Find { weights_hash: H256 },
	/// A model as `models_getModel` returns it.
	Show { model: u32 },
}

#[derive(Debug, Subcommand)]
enum WorkerCmd {
	/// Bond AMOUNT OPEN (at least 1,000) as a worker.
	Bond {
		amount: String,
		/// Public key that signs its receipts: SS58 or 0x + 32 bytes (keep the secret on the worker).
		#[arg(long)]
		signing_key: String,
		/// Its public API URL.
		#[arg(long)]
		endpoint: String,
		/// A model id it serves (repeat for several).
		#[arg(long = "model", required = true)]
		models: Vec<u32>,
		/// Its cut of rewards before delegators share the rest, in percent.
		#[arg(long, default_value = "0")]
		commission: String,
	},
	/// Change its signing key, endpoint, models or commission (a higher commission applies
	/// after the change delay).
	Update {
		#[arg(long)]
		signing_key: Option<String>,
		#[arg(long)]
		endpoint: Option<String>,
		/// Replaces the model list (repeat for several).
		#[arg(long = "model")]
		models: Vec<u32>,
		#[arg(long)]
		commission: Option<String>,
	},
	/// Add AMOUNT OPEN to its own stake.
	BondExtra { amount: String },
	/// Start unbonding AMOUNT OPEN of its own stake.
	Unbond { amount: String },
	/// Take back stake (own or delegated) whose unbonding period has passed.
	WithdrawUnbonded,
	/// Show a worker's on-chain record (default: the signer's).
	Show { account: Option<String> },
}

#[derive(Debug, Subcommand)]
enum ChallengeCmd {
	/// A span-match receipt's share of a contribution: its worker must answer with evidence
	/// within the response window, or it is slashed and the receipt reversed.
	Share { request_id: H256, datanet: u32, version: u32, index: u32 },
	/// Prove that bytes of a span-match receipt's answer occur in a lineage contribution it
	/// does not credit (checked on chain at once); the worker must show credited spans covering
	/// them within the response window.
	Omission {
		request_id: H256,
		datanet: u32,
		version: u32,
		index: u32,
		/// File holding the answer's text exactly (checked against the receipt's output root).
		#[arg(long)]
		output: PathBuf,
		/// Byte range of the answer to prove; by default the longest one found in the
		/// contribution (at most 1 KiB).
		#[arg(long, requires = "len")]
		output_start: Option<u32>,
		#[arg(long, requires = "output_start")]
		len: Option<u32>,
		#[arg(long, env = "OPENLEDGER_STORE", default_value = "./content-store")]
		store: String,
	},
	/// An influence or retrieval receipt, judged by governance (bonded accounts).
	Receipt { request_id: H256 },
}

#[derive(Debug, Subcommand)]
enum DatanetCmd {
	/// Create a Datanet owned by the signer.
	Create {
		#[arg(long)]
		name: String,
		#[arg(long, default_value = "")]
		metadata_uri: String,
		#[arg(long, default_value = "")]
		license: String,
		/// Contributions wait for a curator (default: accepted at once).
		#[arg(long)]
		curated: bool,
		/// Deposit per contribution, in the smallest unit (default: the chain's minimum).
		#[arg(long)]
		deposit_base: Option<u128>,
		/// Deposit per byte of the on-chain record (default: the chain's minimum).
		#[arg(long)]
		deposit_per_byte: Option<u128>,
	},
	/// Show a Datanet.
	Show { datanet: u32 },
	/// Add a curator.
	AddCurator { datanet: u32, account: String },
	/// Remove a curator.
	RemoveCurator { datanet: u32, account: String },
	/// Archive the Datanet for good.
	Archive { datanet: u32 },
}

#[derive(Debug, Subcommand)]
enum CurateCmd {
	/// Accept pending contributions (by contribution id; not a Datanet id).
	Accept {
		#[arg(value_name = "CONTRIBUTION", required = true)]
		ids: Vec<u64>,
	},
	/// Reject pending contributions (by contribution id): 20 % of each deposit goes to the
	/// treasury, the rest back to its contributor.
	Reject {
		#[arg(value_name = "CONTRIBUTION", required = true)]
		ids: Vec<u64>,
		/// Why, recorded in the `Rejected` event: a number, or one of the conventional codes
		/// unspecified (0), spam (1), duplicate (2), license (3), quality (4), personal-data (5),
		/// off-topic (6).
		#[arg(long, default_value = "unspecified", value_parser = parse_reason)]
		reason: u16,
	},
}

/// The conventional rejection codes (any other number is the curator's own).
const REASONS: [&str; 7] = ["unspecified", "spam", "duplicate", "license", "quality", "personal-data", "off-topic"];

fn parse_reason(s: &str) -> Result<u16, String> {
	s.parse::<u16>()
		.ok()
		.or_else(|| REASONS.iter().position(|r| *r == s).map(|i| i as u16))
		.ok_or_else(|| format!("a number or one of {}", REASONS.join(", ")))
}

/// A percentage (`5`, `2.5`, `5%`) as a `Perbill`.
fn parse_percent(s: &str) -> Result<sp_runtime::Perbill> {
	let t = s.trim().trim_end_matches('%');
	let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
	anyhow::ensure!(
		!whole.is_empty() && frac.len() <= 7 && whole.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()),
		"not a percentage: {s}"
	);
	let frac = if frac.is_empty() { 0 } else { frac.parse::<u64>()? * 10u64.pow(7 - frac.len() as u32) };
	let parts = whole.parse::<u64>().ok().and_then(|w| w.checked_mul(10_000_000)).and_then(|w| w.checked_add(frac));
	let parts = parts.filter(|p| *p <= 1_000_000_000).with_context(|| format!("above 100 %: {s}"))?;
	Ok(sp_runtime::Perbill::from_parts(parts as u32))
}

/// A receipt-signing public key: SS58, or `0x` and 32 bytes.
fn parse_signing_key(s: &str) -> Result<[u8; 32]> {
	if let Some(h) = s.strip_prefix("0x") {
		let b = hex::decode(h)?;
		return b.try_into().map_err(|_| anyhow::anyhow!("a signing key has 32 bytes: {s}"));
	}
	Ok(sp_core::sr25519::Public::from_ss58check(s).map_err(|e| anyhow::anyhow!("bad signing key {s}: {e:?}"))?.0)
}

/// A voucher lives at most a day of blocks (the runtime's `MaxVoucherLifetime`).
fn check_lifetime(expires_in: u32) -> Result<()> {
	let max = openledger_primitives::receipt::MAX_VOUCHER_LIFETIME_BLOCKS;
	anyhow::ensure!(expires_in <= max, "a voucher lives at most {max} blocks");
	Ok(())
}

fn staking_call(c: pallet_open_staking::Call<openledger_runtime::Runtime>) -> RuntimeCall {
	RuntimeCall::OpenStaking(c)
}

fn bounded<T, S: frame_support::traits::Get<u32>>(v: Vec<T>, what: &str) -> Result<frame_support::BoundedVec<T, S>> {
	let n = v.len();
	v.try_into().map_err(|_| anyhow::anyhow!("{what}: {n} is more than the chain allows ({})", S::get()))
}

fn models_call(c: pallet_models::Call<openledger_runtime::Runtime>) -> RuntimeCall {
	RuntimeCall::Models(c)
}

fn datanets_call(c: pallet_datanets::Call<openledger_runtime::Runtime>) -> RuntimeCall {
	RuntimeCall::Datanets(c)
}

fn attribution_call(c: pallet_attribution::Call<openledger_runtime::Runtime>) -> RuntimeCall {
	RuntimeCall::Attribution(c)
}

fn hash_of(v: &serde_json::Value) -> Result<H256> {
	let s = v.as_str().context("a hash")?;
	let b = hex::decode(s.trim_start_matches("0x"))?;
	anyhow::ensure!(b.len() == 32, "a hash has 32 bytes: {s}");
	Ok(H256::from_slice(&b))
}

/// The Merkle proof of leaf `(datanet, version, index)` as the node serves it, the snapshot, and
/// whether the proof verifies against the snapshot's on-chain root.
async fn snapshot_proof(
	chain: &Chain,
	datanet: u32,
	version: u32,
	index: u32,
) -> Result<(serde_json::Value, serde_json::Value, pallet_datanets::SnapshotProof, bool)> {
	let proof: serde_json::Value = chain.rpc("datanets_getProof", rpc_params![datanet, version, index]).await?;
	let snapshot: serde_json::Value = chain.rpc("datanets_getSnapshot", rpc_params![datanet, version]).await?;
	let p = pallet_datanets::SnapshotProof {
		root: hash_of(&proof["root"])?,
		proof: proof["proof"].as_array().context("proof")?.iter().map(hash_of).collect::<Result<_>>()?,
		number_of_leaves: proof["numberOfLeaves"].as_u64().context("numberOfLeaves")? as u32,
		leaf_index: proof["leafIndex"].as_u64().context("leafIndex")? as u32,
		leaf: pallet_datanets::Leaf {
			contribution: proof["contribution"].as_u64().context("contribution")?,
			content_hash: hash_of(&proof["contentHash"])?,
		},
	};
	let ok = p.leaf_index == index && pallet_datanets::merkle::verify(&hash_of(&snapshot["root"])?, &p);
	Ok((proof, snapshot, p, ok))
}

/// The content root of leaf `(datanet, version, index)`, proven against the snapshot's
/// on-chain Merkle root.
async fn verified_content_root(chain: &Chain, datanet: u32, version: u32, index: u32) -> Result<H256> {
	let (_, _, p, ok) = snapshot_proof(chain, datanet, version, index).await?;
	anyhow::ensure!(ok, "leaf {index} of snapshot {version} of Datanet {datanet} does not verify against the on-chain root");
	Ok(p.leaf.content_hash)
}

/// The longest run (at most `MAX_SPAN_BYTES`, at least `MIN_OMISSION_BYTES`) of `output` found
/// in `doc`: `(output start, len, offset in doc)`.
fn longest_shared(output: &[u8], doc: &[u8]) -> Option<(u32, u32, u64)> {
	use openledger_primitives::evidence::{MAX_SPAN_BYTES, MIN_OMISSION_BYTES};
	let min = MIN_OMISSION_BYTES as usize;
	let mut best: Option<(usize, usize, usize)> = None;
	let mut i = 0;
	while i + min <= output.len() {
		let mut found = None;
		let mut from = 0;
		while let Some(k) = doc.get(from..).and_then(|d| d.windows(min).position(|w| w == &output[i..i + min])) {
			let off = from + k;
			let mut n = min;
			while i + n < output.len() && off + n < doc.len() && output[i + n] == doc[off + n] && n < MAX_SPAN_BYTES as usize {
				n += 1;
			}
			if found.is_none_or(|(_, m)| n > m) {
				found = Some((off, n));
			}
			from = off + 1;
		}
		match found {
			Some((off, n)) => {
				if best.is_none_or(|b| n > b.1) {
					best = Some((i, n, off));
				}
				i += n.max(1);
			},
			None => i += 1,
		}
	}
	best.map(|(i, n, off)| (i as u32, n as u32, off as u64))
}

fn batch(calls: Vec<RuntimeCall>) -> RuntimeCall {
	if calls.len() == 1 {
		return calls.into_iter().next().expect("one call; qed");
	}
	RuntimeCall::Utility(pallet_utility::Call::batch_all { calls })
}

fn print_json(v: &serde_json::Value) {
	println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

#[tokio::main]
async fn main() -> Result<()> {
	let cli = Cli::parse();
	if let Cmd::Studio { listen, dir, store, worker } = cli.cmd {
		// The page signs; the server needs no key and no chain connection.
		return studio::run(studio::Config { listen, dir, store, rpc: cli.url, worker }).await;
	}
	let pair = keypair(&cli.suri)?;
	let me = account_of(&pair);
	let chain = Chain::connect(&cli.url).await?;
	let send = |call: RuntimeCall| {
		let (chain, pair, me) = (&chain, &pair, &me);
		async move {
			let nonce = chain.next_nonce(me).await?;
			chain.submit(&chain.sign(pair, call, nonce)).await
		}
	};

	match cli.cmd {
		Cmd::Datanet(DatanetCmd::Create { name, metadata_uri, license, curated, deposit_base, deposit_per_byte }) => {
			let deposit = DepositPolicy {
				base: deposit_base.unwrap_or(openledger_runtime::configs::MIN_CONTRIBUTION_DEPOSIT_BASE),
				per_byte: deposit_per_byte.unwrap_or(openledger_runtime::configs::MIN_CONTRIBUTION_DEPOSIT_PER_BYTE),
			};
			let curation = if curated { CurationMode::Curated } else { CurationMode::Open };
			let out = send(datanets_call(pallet_datanets::Call::create_datanet {
				name: name.into_bytes(),
				metadata_uri: metadata_uri.into_bytes(),
				license: license.into_bytes(),
				curation,
				deposit,
			}))
			.await?;
			for e in out.events {
				if let RuntimeEvent::Datanets(pallet_datanets::Event::DatanetCreated { datanet, .. }) = e {
					println!("created datanet {datanet}");
				}
			}
		},
		Cmd::Datanet(DatanetCmd::Show { datanet }) => {
			let v: serde_json::Value = chain.rpc("datanets_getDatanet", rpc_params![datanet]).await?;
			print_json(&v);
		},
		Cmd::Datanet(DatanetCmd::AddCurator { datanet, account }) => {
			let curator = parse_account(&account)?;
			send(datanets_call(pallet_datanets::Call::add_curator { datanet, curator })).await?;
			println!("added curator {account} to datanet {datanet}");
		},
		Cmd::Datanet(DatanetCmd::RemoveCurator { datanet, account }) => {
			let curator = parse_account(&account)?;
			send(datanets_call(pallet_datanets::Call::remove_curator { datanet, curator })).await?;
			println!("removed curator {account} from datanet {datanet}");
		},
		Cmd::Datanet(DatanetCmd::Archive { datanet }) => {
			send(datanets_call(pallet_datanets::Call::archive { datanet })).await?;
			println!("archived datanet {datanet}");
		},
		Cmd::Contribute { datanet, path, store, batch: per_xt, in_flight, license, verbatim, json } => {
			let store = ContentStore::open(&store)?;
			let records = records::read(&path, verbatim)?;
			let total_bytes: usize = records.iter().map(|r| r.bytes.len()).sum();
			let bar = ProgressBar::new(records.len() as u64);
			bar.set_style(
				ProgressStyle::with_template("{spinner} {msg:10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
					.expect("valid template")
					.progress_chars("=> "),
			);
			let started = Instant::now();
			// 1. Store (checked) and hash.
			bar.set_message("storing");
			let mut calls = Vec::with_capacity(records.len());
			for r in &records {
				let hash = store.put(&r.bytes).await.with_context(|| format!("storing {}", r.origin))?;
				calls.push(pallet_datanets::Call::contribute {
					datanet,
					content_hash: hash,
					size_bytes: r.bytes.len() as u64,
					token_count: r.token_count(),
					uri: store.uri(&hash).into_bytes(),
					license: license.clone().map(String::into_bytes),
					metadata: None,
				});
				bar.inc(1);
			}
			let stored_in = started.elapsed();
			// 2. Submit in batches, `in_flight` extrinsics at a time, consecutive nonces.
			bar.reset();
			bar.set_message("submitting");
			let first_nonce = chain.next_nonce(&me).await?;
			let chunks: Vec<Vec<RuntimeCall>> = calls
				.chunks(per_xt.max(1))
				.map(|c| c.iter().cloned().map(datanets_call).collect())
				.collect();
			let xts: Vec<_> = chunks
				.into_iter()
				.enumerate()
				.map(|(i, c)| (c.len() as u64, chain.sign(&pair, batch(c), first_nonce + i as u32)))
				.collect();
			let (chain_ref, bar_ref) = (&chain, &bar);
			let ids: Vec<Vec<u64>> = stream::iter(xts)
				.map(|(n, xt)| async move {
					let out = chain_ref.submit(&xt).await?;
					bar_ref.inc(n);
					Ok::<_, anyhow::Error>(
						out.events
							.into_iter()
							.filter_map(|e| match e {
								RuntimeEvent::Datanets(pallet_datanets::Event::Contributed { contribution, .. }) =>
									Some(contribution),
								_ => None,
							})
							.collect(),
					)
				})
				.buffered(in_flight.max(1))
				.try_collect()
				.await?;
			bar.finish_and_clear();
			let elapsed = started.elapsed().as_secs_f64();
			let ids: Vec<u64> = ids.into_iter().flatten().collect();
			let summary = serde_json::json!({
				"datanet": datanet,
				"contributions": ids.len(),
				"bytes": total_bytes,
				"seconds": elapsed,
				"storeSeconds": stored_in.as_secs_f64(),
				"contributionsPerSecond": ids.len() as f64 / elapsed,
				"bytesPerSecond": total_bytes as f64 / elapsed,
				"firstId": ids.first(),
				"lastId": ids.last(),
			});
			if json {
				print_json(&summary);
			} else {
				println!(
					"contributed {} records ({} bytes) to datanet {datanet} in {:.1} s: {:.0} contributions/s, {:.0} bytes/s",
					ids.len(),
					total_bytes,
					elapsed,
					ids.len() as f64 / elapsed,
					total_bytes as f64 / elapsed
				);
			}
		},
		Cmd::Curate(c) => {
			let (calls, what): (Vec<RuntimeCall>, &str) = match c {
				CurateCmd::Accept { ids } => (
					ids.into_iter().map(|contribution| datanets_call(pallet_datanets::Call::accept { contribution })).collect(),
					"accepted",
				),
				CurateCmd::Reject { ids, reason } => (
					ids.into_iter()
						.map(|contribution| datanets_call(pallet_datanets::Call::reject { contribution, reason }))
						.collect(),
					"rejected",
				),
			};
			if calls.is_empty() {
				bail!("no contribution ids given");
			}
			let n = calls.len();
			send(batch(calls)).await?;
			println!("{what} {n} contribution(s)");
		},
		Cmd::Withdraw { ids } => {
			let n = ids.len();
			let calls = ids.into_iter().map(|contribution| datanets_call(pallet_datanets::Call::withdraw { contribution })).collect();
			send(batch(calls)).await?;
			println!("withdrew {n} contribution(s)");
		},
		Cmd::Snapshot { datanet } => {
			let out = send(datanets_call(pallet_datanets::Call::snapshot { datanet })).await?;
			for e in out.events {
				if let RuntimeEvent::Datanets(pallet_datanets::Event::SnapshotTaken { version, root, leaf_count, .. }) = e {
					println!("snapshot {datanet}/{version}: {leaf_count} contributions, root {root:?}, block {:?}", out.block);
				}
			}
		},
		Cmd::List { datanet, status } => {
			let mut after: Option<u64> = None;
			loop {
				let page: serde_json::Value =
					chain.rpc("datanets_listContributions", rpc_params![datanet, after, 1000]).await?;
				for c in page["items"].as_array().into_iter().flatten() {
					if status.as_deref().is_none_or(|s| c["status"] == s) {
						println!("{}", serde_json::to_string(c)?);
					}
				}
				match page["next"].as_u64() {
					Some(n) => after = Some(n),
					None => break,
				}
			}
		},
		Cmd::Mine { account } => {
			let who = account.unwrap_or_else(|| me.to_ss58check());
			let mut after: Option<u64> = None;
			loop {
				let page: serde_json::Value =
					chain.rpc("datanets_contributionsOf", rpc_params![who.clone(), after, 1000]).await?;
				for c in page["items"].as_array().into_iter().flatten() {
					println!("{}", serde_json::to_string(c)?);
				}
				match page["next"].as_u64() {
					Some(n) => after = Some(n),
					None => break,
				}
			}
		},
		Cmd::Proof { datanet, version, index } => {
			let (proof, snapshot, _, ok) = snapshot_proof(&chain, datanet, version, index).await?;
			print_json(&serde_json::json!({ "proof": proof, "onChainRoot": snapshot["root"], "verified": ok }));
			if !ok {
				bail!("the proof does NOT verify against the on-chain root");
			}
		},
		Cmd::Evidence { request_id, worker } => {
			use codec::Decode;
			use openledger_primitives::evidence::{self as ev, SpanEvidence};
			let r: serde_json::Value = chain.rpc("attribution_getReceipt", rpc_params![request_id]).await?;
			let (output_root, claims_root) = (hash_of(&r["outputRoot"])?, hash_of(&r["claimsRoot"])?);
			let output_len = r["outputLen"].as_u64().context("outputLen")? as u32;
			let claims = r["claims"].as_u64().context("claims")? as u32;
			let url = format!("{}/v1/evidence/{request_id:?}", worker.trim_end_matches('/'));
			// Only the payer may read its answer's evidence: sign the request with its key.
			let asked = codec::Encode::encode(&(b"openledger:evidence:v1".to_vec(), request_id));
			let sig = sp_runtime::MultiSignature::Sr25519(sp_core::Pair::sign(&pair, &asked));
			let body: serde_json::Value = reqwest::Client::new()
				.get(&url)
				.header("x-openledger-evidence-signature", format!("0x{}", hex::encode(codec::Encode::encode(&sig))))
				.send()
				.await?
				.error_for_status()
				.with_context(|| format!("GET {url}"))?
				.json()
				.await?;
			let bytes = hex::decode(body["evidence"].as_str().context("evidence")?.trim_start_matches("0x"))?;
			let evidence = Vec::<SpanEvidence>::decode(&mut &bytes[..]).context("the evidence does not decode")?;
			let mut roots = std::collections::BTreeMap::new();
			let mut ranges: std::collections::BTreeMap<(u32, u32, u32), Vec<(u64, u64)>> = Default::default();
			let mut failures = Vec::new();
			for e in &evidence {
				let c = e.span.claim.contribution;
				let key = (c.datanet, c.version, c.index);
				if !roots.contains_key(&key) {
					roots.insert(key, verified_content_root(&chain, c.datanet, c.version, c.index).await?);
				}
				let checked = ev::verify_committed(e, &claims_root, claims).and_then(|_| ev::verify_span(&e.span, &output_root, output_len, &roots[&key]));
				match checked {
					Ok(()) => ranges.entry(key).or_default().push(e.span.claim.output_range()),
					Err(x) => failures.push(serde_json::json!({ "claim": e.span.claim, "error": format!("{x:?}") })),
				}
			}
			let mut shares = Vec::new();
			for s in r["attribution"].as_array().into_iter().flatten() {
				let key = (s["datanet"].as_u64().unwrap_or(0) as u32, s["version"].as_u64().unwrap_or(0) as u32, s["index"].as_u64().unwrap_or(0) as u32);
				let parts = s["sharePerbill"].as_u64().context("sharePerbill")? as u32;
				let covered = ev::covered_bytes(ranges.get(&key).cloned().unwrap_or_default());
				let justified = ev::share_justified(sp_runtime::Perbill::from_parts(parts), covered, output_len);
				if !justified {
					failures.push(serde_json::json!({ "contribution": key, "error": "share not justified by its proven spans" }));
				}
				shares.push(serde_json::json!({ "contribution": key, "sharePerbill": parts, "coveredBytes": covered, "justified": justified }));
			}
			let ok = failures.is_empty() && r["method"] == "spanMatch";
			print_json(&serde_json::json!({
				"requestId": format!("{request_id:?}"), "method": r["method"], "outputLen": output_len, "claims": claims,
				"proven": evidence.len() - failures.iter().filter(|f| f.get("claim").is_some()).count(),
				"shares": shares, "failures": failures, "verified": ok,
			}));
			if !ok {
				bail!("the receipt's evidence does NOT hold");
			}
		},
		Cmd::Challenge(ChallengeCmd::Share { request_id, datanet, version, index }) => {
			let contribution = pallet_attribution::ContributionRef { datanet, version, index };
			let out = send(attribution_call(pallet_attribution::Call::challenge_share { request_id, contribution })).await?;
			for e in out.events {
				if let RuntimeEvent::Attribution(pallet_attribution::Event::ShareChallenged { deadline, .. }) = e {
					println!("challenged the share of ({datanet}, {version}, {index}) in {request_id:?}; the worker must answer by block {deadline}");
				}
			}
		},
		Cmd::Challenge(ChallengeCmd::Omission { request_id, datanet, version, index, output, output_start, len, store }) => {
			use openledger_primitives::evidence as ev;
			let answer = std::fs::read(&output).with_context(|| format!("reading {}", output.display()))?;
			let r: serde_json::Value = chain.rpc("attribution_getReceipt", rpc_params![request_id]).await?;
			anyhow::ensure!(ev::content_root(&answer) == hash_of(&r["outputRoot"])?, "{} is not this receipt's answer (its content root differs)", output.display());
			let root = verified_content_root(&chain, datanet, version, index).await?;
			let doc = ContentStore::open(&store)?.get(&root).await?;
			let (start, n, offset) = match (output_start, len) {
				(Some(s), Some(n)) => {
					let bytes = answer.get(s as usize..(s as usize).saturating_add(n as usize)).context("the range lies outside the answer")?;
					let off = doc.windows(bytes.len().max(1)).position(|w| w == bytes).context("those bytes are not in the contribution")?;
					(s, n, off as u64)
				},
				_ => longest_shared(&answer, &doc).context("no run of the answer of the minimum length occurs in the contribution")?,
			};
			let claim = ev::SpanClaim { output_start: start, len: n, contribution: pallet_attribution::ContributionRef { datanet, version, index }, offset };
			let proof = ev::SpanProof {
				claim,
				output: ev::range_proof(&ev::content_tree(&answer), &answer, start as u64, n).context("the range cannot be proven")?,
				content: ev::range_proof(&ev::content_tree(&doc), &doc, offset, n).context("the range cannot be proven")?,
			};
			let out = send(attribution_call(pallet_attribution::Call::prove_omission { request_id, proof })).await?;
			for e in out.events {
				if let RuntimeEvent::Attribution(pallet_attribution::Event::OmissionProved { deadline, .. }) = e {
					println!("proved answer bytes {start}..{} in ({datanet}, {version}, {index}); the worker must answer by block {deadline}", start + n);
				}
			}
		},
		Cmd::Challenge(ChallengeCmd::Receipt { request_id }) => {
			send(attribution_call(pallet_attribution::Call::challenge { request_id })).await?;
			println!("challenged {request_id:?}; governance judges it");
		},
		Cmd::Escrow(EscrowCmd::Deposit { amount }) => {
			let amount = money::parse_open(&amount)?;
			send(attribution_call(pallet_attribution::Call::deposit_escrow { amount })).await?;
			println!("holding {} OPEN more in escrow", money::fmt_open(amount));
		},
		Cmd::Escrow(EscrowCmd::RequestWithdrawal { amount }) => {
			let amount = money::parse_open(&amount)?;
			let out = send(attribution_call(pallet_attribution::Call::request_escrow_withdrawal { amount })).await?;
			for e in out.events {
				if let RuntimeEvent::Attribution(pallet_attribution::Event::EscrowWithdrawalRequested { unlock_at, .. }) = e {
					println!("{} OPEN can be withdrawn from block {unlock_at} (`openledger escrow withdraw`)", money::fmt_open(amount));
				}
			}
		},
		Cmd::Escrow(EscrowCmd::Withdraw) => {
			let out = send(attribution_call(pallet_attribution::Call::withdraw_escrow {})).await?;
			for e in out.events {
				if let RuntimeEvent::Attribution(pallet_attribution::Event::EscrowWithdrawn { amount, .. }) = e {
					println!("withdrew {} OPEN from escrow", money::fmt_open(amount));
				}
			}
		},
		Cmd::Escrow(EscrowCmd::Show { account }) => {
			let who = account.unwrap_or_else(|| me.to_ss58check());
			let v: serde_json::Value = chain.rpc("attribution_escrow", rpc_params![who]).await?;
			print_json(&v);
		},
		Cmd::Voucher { worker, model, max_fee, prompt, chat, nonce, expires_in } => {
			check_lifetime(expires_in)?;
			let request_hash = match (prompt, chat) {
				(Some(p), _) => openledger_primitives::receipt::completion_request_hash(&p),
				(None, Some(file)) => {
					let messages: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?)?;
					money::request_hash("/v1/chat/completions", &serde_json::json!({ "messages": messages }))?
				},
				(None, None) => bail!("give --prompt or --chat"),
			};
			let spec = money::VoucherSpec {
				worker: parse_account(&worker)?,
				quote: money::Quote::of(&chain, model).await?,
				max_fee: money::parse_open(&max_fee)?,
				nonce: nonce.unwrap_or_else(money::fresh_nonce),
				expires_at: chain.best_number().await?.saturating_add(expires_in),
				request_hash,
			};
			let v = money::sign_voucher(&pair, chain.genesis(), &spec);
			let vj = &v.voucher;
			print_json(&serde_json::json!({
				"header": { "X-OpenLedger-Voucher": v.header },
				"requestId": format!("{:?}", v.request_id),
				"voucher": {
					"payer": vj.payer.to_ss58check(), "worker": vj.worker.to_ss58check(), "model": vj.model,
					"modelVersion": vj.model_version, "maxFee": vj.max_fee.to_string(), "terms": format!("{:?}", vj.terms),
					"nonce": vj.nonce, "expiresAt": vj.expires_at, "genesis": format!("{:?}", vj.genesis),
					"requestHash": format!("{:?}", vj.request_hash),
				},
				"voucherScale": format!("0x{}", hex::encode(codec::Encode::encode(vj))),
				"signedBytes": format!("0x{}", hex::encode(&v.payload)),
			}));
		},
		Cmd::Receipt { request_id } => {
			let r: serde_json::Value = chain.rpc("attribution_getReceipt", rpc_params![request_id]).await?;
			print_json(&r);
		},
		Cmd::Earnings { account } => {
			let who = account.unwrap_or_else(|| me.to_ss58check());
			let e: serde_json::Value = chain.rpc("attribution_earnings", rpc_params![who.clone()]).await?;
			let escrow: serde_json::Value = chain.rpc("attribution_escrow", rpc_params![who.clone()]).await?;
			let open = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<u128>().ok()).map(money::fmt_open);
			print_json(&serde_json::json!({
				"account": who,
				"accrued": open(&e["accrued"]), "claimed": open(&e["claimed"]),
				"claimable": open(&e["unclaimed"]), "pending": open(&e["pending"]),
				"escrow": open(&escrow["held"]), "unit": "OPEN",
			}));
		},
		Cmd::Claim { account, staking } => {
			let before = chain.free_balance(&me).await?;
			let out = match staking {
				Some(worker) => send(staking_call(pallet_open_staking::Call::claim_staking_rewards { worker: parse_account(&worker)? })).await?,
				None => {
					let who = account.map(|a| parse_account(&a)).transpose()?.unwrap_or_else(|| me.clone());
					send(attribution_call(pallet_attribution::Call::claim_rewards { who })).await?
				},
			};
			for e in out.events {
				match e {
					RuntimeEvent::Attribution(pallet_attribution::Event::RewardsClaimed { who, amount }) =>
						println!("paid {} OPEN to {}", money::fmt_open(amount), who.to_ss58check()),
					RuntimeEvent::OpenStaking(pallet_open_staking::Event::StakingRewardsClaimed { who, amount }) =>
						println!("paid {} OPEN of staking rewards to {}", money::fmt_open(amount), who.to_ss58check()),
					_ => {},
				}
			}
			let after = chain.free_balance(&me).await?;
			if after < before {
				println!("the claim cost the signer {} OPEN in fees", money::fmt_open(before - after));
			}
		},
		Cmd::Worker(WorkerCmd::Bond { amount, signing_key, endpoint, models, commission }) => {
			let call = pallet_open_staking::Call::bond_worker {
				amount: money::parse_open(&amount)?,
				signing_key: parse_signing_key(&signing_key)?,
				endpoint: bounded(endpoint.into_bytes(), "endpoint bytes")?,
				models: bounded(models, "models")?,
				commission: parse_percent(&commission)?,
			};
			send(staking_call(call)).await?;
			println!("bonded {} as a worker with {amount} OPEN", me.to_ss58check());
		},
		Cmd::Worker(WorkerCmd::Update { signing_key, endpoint, models, commission }) => {
			let call = pallet_open_staking::Call::update_worker {
				signing_key: signing_key.as_deref().map(parse_signing_key).transpose()?,
				endpoint: endpoint.map(|e| bounded(e.into_bytes(), "endpoint bytes")).transpose()?,
				models: if models.is_empty() { None } else { Some(bounded(models, "models")?) },
				commission: commission.as_deref().map(parse_percent).transpose()?,
			};
			send(staking_call(call)).await?;
			println!("updated worker {}", me.to_ss58check());
		},
		Cmd::Worker(WorkerCmd::BondExtra { amount }) => {
			send(staking_call(pallet_open_staking::Call::bond_extra { amount: money::parse_open(&amount)? })).await?;
			println!("bonded {amount} OPEN more");
		},
		Cmd::Worker(WorkerCmd::Unbond { amount }) => {
			send(staking_call(pallet_open_staking::Call::unbond { amount: money::parse_open(&amount)? })).await?;
			println!("unbonding {amount} OPEN");
		},
		Cmd::Worker(WorkerCmd::WithdrawUnbonded) => {
			let out = send(staking_call(pallet_open_staking::Call::withdraw_unbonded {})).await?;
			for e in out.events {
				if let RuntimeEvent::OpenStaking(pallet_open_staking::Event::Withdrawn { amount, .. }) = e {
					println!("withdrew {} OPEN of unbonded stake", money::fmt_open(amount));
				}
			}
		},
		Cmd::Worker(WorkerCmd::Show { account }) => {
			let who = account.map(|a| parse_account(&a)).transpose()?.unwrap_or_else(|| me.clone());
			let key = format!("0x{}", hex::encode(openledger_primitives::tx::worker_storage_key(&who)));
			let raw: Option<String> = chain.rpc("state_getStorage", rpc_params![key]).await?;
			let raw = hex::decode(raw.with_context(|| format!("{} is not a worker", who.to_ss58check()))?.trim_start_matches("0x"))?;
			let w = <pallet_open_staking::WorkerInfo<openledger_runtime::Runtime> as codec::Decode>::decode(&mut &raw[..])?;
			print_json(&serde_json::json!({
				"worker": who.to_ss58check(), "signingKey": format!("0x{}", hex::encode(w.signing_key)),
				"endpoint": String::from_utf8_lossy(&w.endpoint), "models": w.models.to_vec(),
				"selfBond": money::fmt_open(w.self_bond), "delegated": money::fmt_open(w.delegated), "delegators": w.delegators,
				"commissionPerbill": w.commission.deconstruct(), "status": format!("{:?}", w.status),
			}));
		},
		Cmd::Model(ModelCmd::RegisterBase { name, weights_hash, license, architecture, uri, training_config_hash }) => {
			let out = send(models_call(pallet_models::Call::register_base {
				name: name.into_bytes(),
				license: license.into_bytes(),
				architecture: architecture.into_bytes(),
				weights_hash,
				uri: uri.into_bytes(),
				lineage: Default::default(),
				training_config_hash: training_config_hash.unwrap_or_default(),
			}))
			.await?;
			for e in out.events {
				if let RuntimeEvent::Models(pallet_models::Event::BaseRegistered { model, fee, .. }) = e {
					println!("registered base model {model} (fee {} OPEN)", money::fmt_open(fee));
				}
			}
		},
		Cmd::Model(ModelCmd::SetPrice { model, per_request, per_1k_tokens }) => {
			let pricing = pallet_models::Pricing { per_request: money::parse_open(&per_request)?, per_1k_tokens: money::parse_open(&per_1k_tokens)? };
			send(models_call(pallet_models::Call::set_pricing { model, pricing })).await?;
			println!("model {model}: {per_request} OPEN a request + {per_1k_tokens} OPEN per 1,000 tokens");
		},
		Cmd::Model(ModelCmd::Find { weights_hash }) => {
			match chain.rpc::<serde_json::Value>("models_byWeightsHash", rpc_params![weights_hash]).await {
				Ok(found) => println!("{}", serde_json::to_string(&found)?),
				// The models RPC's NOT_FOUND (9201): no model has these weights.
				Err(e) if matches!(e.downcast_ref::<jsonrpsee::core::ClientError>(), Some(jsonrpsee::core::ClientError::Call(o)) if o.code() == 9201) => println!("null"),
				Err(e) => return Err(e),
			}
		},
		Cmd::Model(ModelCmd::Show { model }) => {
			print_json(&chain.rpc::<serde_json::Value>("models_getModel", rpc_params![model]).await?);
		},
		Cmd::Delegate { worker, amount } => {
			let call = pallet_open_staking::Call::delegate { worker: parse_account(&worker)?, amount: money::parse_open(&amount)? };
			send(staking_call(call)).await?;
			println!("delegated {amount} OPEN to {worker}");
		},
		Cmd::Undelegate { worker, amount } => {
			let call = pallet_open_staking::Call::undelegate { worker: parse_account(&worker)?, amount: money::parse_open(&amount)? };
			send(staking_call(call)).await?;
			println!("unbonding {amount} OPEN delegated to {worker}");
		},
		Cmd::PayProxy { worker, listen, max_fee, daily_cap, spend_log, expires_in, api_key } => {
			check_lifetime(expires_in)?;
			let cfg = proxy::Config {
				listen,
				worker,
				max_fee: money::parse_open(&max_fee)?,
				daily_cap: daily_cap.as_deref().map(money::parse_open).transpose()?,
				spend_log,
				expires_in,
				api_key,
			};
			proxy::run(chain, pair, cfg).await?;
		},
		Cmd::Studio { .. } => unreachable!("served above; qed"),
		Cmd::Cat { id, store } => {
			let c: serde_json::Value = chain.rpc("datanets_getContribution", rpc_params![id]).await?;
			let hash = H256::from_slice(&hex::decode(c["contentHash"].as_str().context("contentHash")?.trim_start_matches("0x"))?);
			let bytes = ContentStore::open(&store)?.get(&hash).await?;
			use std::io::Write;
			std::io::stdout().write_all(&bytes)?;
		},
	}
	Ok(())
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn percentages_reasons_and_lifetimes_refuse_what_the_chain_would() {
		assert_eq!(parse_percent("5%").unwrap(), sp_runtime::Perbill::from_percent(5));
		assert_eq!(parse_percent("2.5").unwrap(), sp_runtime::Perbill::from_parts(25_000_000));
		assert_eq!(parse_percent("100").unwrap(), sp_runtime::Perbill::one());
		// Above 100 %, or so large that it would wrap: refused, never a small commission.
		for bad in ["100.0000001", "1844674407371", "18446744073709551615", "-1", "", "5,5", "٥", "0.00000001"] {
			assert!(parse_percent(bad).is_err(), "{bad:?}");
		}
		assert_eq!(parse_reason("duplicate"), Ok(2));
		assert_eq!(parse_reason("65535"), Ok(65535));
		assert!(parse_reason("65536").is_err() && parse_reason("Spam").is_err());
		assert!(check_lifetime(14_400).is_ok() && check_lifetime(14_401).is_err());
		assert!(parse_signing_key("0x00").is_err() && parse_signing_key("not-an-address").is_err());
		assert_eq!(parse_signing_key(&format!("0x{}", "ab".repeat(32))).unwrap(), [0xab; 32]);
	}
}
