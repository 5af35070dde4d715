//! The durable receipt queue: a receipt is on disk (written, fsynced, renamed into place, the
//! folder fsynced) before the answer it pays for leaves the worker, and leaves the queue only
//! once the chain shows it settled (or rejected) at a finalized block.
//!
//! Layout of the queue folder:
//! - `pending/<seq>-<request id>.scale`: SCALE-encoded signed receipts, oldest `seq` first;
//! - `settled.log`: one line `<request id> <finalized block> <voucher expiry>` per settled
//!   receipt (appended and fsynced before the pending file is removed, so a crash in between
//!   only leaves a receipt that the settler finds settled on chain and retires without
//!   submitting it again);
//! - `rejected/<request id>.scale`: receipts the chain refused (the reason is in the
//!   `ReceiptRejected` event of the block named in `rejected/<request id>.why`, whose second
//!   line is the voucher's expiry); `rejected/expired/`: those whose voucher has expired.
//!
//! Request ids are unique: a voucher that is pending, settled, rejected or being served cannot
//! be queued twice. Settled and rejected ids are remembered until their voucher expires (an
//! expired voucher is refused anyway), then forgotten ([`ReceiptQueue::prune`]): memory and
//! the log stay proportional to the vouchers still alive, not to the worker's history.

use super::{RequestId, SignedReceipt};
use openledger_primitives::AccountId;
use anyhow::{bail, Context, Result};
use codec::{Decode, Encode};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where a request's receipt is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum ReceiptStatus {
	/// Being served (voucher accepted, answer not finished).
	Serving,
	/// On disk, waiting for the settler.
	Queued,
	/// Settled on chain; `block` is the finalized block the settler checked it at.
	Settled { block: String },
	/// Refused by the chain at `block`.
	Rejected { block: String },
	Unknown,
}

#[derive(Default)]
struct State {
	next_seq: u64,
	pending: BTreeMap<u64, RequestId>,
	pending_ids: HashSet<RequestId>,
	/// request id → (block, voucher expiry).
	settled: HashMap<RequestId, (String, u32)>,
	rejected: HashMap<RequestId, (String, u32)>,
	/// Expiry of each pending receipt's voucher.
	pending_expiry: HashMap<RequestId, u32>,
	/// Lines in `settled.log` (live or not), to know when to compact it.
	log_lines: usize,
	/// Requests being served: their payer and the voucher's maximum fee.
	serving: HashMap<RequestId, (AccountId, u128)>,
	/// Fees of pending receipts by request, and what each payer owes in all (serving at their
	/// maximum fee, pending at their fee): the payer's escrow must cover it, since none of it
	/// has left the escrow on chain yet.
	pending_fees: HashMap<RequestId, (AccountId, u128)>,
	committed: HashMap<AccountId, u128>,
	/// Receipts being written (claimed before the write, so a request id is pushed once).
	writing: HashSet<RequestId>,
	/// Vouchers spent by a run that stopped before their receipt was queued (`spent/`), with
	/// their expiry: refused as used until they expire.
	spent: HashMap<RequestId, u32>,
	/// Settlements so far: an escrow read taken before a settlement is stale after it.
	epoch: u64,
}

impl State {
	fn commit(&mut self, payer: &AccountId, fee: u128) {
		*self.committed.entry(payer.clone()).or_default() += fee;
	}
	fn uncommit(&mut self, payer: &AccountId, fee: u128) {
		if let Some(c) = self.committed.get_mut(payer) {
			*c = c.saturating_sub(fee);
			if *c == 0 {
				self.committed.remove(payer);
			}
		}
	}
	fn retire_fee(&mut self, id: &RequestId) {
		if let Some((payer, fee)) = self.pending_fees.remove(id) {
			self.uncommit(&payer, fee);
		}
	}
}

/// Why a request cannot be reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveError {
	/// The request id (voucher) is being served, queued, settled or rejected.
	Used,
	/// A receipt settled since `held` was read: read the escrow again.
	Stale,
	/// The payer's escrow does not cover this voucher beside what the worker already holds
	/// against it (requests in flight, receipts not yet settled).
	Escrow { held: u128, committed: u128 },
}

pub struct ReceiptQueue {
	dir: PathBuf,
	state: Mutex<State>,
	/// Serializes appends to `settled.log` with its compaction.
	log: Mutex<()>,
	notify: tokio::sync::Notify,
}

fn id_hex(id: &RequestId) -> String {
	format!("0x{}", hex::encode(id.as_bytes()))
}

fn parse_id(s: &str) -> Option<RequestId> {
	let b = hex::decode(s.trim_start_matches("0x")).ok()?;
	(b.len() == 32).then(|| RequestId::from_slice(&b))
}

/// Writes `bytes` to `path` atomically and durably.
fn write_durable(path: &Path, bytes: &[u8]) -> Result<()> {
	let tmp = path.with_extension("tmp");
	let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
	f.write_all(bytes)?;
	f.sync_all()?;
	fs::rename(&tmp, path)?;
	sync_dir(path.parent().expect("files live in the queue folder; qed"))
}

fn sync_dir(dir: &Path) -> Result<()> {
	File::open(dir)?.sync_all()?;
	Ok(())
}

impl ReceiptQueue {
	/// Opens (creating if needed) the queue in `dir` and loads what a previous run left.
	pub fn open(dir: &Path) -> Result<Self> {
		fs::create_dir_all(dir.join("pending"))?;
		fs::create_dir_all(dir.join("rejected"))?;
		fs::create_dir_all(dir.join("spent"))?;
		let mut s = State::default();
		for e in fs::read_dir(dir.join("pending"))? {
			let p = e?.path();
			let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
			if name.ends_with(".tmp") {
				// A write that never completed: its answer was never sent.
				fs::remove_file(&p)?;
				continue;
			}
			let Some((seq, id)) = name.strip_suffix(".scale").and_then(|n| n.split_once('-')) else { continue };
			let (Ok(seq), Some(id)) = (u64::from_str_radix(seq, 16), parse_id(id)) else { continue };
			// The fee it commits of its payer's escrow until it settles.
			let bytes = fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
			let r = SignedReceipt::decode(&mut &bytes[..]).with_context(|| format!("decoding {}", p.display()))?;
			s.commit(&r.receipt.voucher.payer, r.receipt.fee);
			s.pending_expiry.insert(id, r.receipt.voucher.expires_at);
			s.pending_fees.insert(id, (r.receipt.voucher.payer.clone(), r.receipt.fee));
			s.pending.insert(seq, id);
			s.pending_ids.insert(id);
			s.next_seq = s.next_seq.max(seq + 1);
		}
		if let Ok(log) = fs::read_to_string(dir.join("settled.log")) {
			for line in log.lines() {
				s.log_lines += 1;
				let mut f = line.split(' ');
				let (Some(id), Some(block)) = (f.next().and_then(parse_id), f.next()) else { continue };
				// Lines from before expiries were logged are kept until a restart after an upgrade.
				let expires = f.next().and_then(|e| e.parse().ok()).unwrap_or(u32::MAX);
				s.settled.insert(id, (block.to_string(), expires));
			}
		}
		for e in fs::read_dir(dir.join("rejected"))? {
			let p = e?.path();
			if p.extension().is_some_and(|x| x == "why") {
				if let Some(id) = p.file_stem().and_then(|n| parse_id(&n.to_string_lossy())) {
					let why = fs::read_to_string(&p).unwrap_or_default();
					let mut lines = why.lines();
					let block = lines.next().unwrap_or_default().trim().to_string();
					let expires = lines.next().and_then(|e| e.trim().parse().ok()).unwrap_or(u32::MAX);
					s.rejected.insert(id, (block, expires));
				}
			}
		}
		// Vouchers whose generation started in a run that stopped before their receipt was
		// queued: tokens may have left, so they stay used (until they expire).
		for e in fs::read_dir(dir.join("spent"))? {
			let p = e?.path();
			let Some(id) = p.file_name().and_then(|n| parse_id(&n.to_string_lossy())) else { continue };
			if s.pending_ids.contains(&id) || s.settled.contains_key(&id) || s.rejected.contains_key(&id) {
				fs::remove_file(&p)?;
				continue;
			}
			let expires = fs::read_to_string(&p).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(u32::MAX);
			s.spent.insert(id, expires);
		}
		// A settled receipt whose pending file survived a crash is retired now.
		let stale: Vec<(u64, RequestId)> =
			s.pending.iter().filter(|(_, id)| s.settled.contains_key(*id)).map(|(q, i)| (*q, *i)).collect();
		for (seq, id) in stale {
			fs::remove_file(dir.join("pending").join(format!("{seq:016x}-{}.scale", id_hex(&id))))?;
			s.pending.remove(&seq);
			s.pending_ids.remove(&id);
			s.pending_expiry.remove(&id);
			s.retire_fee(&id);
		}
		Ok(Self { dir: dir.to_path_buf(), state: Mutex::new(s), log: Mutex::new(()), notify: Default::default() })
	}

	fn lock(&self) -> std::sync::MutexGuard<'_, State> {
		self.state.lock().expect("not poisoned; qed")
	}

	fn pending_path(&self, seq: u64, id: &RequestId) -> PathBuf {
		self.dir.join("pending").join(format!("{seq:016x}-{}.scale", id_hex(id)))
	}

	/// Settlements so far; read it before reading a payer's escrow on chain and give it to
	/// [`Self::reserve`].
	pub fn epoch(&self) -> u64 {
		self.lock().epoch
	}

	/// Claims `id` for a request about to be served, committing `max_fee` of `payer`'s escrow
	/// (`held` on chain, read after [`Self::epoch`] returned `epoch`) beside what is already
	/// committed against it.
	pub fn reserve(&self, id: RequestId, payer: &AccountId, max_fee: u128, held: u128, epoch: u64) -> Result<(), ReserveError> {
		let mut s = self.lock();
		let known = s.pending_ids.contains(&id)
			|| s.settled.contains_key(&id)
			|| s.rejected.contains_key(&id)
			|| s.serving.contains_key(&id)
			|| s.writing.contains(&id)
			|| s.spent.contains_key(&id);
		if known {
			return Err(ReserveError::Used);
		}
		// `held` counted the fee of a receipt that has settled since, and its commitment is gone.
		if s.epoch != epoch {
			return Err(ReserveError::Stale);
		}
		let committed = s.committed.get(payer).copied().unwrap_or(0);
		if committed.saturating_add(max_fee) > held {
			return Err(ReserveError::Escrow { held, committed });
		}
		s.commit(payer, max_fee);
		s.serving.insert(id, (payer.clone(), max_fee));
		Ok(())
	}

	/// Gives up a reservation (the request failed before generation started, or failed with
	/// nothing sent), and its spent mark if it was written.
	pub fn release(&self, id: &RequestId) {
		let mut s = self.lock();
		if let Some((payer, fee)) = s.serving.remove(id) {
			s.uncommit(&payer, fee);
		}
		drop(s);
		let _ = fs::remove_file(self.spent_path(id));
	}

	fn spent_path(&self, id: &RequestId) -> PathBuf {
		self.dir.join("spent").join(id_hex(id))
	}

	/// Marks a reserved voucher spent, durably, before any token of its answer leaves: if the
	/// worker stops before the receipt is queued, the voucher stays used after a restart.
	pub fn spend(&self, id: &RequestId, expires_at: u32) -> Result<()> {
		write_durable(&self.spent_path(id), format!("{expires_at}\n").as_bytes())
	}

	/// What the worker holds against `payer`'s escrow now.
	pub fn committed(&self, payer: &AccountId) -> u128 {
		self.lock().committed.get(payer).copied().unwrap_or(0)
	}

	/// Puts a receipt on disk; returns once it is durable.
	pub fn push(&self, r: &SignedReceipt) -> Result<()> {
		let id = r.receipt.request_id();
		let seq = {
			let mut s = self.lock();
			if s.pending_ids.contains(&id) || s.settled.contains_key(&id) || s.rejected.contains_key(&id) || !s.writing.insert(id) {
				bail!("a receipt for request {} is already queued, being queued or settled", id_hex(&id));
			}
			s.next_seq += 1;
			s.next_seq - 1
		};
		if let Err(e) = write_durable(&self.pending_path(seq, &id), &r.encode()) {
			self.lock().writing.remove(&id);
			return Err(e);
		}
		// The pending receipt now keeps the id used.
		let _ = fs::remove_file(self.spent_path(&id));
		let mut s = self.lock();
		s.writing.remove(&id);
		// From the voucher's maximum to the receipt's fee (≤ it).
		if let Some((payer, max_fee)) = s.serving.remove(&id) {
			s.uncommit(&payer, max_fee);
		}
		let payer = r.receipt.voucher.payer.clone();
		s.commit(&payer, r.receipt.fee);
		s.pending_fees.insert(id, (payer, r.receipt.fee));
		s.pending_expiry.insert(id, r.receipt.voucher.expires_at);
		s.pending.insert(seq, id);
		s.pending_ids.insert(id);
		drop(s);
		self.notify.notify_one();
		Ok(())
	}

	/// Sequence numbers of every pending receipt.
	pub fn pending_seqs(&self) -> Vec<u64> {
		self.lock().pending.keys().copied().collect()
	}

	/// Up to `max` oldest pending receipts, with their sequence numbers.
	pub fn oldest(&self, max: usize) -> Result<Vec<(u64, SignedReceipt)>> {
		let ids: Vec<(u64, RequestId)> = self.lock().pending.iter().take(max).map(|(q, i)| (*q, *i)).collect();
		ids.into_iter()
			.map(|(seq, id)| {
				let path = self.pending_path(seq, &id);
				let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
				let r = SignedReceipt::decode(&mut &bytes[..]).with_context(|| format!("decoding {}", path.display()))?;
				Ok((seq, r))
			})
			.collect()
	}

	/// Records that `id` is settled (as seen at finalized `block`) and drops its pending file.
	pub fn settled(&self, seq: u64, id: RequestId, block: &str) -> Result<()> {
		// Held until memory has the line too, so a compaction never drops it.
		let _log = self.log.lock().expect("not poisoned; qed");
		let expires = self.lock().pending_expiry.get(&id).copied().unwrap_or(u32::MAX);
		let mut log = OpenOptions::new().create(true).append(true).open(self.dir.join("settled.log"))?;
		writeln!(log, "{} {block} {expires}", id_hex(&id))?;
		log.sync_all()?;
		fs::remove_file(self.pending_path(seq, &id))?;
		let mut s = self.lock();
		s.pending.remove(&seq);
		s.pending_ids.remove(&id);
		s.pending_expiry.remove(&id);
		s.retire_fee(&id);
		s.settled.insert(id, (block.to_string(), expires));
		s.log_lines += 1;
		s.epoch += 1;
		Ok(())
	}

	/// Moves `id` to `rejected/` with the block where the chain refused it.
	pub fn rejected(&self, seq: u64, id: RequestId, block: &str) -> Result<()> {
		let expires = self.lock().pending_expiry.get(&id).copied().unwrap_or(u32::MAX);
		let to = self.dir.join("rejected").join(format!("{}.scale", id_hex(&id)));
		write_durable(&to.with_extension("why"), format!("{block}\n{expires}\n").as_bytes())?;
		fs::rename(self.pending_path(seq, &id), &to)?;
		sync_dir(&self.dir.join("rejected"))?;
		let mut s = self.lock();
		s.pending.remove(&seq);
		s.pending_ids.remove(&id);
		s.pending_expiry.remove(&id);
		s.retire_fee(&id);
		s.rejected.insert(id, (block.to_string(), expires));
		Ok(())
	}

	/// Forgets settled and rejected ids whose voucher expired before `finalized` (the worker
	/// refuses such vouchers before looking them up), compacting `settled.log` once most of its
	/// lines are forgotten and moving rejected receipts to `rejected/expired/`. Returns how many
	/// ids were forgotten.
	pub fn prune(&self, finalized: u32) -> Result<usize> {
		let _log = self.log.lock().expect("not poisoned; qed");
		let (gone, live) = {
			let mut s = self.lock();
			let before = s.settled.len();
			s.settled.retain(|_, (_, e)| *e >= finalized);
			let mut gone = Vec::new();
			s.rejected.retain(|id, (_, e)| {
				let keep = *e >= finalized;
				if !keep {
					gone.push(*id);
				}
				keep
			});
			let spent_before = s.spent.len();
			let mut spent_gone = Vec::new();
			s.spent.retain(|id, e| {
				let keep = *e >= finalized;
				if !keep {
					spent_gone.push(*id);
				}
				keep
			});
			for id in &spent_gone {
				let _ = fs::remove_file(self.spent_path(id));
			}
			let forgotten = before - s.settled.len() + gone.len() + (spent_before - s.spent.len());
			let live = (s.log_lines > 1024 && s.log_lines > 2 * s.settled.len()).then(|| {
				s.log_lines = s.settled.len();
				s.settled.iter().map(|(id, (b, e))| format!("{} {b} {e}\n", id_hex(id))).collect::<String>()
			});
			((gone, forgotten), live)
		};
		if let Some(text) = live {
			write_durable(&self.dir.join("settled.log"), text.as_bytes())?;
		}
		let (gone, forgotten) = gone;
		if !gone.is_empty() {
			let dir = self.dir.join("rejected").join("expired");
			fs::create_dir_all(&dir)?;
			for id in &gone {
				let name = id_hex(id);
				for ext in ["scale", "why"] {
					let from = self.dir.join("rejected").join(format!("{name}.{ext}"));
					if from.exists() {
						fs::rename(&from, dir.join(format!("{name}.{ext}")))?;
					}
				}
			}
		}
		Ok(forgotten)
	}

	pub fn status(&self, id: &RequestId) -> ReceiptStatus {
		let s = self.lock();
		if let Some((b, _)) = s.settled.get(id) {
			ReceiptStatus::Settled { block: b.clone() }
		} else if let Some((b, _)) = s.rejected.get(id) {
			ReceiptStatus::Rejected { block: b.clone() }
		} else if s.pending_ids.contains(id) {
			ReceiptStatus::Queued
		} else if s.serving.contains_key(id) || s.writing.contains(id) || s.spent.contains_key(id) {
			ReceiptStatus::Serving
		} else {
			ReceiptStatus::Unknown
		}
	}

	/// (pending, settled, rejected) counts.
	pub fn counts(&self) -> (usize, usize, usize) {
		let s = self.lock();
		(s.pending.len(), s.settled.len(), s.rejected.len())
	}

	/// Waits until something is pushed (or `timeout` passes).
	pub async fn wait(&self, timeout: std::time::Duration) {
		let _ = tokio::time::timeout(timeout, self.notify.notified()).await;
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use openledger_primitives::receipt::AttributionMethod;
	use sp_core::{sr25519, Pair};

	fn receipt(nonce: u64) -> SignedReceipt {
		let k = sr25519::Pair::from_string("//Eve", None).unwrap();
		let voucher = super::super::Voucher {
			payer: k.public().into(),
			worker: k.public().into(),
			model: 1,
			model_version: 1,
			max_fee: 10,
			terms: Default::default(),
			nonce,
			expires_at: 100,
			genesis: Default::default(),
			request_hash: Default::default(),
		};
		let sig = openledger_primitives::Signature::Sr25519(k.sign(&voucher.signing_payload()));
		let receipt = super::super::Receipt {
			voucher,
			payer_signature: sig,
			prompt_tokens: 1,
			completion_tokens: 2,
			fee: 3,
			output_len: 0,
			output_root: Default::default(),
			claims_root: Default::default(),
			claims: 0,
			method: AttributionMethod::SpanMatch,
			attribution: Default::default(),
		};
		let worker_signature = k.sign(&receipt.signing_payload());
		SignedReceipt { receipt, worker_signature }
	}

	#[test]
	fn survives_reopening_and_retires_exactly_once() {
		let dir = tempfile::tempdir().unwrap();
		let (a, b, c) = (receipt(1), receipt(2), receipt(3));
		{
			let q = ReceiptQueue::open(dir.path()).unwrap();
			let payer = a.receipt.voucher.payer.clone();
			assert_eq!(q.reserve(a.receipt.request_id(), &payer, 10, 1000, q.epoch()), Ok(()));
			assert_eq!(q.reserve(a.receipt.request_id(), &payer, 10, 1000, q.epoch()), Err(ReserveError::Used), "one request at a time per voucher");
			for r in [&a, &b, &c] {
				q.push(r).unwrap();
			}
			assert!(q.push(&a).is_err(), "a request id is queued once");
			assert_eq!(q.reserve(b.receipt.request_id(), &payer, 10, 1000, q.epoch()), Err(ReserveError::Used), "a queued voucher cannot be served again");
			assert_eq!(q.committed(&payer), 9, "three pending receipts of fee 3");
			// A write that a crash interrupted.
			std::fs::write(dir.path().join("pending/00000000000000ff-x.tmp"), b"partial").unwrap();
		} // "crash": nothing but the files survives
		let q = ReceiptQueue::open(dir.path()).unwrap();
		assert_eq!(q.counts(), (3, 0, 0));
		assert_eq!(q.committed(&a.receipt.voucher.payer), 9, "pending fees are committed again after a restart");
		assert!(!dir.path().join("pending/00000000000000ff-x.tmp").exists());
		let batch = q.oldest(2).unwrap();
		assert_eq!(batch.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(), vec![a.clone(), b.clone()], "oldest first, intact");
		q.settled(batch[0].0, a.receipt.request_id(), "0x01").unwrap();
		q.rejected(batch[1].0, b.receipt.request_id(), "0x02").unwrap();
		assert_eq!(q.status(&a.receipt.request_id()), ReceiptStatus::Settled { block: "0x01".into() });
		assert_eq!(q.status(&b.receipt.request_id()), ReceiptStatus::Rejected { block: "0x02".into() });
		assert_eq!(q.status(&c.receipt.request_id()), ReceiptStatus::Queued);

		// A crash between the settled log and the removal of the pending file: retired on open.
		let (seq_c, _) = q.oldest(1).unwrap()[0].clone();
		drop(q);
		let mut log = OpenOptions::new().append(true).open(dir.path().join("settled.log")).unwrap();
		writeln!(log, "{} 0x03", id_hex(&c.receipt.request_id())).unwrap();
		let q = ReceiptQueue::open(dir.path()).unwrap();
		assert_eq!(q.counts(), (0, 2, 1));
		assert!(!q.pending_path(seq_c, &c.receipt.request_id()).exists());
		assert_eq!(q.reserve(a.receipt.request_id(), &a.receipt.voucher.payer, 1, 1000, q.epoch()), Err(ReserveError::Used), "settled stays settled across restarts");
		assert_eq!(q.committed(&a.receipt.voucher.payer), 0, "settled and rejected receipts commit nothing");
		let next = receipt(4);
		q.push(&next).unwrap();
		assert!(q.oldest(8).unwrap()[0].0 > seq_c, "sequence numbers keep growing");
	}

	/// Six vouchers over an escrow that covers one: one is served, five are refused before any
	/// token is generated; what is committed follows serving → pending → settled.
	#[test]
	fn concurrent_vouchers_cannot_overcommit_the_escrow() {
		let dir = tempfile::tempdir().unwrap();
		let q = ReceiptQueue::open(dir.path()).unwrap();
		let rs: Vec<SignedReceipt> = (10..16).map(receipt).collect();
		let payer = rs[0].receipt.voucher.payer.clone();
		let held = 10; // each voucher's maximum fee is 10
		let q = std::sync::Arc::new(q);
		let got: Vec<_> = rs
			.iter()
			.map(|r| {
				let (q, id, payer) = (q.clone(), r.receipt.request_id(), payer.clone());
				std::thread::spawn(move || q.reserve(id, &payer, 10, held, q.epoch()))
			})
			.collect::<Vec<_>>()
			.into_iter()
			.map(|t| t.join().unwrap())
			.collect();
		assert_eq!(got.iter().filter(|g| g.is_ok()).count(), 1, "{got:?}");
		assert!(got.iter().filter(|g| g.is_err()).all(|g| *g == Err(ReserveError::Escrow { held: 10, committed: 10 })));
		let first = got.iter().position(|g| g.is_ok()).unwrap();
		let mut rs = rs;
		rs.swap(0, first); // the one served first
		assert_eq!(q.status(&rs[0].receipt.request_id()), ReceiptStatus::Serving);
		// Answered: the receipt's fee (3) replaces the maximum; room for no other full voucher.
		q.push(&rs[0]).unwrap();
		assert_eq!(q.committed(&payer), 3);
		assert!(matches!(q.reserve(rs[1].receipt.request_id(), &payer, 10, held, q.epoch()), Err(ReserveError::Escrow { .. })));
		assert_eq!(q.reserve(rs[1].receipt.request_id(), &payer, 7, held, q.epoch()), Ok(()));
		q.release(&rs[1].receipt.request_id());
		assert_eq!(q.committed(&payer), 3, "a released reservation commits nothing");
		// Settled: the escrow on chain shrank by the fee, the worker holds nothing against it.
		let (seq, _) = q.oldest(1).unwrap()[0].clone();
		q.settled(seq, rs[0].receipt.request_id(), "0x01").unwrap();
		assert_eq!(q.committed(&payer), 0);
		let other = sr25519::Pair::from_string("//Ferdie", None).unwrap();
		assert_eq!(q.reserve(rs[2].receipt.request_id(), &other.public().into(), 10, 10, q.epoch()), Ok(()), "payers are separate");
	}

	/// Settled and rejected ids are remembered while their voucher lives, then forgotten; the
	/// log is compacted and a restart reads only what is alive.
	#[test]
	fn settled_and_rejected_ids_are_forgotten_when_their_voucher_expires() {
		let dir = tempfile::tempdir().unwrap();
		let q = ReceiptQueue::open(dir.path()).unwrap();
		// receipt(n) expires at block 100.
		let rs: Vec<SignedReceipt> = (0..1030).map(receipt).collect();
		for r in &rs {
			q.push(r).unwrap();
		}
		for (i, (seq, r)) in q.oldest(2000).unwrap().into_iter().enumerate() {
			if i == 0 {
				q.rejected(seq, r.receipt.request_id(), "0x02").unwrap();
			} else {
				q.settled(seq, r.receipt.request_id(), "0x01").unwrap();
			}
		}
		assert_eq!(q.counts(), (0, 1029, 1));
		assert_eq!(q.prune(100).unwrap(), 0, "expiring at 100: still alive at 100");
		let payer = rs[0].receipt.voucher.payer.clone();
		assert_eq!(q.reserve(rs[5].receipt.request_id(), &payer, 1, 10, q.epoch()), Err(ReserveError::Used));
		assert_eq!(q.prune(101).unwrap(), 1030);
		assert_eq!(q.counts(), (0, 0, 0));
		assert_eq!(q.status(&rs[5].receipt.request_id()), ReceiptStatus::Unknown);
		assert!(std::fs::read_to_string(dir.path().join("settled.log")).unwrap().is_empty(), "compacted");
		assert!(dir.path().join("rejected/expired").join(format!("{}.scale", id_hex(&rs[0].receipt.request_id()))).exists());
		drop(q);
		let q = ReceiptQueue::open(dir.path()).unwrap();
		assert_eq!(q.counts(), (0, 0, 0), "a restart does not read forgotten ids back");
	}

	/// A request id is pushed once even when two pushes race (the answer's own and the one a
	/// dropped request makes), a spent voucher stays used across a restart until it expires,
	/// and an escrow read taken before a settlement is refused as stale.
	#[test]
	fn one_receipt_per_request_spent_vouchers_survive_restarts_and_stale_reads_are_refused() {
		let dir = tempfile::tempdir().unwrap();
		let q = std::sync::Arc::new(ReceiptQueue::open(dir.path()).unwrap());
		let r = receipt(77);
		let (id, payer) = (r.receipt.request_id(), r.receipt.voucher.payer.clone());
		let threads: Vec<_> = (0..8)
			.map(|_| {
				let (q, r) = (q.clone(), r.clone());
				std::thread::spawn(move || q.push(&r).is_ok())
			})
			.collect();
		let ok = threads.into_iter().map(|t| t.join().unwrap()).filter(|ok| *ok).count();
		assert_eq!(ok, 1, "exactly one push wins");
		assert_eq!(std::fs::read_dir(dir.path().join("pending")).unwrap().count(), 1);
		assert_eq!(q.committed(&payer), 3, "the fee is committed once");

		// Spent, then the worker stops before the receipt is queued.
		let s = receipt(78);
		let sid = s.receipt.request_id();
		assert_eq!(q.reserve(sid, &payer, 10, 1000, q.epoch()), Ok(()));
		q.spend(&sid, 100).unwrap();
		drop(q);
		let q = ReceiptQueue::open(dir.path()).unwrap();
		assert_eq!(q.reserve(sid, &payer, 10, 1000, q.epoch()), Err(ReserveError::Used), "replay after a crash");
		assert_eq!(q.status(&sid), ReceiptStatus::Serving);
		assert_eq!(q.prune(101).unwrap(), 1, "forgotten once expired");
		assert!(!dir.path().join("spent").join(id_hex(&sid)).exists());

		// Stale escrow reads.
		let epoch = q.epoch();
		let (seq, _) = q.oldest(1).unwrap()[0].clone();
		q.settled(seq, id, "0x01").unwrap();
		let t = receipt(79);
		assert_eq!(q.reserve(t.receipt.request_id(), &payer, 10, 1000, epoch), Err(ReserveError::Stale));
		assert_eq!(q.reserve(t.receipt.request_id(), &payer, 10, 1000, q.epoch()), Ok(()));
	}
}
