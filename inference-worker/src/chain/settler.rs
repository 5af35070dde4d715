//! The settler: takes the oldest queued receipts in batches, submits them as one
//! `Attribution::submit_receipts` extrinsic signed by the worker's account, follows it to a
//! finalized block, and retires each receipt by what the chain then holds for its request id:
//! settled (the chain has its record) or rejected. Network and pool errors are retried with
//! exponential backoff; the connection is re-established when it drops.
//!
//! Exactly once: the chain refuses a request id it has already settled, and before submitting a
//! receipt that may have been submitted before (left by an earlier run, or in a batch whose
//! outcome was not seen) the settler asks the chain about it, so a batch that landed before a
//! crash (or an earlier copy of the same transaction) is retired, never paid twice. Receipts
//! queued by this run and never sent go straight into a batch.

use super::queue::ReceiptQueue;
use super::{ChainClient, RequestId, SignedReceipt};
use anyhow::Result;
use jsonrpsee::rpc_params;
use openledger_primitives::{tx, Hash};
use sp_core::sr25519;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// `attribution_getReceipt` error code for an unknown request id.
const RECEIPT_NOT_FOUND: i32 = 9301;

/// How long a submitted batch may take to reach a finalized block before the settler stops
/// waiting (the batch stays pending and is looked up on chain before it is sent again).
pub const FINALIZE_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether the node refused a transaction because of what the batch holds, so that sending it
/// again cannot help: it would exhaust a block's resources. Everything else is retried: fees,
/// nonces, a stalled or unreachable node, and refusals that a runtime upgrade explains (a bad
/// signature or an undecodable call after `set_code`: see [`needs_fresh_connection`]).
pub fn permanently_invalid(error: &str) -> bool {
	error.to_ascii_lowercase().contains("exhaust")
}

/// Refusals after which the connection is made again, which re-reads the runtime version that
/// signed extrinsics commit to (spec and transaction version change with a runtime upgrade).
pub fn needs_fresh_connection(error: &str) -> bool {
	let e = error.to_ascii_lowercase();
	["bad signature", "badproof", "could not decode", "outdated", "stale", "invalid transaction"].iter().any(|k| e.contains(k))
}

/// A node connection that reconnects on demand.
pub struct Connection {
	url: String,
	client: Mutex<Option<Arc<ChainClient>>>,
}

impl Connection {
	pub fn new(url: String, first: ChainClient) -> Self {
		Self { url, client: Mutex::new(Some(Arc::new(first))) }
	}

	/// Drops the connection: the next [`Self::get`] connects again (and re-reads the runtime
	/// version).
	pub async fn reset(&self) {
		*self.client.lock().await = None;
	}

	pub async fn get(&self) -> Result<Arc<ChainClient>> {
		let mut c = self.client.lock().await;
		if let Some(client) = c.as_ref().filter(|c| c.is_connected()) {
			return Ok(client.clone());
		}
		let fresh = Arc::new(ChainClient::connect(&self.url).await?);
		*c = Some(fresh.clone());
		Ok(fresh)
	}
}

pub struct Settler {
	pub conn: Arc<Connection>,
	pub queue: Arc<ReceiptQueue>,
	/// The worker's account key (signs the extrinsics).
	pub account: sr25519::Pair,
	pub batch: usize,
	/// Extra wait for a fuller batch once something is queued.
	pub linger: Duration,
	pub metrics: crate::metrics::Metrics,
	/// Sequence numbers of receipts that may already be on chain.
	pub uncertain: std::sync::Mutex<std::collections::HashSet<u64>>,
	/// Receipts per batch now: halved while the node refuses batches as permanently invalid,
	/// down to one (which is then set aside as rejected), doubled back after a success.
	pub limit: std::sync::atomic::AtomicUsize,
}

async fn is_settled(chain: &ChainClient, id: &RequestId, at: Hash) -> Result<bool> {
	Ok(chain
		.rpc_opt::<serde_json::Value>("attribution_getReceipt", rpc_params![id, at], RECEIPT_NOT_FOUND)
		.await?
		.is_some())
}

impl Settler {
	pub async fn run(self) {
		// Whatever an earlier run left may have reached the chain before it stopped.
		self.uncertain_set().extend(self.queue.pending_seqs());
		let mut backoff = Duration::from_millis(500);
		loop {
			match self.step().await {
				Ok(true) => backoff = Duration::from_millis(500),
				Ok(false) => self.queue.wait(Duration::from_secs(1)).await,
				Err(e) => {
					tracing::warn!("receipt settlement failed, retrying in {backoff:?}: {e:#}");
					self.metrics.receipt_retries.inc();
					tokio::time::sleep(backoff).await;
					backoff = (backoff * 2).min(Duration::from_secs(30));
				},
			}
		}
	}

	fn uncertain_set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<u64>> {
		self.uncertain.lock().expect("not poisoned; qed")
	}

	/// Settles one batch; `false` if there was nothing to do.
	pub async fn step(&self) -> Result<bool> {
		let pending = self.queue.counts().0;
		if pending == 0 {
			return Ok(false);
		}
		if pending < self.batch && !self.linger.is_zero() {
			tokio::time::sleep(self.linger).await;
		}
		let limit = self.limit.load(std::sync::atomic::Ordering::Relaxed).clamp(1, self.batch);
		let batch = self.queue.oldest(limit)?;
		let chain = self.conn.get().await?;
		let mut todo: Vec<(u64, SignedReceipt)> = Vec::with_capacity(batch.len());
		let mut finalized = None;
		for (seq, r) in batch {
			let id = r.receipt.request_id();
			if self.uncertain_set().contains(&seq) {
				let at = match finalized {
					Some(at) => at,
					None => *finalized.insert(chain.finalized().await?.0),
				};
				if is_settled(&chain, &id, at).await? {
					tracing::info!("receipt {id:?} was settled before; retiring it");
					self.queue.settled(seq, id, &format!("{at:?}"))?;
					self.uncertain_set().remove(&seq);
					self.metrics.receipts.with_label_values(&["settled"]).inc();
					continue;
				}
			}
			todo.push((seq, r));
		}
		if todo.is_empty() {
			self.metrics.receipts_queued.set(self.queue.counts().0 as i64);
			return Ok(true);
		}
		let receipts: Vec<&SignedReceipt> = todo.iter().map(|(_, r)| r).collect();
		let call = tx::encode_call(tx::ATTRIBUTION_PALLET, tx::SUBMIT_RECEIPTS_CALL, &receipts);
		self.uncertain_set().extend(todo.iter().map(|(seq, _)| *seq));
		let started = std::time::Instant::now();
		let done = match tokio::time::timeout(FINALIZE_TIMEOUT, chain.submit_and_finalize(&self.account, &call)).await {
			Err(_) => anyhow::bail!("the batch was not finalized within {FINALIZE_TIMEOUT:?} (stalled chain?)"),
			Ok(Err(e)) if permanently_invalid(&format!("{e:#}")) => {
				let n = todo.len();
				if n > 1 {
					// Find the bad receipt(s) by halving: the rest goes through meanwhile.
					self.limit.store(n / 2, std::sync::atomic::Ordering::Relaxed);
					tracing::warn!("the node refused a batch of {n} receipts ({e:#}); trying {} at a time", n / 2);
				} else {
					let (seq, r) = &todo[0];
					let id = r.receipt.request_id();
					// Never sent successfully, so not on chain: set aside, not submitted again.
					tracing::error!("the node refuses receipt {id:?} on its own ({e:#}); setting it aside as rejected");
					self.queue.rejected(*seq, id, &format!("refused by the node: {e:#}").replace('\n', " "))?;
					self.uncertain_set().remove(seq);
					self.metrics.receipts.with_label_values(&["rejected"]).inc();
				}
				return Ok(true);
			},
			Ok(Err(e)) => {
				if needs_fresh_connection(&format!("{e:#}")) {
					self.conn.reset().await;
				}
				return Err(e);
			},
			Ok(Ok(done)) => done,
		};
		self.limit.store(limit.saturating_mul(2).min(self.batch), std::sync::atomic::Ordering::Relaxed);
		self.metrics.settle_seconds.observe(started.elapsed().as_secs_f64());
		let (mut settled, mut rejected) = (0, 0);
		for (seq, r) in todo {
			let id = r.receipt.request_id();
			let block = format!("{:?}", done.block);
			if is_settled(&chain, &id, done.block).await? {
				self.queue.settled(seq, id, &block)?;
				settled += 1;
			} else {
				tracing::warn!("receipt {id:?} rejected in block {block} (see its ReceiptRejected event)");
				self.queue.rejected(seq, id, &block)?;
				rejected += 1;
			}
			self.uncertain_set().remove(&seq);
		}
		self.metrics.receipts.with_label_values(&["settled"]).inc_by(settled);
		self.metrics.receipts.with_label_values(&["rejected"]).inc_by(rejected);
		tracing::info!("batch finalized in {:?}: {settled} settled, {rejected} rejected", done.block);
		self.metrics.receipts_queued.set(self.queue.counts().0 as i64);
		Ok(true)
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn only_refusals_that_a_retry_cannot_fix_are_permanent_and_upgrades_reconnect() {
		let exhausts = "the node refused the transaction: ErrorObject { code: 1010, message: \"Invalid Transaction\", data: \"Transaction would exhaust the block limits\" }";
		assert!(permanently_invalid(exhausts));
		// After a runtime upgrade every extrinsic signed for the old version is refused like
		// this: never a reason to set receipts aside, a reason to reconnect.
		for e in [
			"the node refused the transaction: Invalid Transaction: Transaction has a bad signature",
			"Verification Error: Runtime error: Could not decode `Call`",
			"Invalid Transaction: Transaction is outdated",
		] {
			assert!(!permanently_invalid(e), "{e}");
			assert!(needs_fresh_connection(e), "{e}");
		}
		for e in [
			"Invalid Transaction: Inability to pay some fees (e.g. account balance too low)",
			"cannot connect to the node at ws://127.0.0.1:9944",
			"the batch was not finalized within 120s (stalled chain?)",
			"Priority is too low: (1 vs 1)",
		] {
			assert!(!permanently_invalid(e), "{e}");
		}
	}
}
