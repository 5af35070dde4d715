//! The worker's side of the chain: a JSON-RPC client of the node, the worker's on-chain
//! registration (which models it serves, with their terms), vouchers and receipts, the durable
//! receipt queue and the settler that submits it.
//!
//! The receipt and voucher types, their signing payloads and the extrinsic bytes come from
//! `openledger-primitives`, the crate the runtime itself is built on, so what the worker signs
//! is exactly what the chain checks.

pub mod billing;
pub mod evidence;
pub mod queue;
pub mod registry;
pub mod settler;

use anyhow::{anyhow, bail, Context, Result};
use jsonrpsee::core::client::{ClientT, Subscription, SubscriptionClientT};
use jsonrpsee::core::params::ArrayParams;
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use openledger_primitives::{tx, AccountId, Hash, Nonce};
use sp_core::{crypto::Ss58Codec, sr25519, Pair};
use std::time::Duration;

pub use openledger_primitives::receipt::RequestId;
/// The runtime's receipt types, instantiated with its account, balance and block types.
pub type Voucher = openledger_primitives::receipt::Voucher<AccountId, u128, u32>;
pub type Receipt = openledger_primitives::receipt::Receipt<AccountId, u128, u32, openledger_primitives::Signature>;
pub type SignedReceipt =
	openledger_primitives::receipt::SignedReceipt<AccountId, u128, u32, openledger_primitives::Signature>;

/// A signing key from a secret URI (`//Alice`, a mnemonic, a `0x` seed, with `//derivation`).
pub fn keypair(suri: &str) -> Result<sr25519::Pair> {
	sr25519::Pair::from_string(suri, None).map_err(|e| anyhow!("bad secret URI: {e:?}"))
}

/// A connection to a node.
pub struct ChainClient {
	client: WsClient,
	pub genesis: Hash,
	pub spec_version: u32,
	pub tx_version: u32,
}

/// Where a submitted extrinsic ended up.
#[derive(Debug, Clone, Copy)]
pub struct Finalized {
	pub block: Hash,
}

impl ChainClient {
	pub async fn connect(url: &str) -> Result<Self> {
		let client = WsClientBuilder::default()
			.request_timeout(Duration::from_secs(60))
			.connection_timeout(Duration::from_secs(10))
			.build(url)
			.await
			.with_context(|| format!("cannot connect to the node at {url}"))?;
		let genesis: Hash = client.request("chain_getBlockHash", rpc_params![0]).await?;
		let version: serde_json::Value = client.request("state_getRuntimeVersion", rpc_params![]).await?;
		let spec_version = version["specVersion"].as_u64().context("specVersion")? as u32;
		let tx_version = version["transactionVersion"].as_u64().context("transactionVersion")? as u32;
		Ok(Self { client, genesis, spec_version, tx_version })
	}

	/// Whether the connection is still up.
	pub fn is_connected(&self) -> bool {
		self.client.is_connected()
	}

	pub async fn rpc<R: serde::de::DeserializeOwned>(&self, method: &str, params: ArrayParams) -> Result<R> {
		self.client.request(method, params).await.with_context(|| format!("{method} failed"))
	}

	/// `None` where the method answers with the error code `not_found`.
	pub async fn rpc_opt<R: serde::de::DeserializeOwned>(&self, method: &str, params: ArrayParams, not_found: i32) -> Result<Option<R>> {
		match self.client.request(method, params).await {
			Ok(v) => Ok(Some(v)),
			Err(jsonrpsee::core::ClientError::Call(e)) if e.code() == not_found => Ok(None),
			Err(e) => Err(anyhow!("{method} failed: {e}")),
		}
	}

	/// The next nonce of `who`, counting its transactions in the pool.
	pub async fn next_nonce(&self, who: &AccountId) -> Result<Nonce> {
		self.rpc("system_accountNextIndex", rpc_params![who.to_ss58check()]).await
	}

	/// Raw storage at `at` (best block if `None`).
	pub async fn storage(&self, key: &[u8], at: Option<Hash>) -> Result<Option<Vec<u8>>> {
		let raw: Option<String> = self.rpc("state_getStorage", rpc_params![format!("0x{}", hex::encode(key)), at]).await?;
		raw.map(|s| hex::decode(s.trim_start_matches("0x")).context("storage is not hex")).transpose()
	}

	/// The latest finalized block and its number.
	pub async fn finalized(&self) -> Result<(Hash, u32)> {
		let hash: Hash = self.rpc("chain_getFinalizedHead", rpc_params![]).await?;
		let header: serde_json::Value = self.rpc("chain_getHeader", rpc_params![hash]).await?;
		Ok((hash, parse_number(&header)?))
	}

	/// New finalized heads: (hash-less) block numbers as they come.
	pub async fn subscribe_finalized(&self) -> Result<Subscription<serde_json::Value>> {
		Ok(self
			.client
			.subscribe("chain_subscribeFinalizedHeads", rpc_params![], "chain_unsubscribeFinalizedHeads")
			.await?)
	}

	/// Signs `call` with `signer` at its next nonce (counting the pool) and submits it without
	/// waiting for a block: the node's pool accepted it. Returns its hash.
	pub async fn submit(&self, signer: &sr25519::Pair, call: &[u8]) -> Result<Hash> {
		let who: AccountId = signer.public().into();
		let nonce = self.next_nonce(&who).await?;
		let ctx = tx::TxContext { genesis: self.genesis, spec_version: self.spec_version, tx_version: self.tx_version, nonce };
		let bytes = tx::signed_extrinsic(call, signer, &ctx);
		self.rpc("author_submitExtrinsic", rpc_params![format!("0x{}", hex::encode(&bytes))])
			.await
			.context("the node refused the transaction")
	}

	/// Signs `call` (encoded, see [`tx::encode_call`]) with `signer` at its next nonce, submits it
	/// and follows it until its block is finalized.
	pub async fn submit_and_finalize(&self, signer: &sr25519::Pair, call: &[u8]) -> Result<Finalized> {
		let who: AccountId = signer.public().into();
		let nonce = self.next_nonce(&who).await?;
		let ctx = tx::TxContext { genesis: self.genesis, spec_version: self.spec_version, tx_version: self.tx_version, nonce };
		let bytes = tx::signed_extrinsic(call, signer, &ctx);
		let mut sub: Subscription<serde_json::Value> = self
			.client
			.subscribe(
				"author_submitAndWatchExtrinsic",
				rpc_params![format!("0x{}", hex::encode(&bytes))],
				"author_unwatchExtrinsic",
			)
			.await
			.context("the node refused the transaction")?;
		loop {
			let status = sub.next().await.ok_or_else(|| anyhow!("the node closed the transaction subscription"))??;
			if let Some(h) = status.get("finalized") {
				let block: Hash = serde_json::from_value(h.clone())?;
				let _ = sub.unsubscribe().await;
				return Ok(Finalized { block });
			}
			let transient = matches!(status.as_str(), Some("ready" | "future"))
				|| ["broadcast", "inBlock", "retracted"].iter().any(|k| status.get(*k).is_some());
			if !transient {
				bail!("transaction {status}");
			}
		}
	}
}

/// The `number` of a JSON header (hex).
pub fn parse_number(header: &serde_json::Value) -> Result<u32> {
	let n = header["number"].as_str().context("header without number")?;
	u32::from_str_radix(n.trim_start_matches("0x"), 16).context("bad block number")
}

/// Keeps `registry` in step with the chain: refreshes it at every new finalized block (and
/// every 30 s without one), resubscribing when the connection drops.
pub async fn follow(
	conn: std::sync::Arc<settler::Connection>,
	registry: std::sync::Arc<registry::Registry>,
	queue: std::sync::Arc<queue::ReceiptQueue>,
	evidence: std::sync::Arc<evidence::EvidenceStore>,
) {
	loop {
		let run = async {
			let chain = conn.get().await?;
			let mut heads = chain.subscribe_finalized().await?;
			loop {
				registry.refresh(&chain).await?;
				// Used vouchers that expired need no remembering.
				let finalized = registry.finalized.load(std::sync::atomic::Ordering::Relaxed);
				let q = queue.clone();
				match tokio::task::spawn_blocking(move || q.prune(finalized)).await? {
					Ok(0) => {},
					Ok(n) => tracing::info!("forgot {n} settled/rejected receipts whose vouchers expired before block {finalized}"),
					Err(e) => tracing::warn!("pruning the receipt queue: {e:#}"),
				}
				// Evidence of receipts that can no longer be disputed.
				let ev = evidence.clone();
				if let Err(e) = tokio::task::spawn_blocking(move || ev.prune(finalized)).await? {
					tracing::warn!("pruning kept evidence: {e:#}");
				}
				match tokio::time::timeout(Duration::from_secs(30), heads.next()).await {
					Ok(Some(Ok(_))) | Err(_) => continue,
					Ok(Some(Err(e))) => bail!("finalized heads: {e}"),
					Ok(None) => bail!("the node closed the finalized-heads subscription"),
				}
			}
			#[allow(unreachable_code)]
			Ok::<(), anyhow::Error>(())
		};
		if let Err(e) = run.await {
			tracing::warn!("following the chain: {e:#}; retrying in 2s");
		}
		tokio::time::sleep(Duration::from_secs(2)).await;
	}
}

/// What the HTTP layer needs for paid requests.
pub struct ChainState {
	pub registry: std::sync::Arc<registry::Registry>,
	pub queue: std::sync::Arc<queue::ReceiptQueue>,
	pub conn: std::sync::Arc<settler::Connection>,
	/// Signs receipts (its public key is the one in the worker's on-chain record).
	pub signing_key: sr25519::Pair,
	/// Refuse requests without a voucher (HTTP 402) instead of serving them unbilled.
	pub require_voucher: bool,
	/// The evidence of span receipts, kept until they can no longer be disputed.
	pub evidence: std::sync::Arc<evidence::EvidenceStore>,
	/// Tests only: credit a contribution no span backs (see `--test-misattribute`).
	pub misattribute: bool,
}

/// `attribution_escrow` of `who`: OPEN held for paying requests.
pub async fn escrow_of(chain: &ChainClient, who: &AccountId) -> Result<u128> {
	let v: serde_json::Value = chain.rpc("attribution_escrow", rpc_params![who.to_ss58check(), Option::<Hash>::None]).await?;
	v["held"].as_str().context("escrow without `held`")?.parse().context("escrow amount")
}

/// What of `who`'s escrow a new request may count on: what is held, less a withdrawal the payer
/// has asked for (it may be released before a receipt settles, whenever its delay ends).
pub async fn escrow_available(chain: &ChainClient, who: &AccountId) -> Result<u128> {
	let v: serde_json::Value = chain.rpc("attribution_escrow", rpc_params![who.to_ss58check(), Option::<Hash>::None]).await?;
	available(&v)
}

fn available(v: &serde_json::Value) -> Result<u128> {
	let held: u128 = v["held"].as_str().context("escrow without `held`")?.parse().context("escrow amount")?;
	let leaving: u128 = match v["pending_withdrawal"].as_str().or_else(|| v["pendingWithdrawal"].as_str()) {
		Some(a) => a.parse().context("withdrawal amount")?,
		None => 0,
	};
	Ok(held.saturating_sub(leaving))
}

#[cfg(test)]
mod tests {
	#[test]
	fn a_pending_withdrawal_is_not_available_to_new_requests() {
		let v = |j: &str| super::available(&serde_json::from_str(j).unwrap()).unwrap();
		assert_eq!(v(r#"{"held": "1000", "pending_withdrawal": null, "unlock_at": null}"#), 1000);
		assert_eq!(v(r#"{"held": "1000", "pending_withdrawal": "600", "unlock_at": 50}"#), 400);
		assert_eq!(v(r#"{"held": "1000", "pendingWithdrawal": "1600", "unlockAt": 50}"#), 0);
	}
}
