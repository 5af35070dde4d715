//! The settler: takes the oldest queued receipts in batches, submits them as one
//! `Attribution::submit_receipts` extrinsic signed by the worker's account, follows it to a
//! finalized block, and retires each receipt by what the chain then holds for its request id:
//! settled (the chain has its record) or rejected. Network and pool errors are retried with
//! exponential backoff; the connection is re-established when it drops.
//!
//! Exactly once: the chain refuses a request id it has already settled, and the settler checks
//! the chain for every receipt before submitting it, so a batch that landed before a crash (or
//! an earlier copy of the same transaction) is retired, never paid twice.

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

/// A node connection that reconnects on demand.
pub struct Connection {
	url: String,
	client: Mutex<Option<Arc<ChainClient>>>,
}

impl Connection {
	pub fn new(url: String, first: ChainClient) -> Self {
		Self { url, client: Mutex::new(Some(Arc::new(first))) }
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
}

async fn is_settled(chain: &ChainClient, id: &RequestId, at: Hash) -> Result<bool> {
	Ok(chain
		.rpc_opt::<serde_json::Value>("attribution_getReceipt", rpc_params![id, at], RECEIPT_NOT_FOUND)
		.await?
		.is_some())
}

impl Settler {
	pub async fn run(self) {
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

	/// Settles one batch; `false` if there was nothing to do.
	pub async fn step(&self) -> Result<bool> {
		if self.queue.counts().0 == 0 {
			return Ok(false);
		}
		if self.queue.counts().0 < self.batch && !self.linger.is_zero() {
			tokio::time::sleep(self.linger).await;
		}
		let batch = self.queue.oldest(self.batch)?;
		let chain = self.conn.get().await?;
		let (finalized, _) = chain.finalized().await?;
		let mut todo: Vec<(u64, SignedReceipt)> = Vec::with_capacity(batch.len());
		for (seq, r) in batch {
			let id = r.receipt.request_id();
			if is_settled(&chain, &id, finalized).await? {
				tracing::info!("receipt {id:?} was settled before; retiring it");
				self.queue.settled(seq, id, &format!("{finalized:?}"))?;
				self.metrics.receipts.with_label_values(&["settled"]).inc();
			} else {
				todo.push((seq, r));
			}
		}
		if todo.is_empty() {
			self.metrics.receipts_queued.set(self.queue.counts().0 as i64);
			return Ok(true);
		}
		let receipts: Vec<&SignedReceipt> = todo.iter().map(|(_, r)| r).collect();
		let call = tx::encode_call(tx::ATTRIBUTION_PALLET, tx::SUBMIT_RECEIPTS_CALL, &receipts);
		let started = std::time::Instant::now();
		let done = chain.submit_and_finalize(&self.account, &call).await?;
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
		}
		self.metrics.receipts.with_label_values(&["settled"]).inc_by(settled);
		self.metrics.receipts.with_label_values(&["rejected"]).inc_by(rejected);
		tracing::info!("batch finalized in {:?}: {settled} settled, {rejected} rejected", done.block);
		self.metrics.receipts_queued.set(self.queue.counts().0 as i64);
		Ok(true)
	}
}
