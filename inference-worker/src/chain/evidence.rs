//! The evidence behind span-match receipts, and the worker's answers to disputes.
//!
//! For every span receipt it signs, the worker keeps on disk (`<receipts dir>/evidence/`) the
//! answer's bytes, the span claims the receipt commits to and its shares, until the receipt can
//! no longer be disputed. When `attribution_disputes` lists a dispute of one of its receipts,
//! [`answer`] builds the evidence — each claim's place under the claims root, the answer's bytes
//! under the output root, the contribution's bytes under its content root — checks it the way
//! the runtime will, and the watcher ([`answer_disputes`]) submits `Attribution::answer`.
//! Evidence that would not hold is never sent: the worker stays silent and the dispute is
//! upheld at its deadline.

use super::settler::Connection;
use super::RequestId;
use crate::attribution::span::SpanIndex;
use anyhow::{bail, ensure, Context, Result};
use codec::{Decode, Encode};
use jsonrpsee::rpc_params;
use openledger_primitives::evidence::{self as ev, SpanClaim, SpanEvidence, SpanProof, MAX_EVIDENCE_SPANS, MIN_OMISSION_BYTES};
use openledger_primitives::receipt::ContributionRef;
use openledger_primitives::{tx, Hash};
use sp_core::{crypto::Ss58Codec, sr25519, Pair};
use sp_runtime::{BoundedVec, Perbill};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the worker keeps of one span receipt.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Record {
	/// The answer's bytes (what `output_root` commits to).
	pub output: Vec<u8>,
	/// The committed claims, in order (what `claims_root` commits to).
	pub claims: Vec<SpanClaim>,
	/// The receipt's shares, parts per billion.
	pub shares: Vec<(ContributionRef, u32)>,
	/// Who paid (the only one but the operator who may read it over HTTP).
	pub payer: openledger_primitives::AccountId,
	/// Kept until the finalized chain passes this block.
	pub keep_until: u32,
}

/// Records on disk, one file per request id: `<id hex>.<keep_until>.ev`, with an in-memory index
/// of them (read once at open) so that a lookup never scans the folder.
pub struct EvidenceStore {
	dir: PathBuf,
	index: std::sync::Mutex<std::collections::HashMap<RequestId, u32>>,
}

fn parse_name(name: &str) -> Option<(RequestId, u32)> {
	let (id, until) = name.strip_suffix(".ev")?.split_once('.')?;
	let bytes = hex::decode(id).ok().filter(|b| b.len() == 32)?;
	Some((RequestId::from_slice(&bytes), until.parse().ok()?))
}

impl EvidenceStore {
	pub fn open(dir: &Path) -> Result<Self> {
		std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
		let mut index = std::collections::HashMap::new();
		for e in std::fs::read_dir(dir)? {
			if let Some((id, until)) = parse_name(&e?.file_name().to_string_lossy()) {
				index.insert(id, until);
			}
		}
		Ok(Self { dir: dir.to_owned(), index: std::sync::Mutex::new(index) })
	}

	fn file(&self, id: &RequestId, keep_until: u32) -> PathBuf {
		self.dir.join(format!("{}.{keep_until}.ev", hex::encode(id.as_bytes())))
	}

	fn index(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<RequestId, u32>> {
		self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
	}

	/// Stores `r` durably (written aside, synced, renamed into place).
	pub fn put(&self, id: &RequestId, r: &Record) -> Result<()> {
		let path = self.file(id, r.keep_until);
		let tmp = path.with_extension("tmp");
		{
			use std::io::Write;
			let mut f = std::fs::File::create(&tmp)?;
			f.write_all(&r.encode())?;
			f.sync_all()?;
		}
		std::fs::rename(&tmp, &path)?;
		if let Some(old) = self.index().insert(*id, r.keep_until).filter(|u| *u != r.keep_until) {
			if let Err(e) = std::fs::remove_file(self.file(id, old)) {
				tracing::warn!("removing a superseded evidence record: {e}");
			}
		}
		Ok(())
	}

	/// The record of `id`, if kept.
	pub fn get(&self, id: &RequestId) -> Result<Option<Record>> {
		let Some(until) = self.index().get(id).copied() else { return Ok(None) };
		let bytes = std::fs::read(self.file(id, until))?;
		Record::decode(&mut &bytes[..]).map(Some).context("a corrupt evidence record")
	}

	/// Removes the records kept until a block before `finalized`; returns how many.
	pub fn prune(&self, finalized: u32) -> Result<usize> {
		let gone: Vec<(RequestId, u32)> = self.index().iter().filter(|(_, u)| **u < finalized).map(|(i, u)| (*i, *u)).collect();
		for (id, until) in &gone {
			std::fs::remove_file(self.file(id, *until))?;
			self.index().remove(id);
		}
		Ok(gone.len())
	}
}

/// A dispute as `attribution_disputes` lists it.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dispute {
	pub request_id: RequestId,
	/// `share` or `omission`.
	pub kind: String,
	pub contribution: (u32, u32, u32),
	pub output_start: Option<u32>,
	pub len: Option<u32>,
	pub deadline: u32,
}

/// The evidence of claim `i` of `r`, from the trees of its output and claims.
fn prove(r: &Record, out_tree: &ev::Tree, claims_tree: &ev::Tree, i: usize, (doc, doc_tree): &(Vec<u8>, ev::Tree)) -> Result<SpanEvidence> {
	let c = r.claims[i];
	let output = ev::range_proof(out_tree, &r.output, c.output_start as u64, c.len).context("the claim lies outside the answer")?;
	let content = ev::range_proof(doc_tree, doc, c.offset, c.len).context("the claim lies outside its contribution")?;
	let siblings = claims_tree.proof(i as u32).context("claim index")?;
	Ok(SpanEvidence { index: i as u32, siblings: BoundedVec::truncate_from(siblings), span: SpanProof { claim: c, output, content } })
}

/// Contributions' bytes with their content trees, each fetched and built once however many
/// claims point into it.
struct Docs<F> {
	fetch: F,
	cache: std::collections::BTreeMap<ContributionRef, Option<(Vec<u8>, ev::Tree)>>,
}

impl<F: Fn(&ContributionRef) -> Option<Vec<u8>>> Docs<F> {
	fn new(fetch: F) -> Self {
		Self { fetch, cache: Default::default() }
	}

	fn get(&mut self, c: &ContributionRef) -> Option<&(Vec<u8>, ev::Tree)> {
		let Self { fetch, cache } = self;
		cache
			.entry(*c)
			.or_insert_with(|| {
				fetch(c).map(|bytes| {
					let tree = ev::content_tree(&bytes);
					(bytes, tree)
				})
			})
			.as_ref()
	}
}

/// The evidence of every committed claim of `r` whose contribution's bytes are at hand (what
/// `GET /v1/evidence/{id}` publishes; checked by `openledger evidence`).
pub fn all_evidence(r: &Record, doc: impl Fn(&ContributionRef) -> Option<Vec<u8>>) -> Vec<SpanEvidence> {
	let (out_tree, claims_tree) = (ev::content_tree(&r.output), ev::claims_tree(&r.claims));
	let mut docs = Docs::new(doc);
	(0..r.claims.len())
		.filter_map(|i| docs.get(&r.claims[i].contribution).and_then(|d| prove(r, &out_tree, &claims_tree, i, d).ok()))
		.collect()
}

/// Builds the answer to `d` from `r` (contribution bytes from `doc`), and checks it exactly as
/// the runtime will: every claim committed and proven, and the share justified (share dispute)
/// or the omitted bytes covered (omission). Errs with the reason when it would not hold.
pub fn answer(r: &Record, d: &Dispute, doc: impl Fn(&ContributionRef) -> Option<Vec<u8>>) -> Result<Vec<SpanEvidence>> {
	let (datanet, version, index) = d.contribution;
	let disputed = ContributionRef { datanet, version, index };
	let share_of = |c: &ContributionRef| r.shares.iter().filter(|(x, _)| x == c).map(|(_, p)| *p).sum::<u32>();
	let (out_tree, claims_tree) = (ev::content_tree(&r.output), ev::claims_tree(&r.claims));
	let (output_root, claims_root) = (ev::commit(r.output.len() as u64, &out_tree.root()), claims_tree.root());
	// The claims that can answer: the disputed contribution's, or credited ones overlapping the
	// omitted bytes.
	let omitted = match d.kind.as_str() {
		"share" => None,
		"omission" => {
			let (a, n) = (d.output_start.context("omission without a start")?, d.len.context("omission without a length")?);
			Some((a as u64, a as u64 + n as u64))
		},
		other => bail!("unknown dispute kind {other}"),
	};
	let eligible: Vec<usize> = (0..r.claims.len())
		.filter(|&i| {
			let c = &r.claims[i];
			match omitted {
				None => c.contribution == disputed,
				Some((a, b)) => share_of(&c.contribution) > 0 && c.output_range().0 < b && c.output_range().1 > a,
			}
		})
		.collect();
	// The claims that add the most coverage (of the output, or of the omitted bytes), as the
	// worker chose them when it capped the share.
	let clipped: Vec<(u64, u64)> = eligible
		.iter()
		.map(|&i| {
			let (a, b) = r.claims[i].output_range();
			omitted.map_or((a, b), |(x, y)| (a.max(x), b.min(y).max(a.max(x))))
		})
		.collect();
	let candidates: Vec<usize> = ev::pick_covering(&clipped, MAX_EVIDENCE_SPANS as usize).into_iter().map(|k| eligible[k]).collect();
	ensure!(!candidates.is_empty(), "no committed claim answers this dispute");
	let mut evidence = Vec::with_capacity(candidates.len());
	let mut ranges = Vec::new();
	let mut docs = Docs::new(doc);
	for i in candidates {
		let c = r.claims[i].contribution;
		let d = docs.get(&c).with_context(|| format!("the bytes of contribution {c:?} are not at hand"))?;
		let e = prove(r, &out_tree, &claims_tree, i, d)?;
		let content_root = ev::commit(d.0.len() as u64, &d.1.root());
		ev::verify_committed(&e, &claims_root, r.claims.len() as u32).map_err(|x| anyhow::anyhow!("claim {i}: {x:?}"))?;
		ev::verify_span(&e.span, &output_root, r.output.len() as u32, &content_root)
			.map_err(|x| anyhow::anyhow!("claim {i} does not hold: {x:?}"))?;
		ranges.push(r.claims[i].output_range());
		evidence.push(e);
	}
	match omitted {
		None => ensure!(
			ev::share_justified(Perbill::from_parts(share_of(&disputed)), ev::covered_bytes(ranges), r.output.len() as u32),
			"the claims do not justify the share"
		),
		Some((a, b)) => ensure!(ev::longest_uncovered(ranges, a, b) < MIN_OMISSION_BYTES as u64, "the claims leave the omitted bytes uncovered"),
	}
	Ok(evidence)
}

/// Domain tag of a payer's request for its receipt's evidence: the payer signs SCALE
/// `(EVIDENCE_DOMAIN, request id)`.
pub const EVIDENCE_DOMAIN: &[u8] = b"openledger:evidence:v1";

/// Whether `sig` (hex of a SCALE `MultiSignature`) is `payer`'s signature of the evidence request
/// for `id` (raw, or `<Bytes>`-wrapped as wallets sign).
pub fn payer_asked(sig_hex: &str, payer: &openledger_primitives::AccountId, id: &RequestId) -> bool {
	let Ok(bytes) = hex::decode(sig_hex.trim().trim_start_matches("0x")) else { return false };
	let Ok(sig) = openledger_primitives::Signature::decode(&mut &bytes[..]) else { return false };
	openledger_primitives::receipt::verify_payer(&sig, &(EVIDENCE_DOMAIN, id).encode(), payer)
}

/// The raw bytes of contribution `c` in the served span index.
pub fn doc_bytes(idx: &SpanIndex, c: &ContributionRef) -> Option<Vec<u8>> {
	let pos = idx.position(c.datanet, c.version, c.index)?;
	let raw = idx.raw(pos);
	(!raw.is_empty()).then(|| raw.to_vec())
}

/// Answers the disputes of this worker's receipts as they appear (polled every `every`): builds
/// each answer from the kept evidence and submits `Attribution::answer` with `account`, all of a
/// poll's answers without waiting for blocks (each at the next nonce of the pool). A dispute
/// still listed later is tried again (a lost or failed transaction, a transient error) at most
/// every [`RETRY`]; one whose evidence would not hold is logged each time and never sent.
pub async fn answer_disputes(
	conn: Arc<Connection>,
	account: sr25519::Pair,
	store: Arc<EvidenceStore>,
	spans: Option<Arc<SpanIndex>>,
	every: std::time::Duration,
) {
	let who = openledger_primitives::AccountId::from(account.public()).to_ss58check();
	let mut tried: std::collections::HashMap<(RequestId, (u32, u32, u32)), std::time::Instant> = Default::default();
	loop {
		tokio::time::sleep(every).await;
		let result: Result<()> = async {
			let chain = conn.get().await?;
			let disputes: Vec<Dispute> = chain.rpc("attribution_disputes", rpc_params![who.clone(), Option::<Hash>::None]).await?;
			tried.retain(|k, _| disputes.iter().any(|d| (d.request_id, d.contribution) == *k));
			for d in &disputes {
				let key = (d.request_id, d.contribution);
				if tried.get(&key).is_some_and(|t| t.elapsed() < RETRY) {
					continue;
				}
				tried.insert(key, std::time::Instant::now());
				let id = d.request_id;
				let record = match store.get(&id) {
					Ok(Some(r)) => r,
					Ok(None) => {
						tracing::error!("no evidence is kept for disputed receipt {id:?}; it will be upheld at block {}", d.deadline);
						continue;
					},
					Err(e) => {
						tracing::error!("the evidence of disputed receipt {id:?} cannot be read: {e:#}");
						continue;
					},
				};
				let (idx, d2) = (spans.clone(), d.clone());
				match tokio::task::spawn_blocking(move || answer(&record, &d2, |c| idx.as_deref().and_then(|i| doc_bytes(i, c)))).await? {
					Ok(evidence) => {
						let (datanet, version, index) = d.contribution;
						let contribution = ContributionRef { datanet, version, index };
						let kind = match (d.output_start, d.len) {
							(Some(output_start), Some(len)) => ev::DisputeKind::Omission { contribution, output_start, len },
							_ => ev::DisputeKind::Share(contribution),
						};
						let call = tx::encode_call(tx::ATTRIBUTION_PALLET, tx::ANSWER_CALL, &(id, kind, evidence));
						match chain.submit(&account, &call).await {
							Ok(_) => tracing::info!("answered the {} dispute of {contribution:?} in receipt {id:?} with its evidence", d.kind),
							Err(e) => tracing::warn!("answering the dispute of receipt {id:?}: {e:#}; retrying"),
						}
					},
					Err(e) => tracing::error!("cannot answer the {} dispute of receipt {id:?}: {e:#}; it will be upheld at block {}", d.kind, d.deadline),
				}
			}
			Ok(())
		}
		.await;
		if let Err(e) = result {
			tracing::warn!("dispute watch: {e:#}");
		}
	}
}

/// How long a dispute still listed waits before it is tried again.
pub const RETRY: std::time::Duration = std::time::Duration::from_secs(20);

#[cfg(test)]
mod tests {
	use super::*;

	const DOC: &[u8] = b"In 1901 the court held that the contract was void because the seller lied, said the clerk.";
	const PHRASE: &[u8] = b"the court held that the contract was void because the seller lied";

	fn c(index: u32) -> ContributionRef {
		ContributionRef { datanet: 0, version: 1, index }
	}

	fn record(share: u32, claim_doc: u32) -> Record {
		let mut output = b"As the judgment says, ".to_vec();
		let start = output.len() as u32;
		output.extend_from_slice(PHRASE);
		output.extend_from_slice(b", and nothing more.");
		let offset = DOC.windows(PHRASE.len()).position(|w| w == PHRASE).unwrap() as u64;
		Record {
			output,
			claims: vec![SpanClaim { output_start: start, len: PHRASE.len() as u32, contribution: c(claim_doc), offset }],
			shares: vec![(c(claim_doc), share)],
			payer: openledger_primitives::AccountId::new([7; 32]),
			keep_until: 100,
		}
	}

	fn dispute(kind: &str, index: u32, range: Option<(u32, u32)>) -> Dispute {
		Dispute {
			request_id: RequestId::repeat_byte(1),
			kind: kind.into(),
			contribution: (0, 1, index),
			output_start: range.map(|r| r.0),
			len: range.map(|r| r.1),
			deadline: 9,
		}
	}

	#[test]
	fn honest_evidence_answers_and_false_evidence_is_not_sent() {
		let docs = |x: &ContributionRef| match x.index {
			0 => Some(DOC.to_vec()),
			_ => Some(b"An unrelated record about rivers and the tolls of bridges in the winter months.".to_vec()),
		};
		// 65 of 105 bytes: at most 61.9 %.
		let honest = record(600_000_000, 0);
		let e = answer(&honest, &dispute("share", 0, None), docs).unwrap();
		assert_eq!(e.len(), 1);
		assert_eq!(e[0].span.claim, honest.claims[0]);
		let inflated = record(700_000_000, 0);
		assert!(answer(&inflated, &dispute("share", 0, None), docs).unwrap_err().to_string().contains("justify"));
		// A claim on contribution 1, whose bytes differ: no answer is built.
		let misattributed = record(600_000_000, 1);
		let err = answer(&misattributed, &dispute("share", 1, None), docs).unwrap_err().to_string();
		assert!(err.contains("BytesDiffer"), "{err}");
		// Omission of the phrase: refuted by the honest claim, not by the misattributed one.
		let o = dispute("omission", 2, Some((honest.claims[0].output_start, PHRASE.len() as u32)));
		assert_eq!(answer(&honest, &o, docs).unwrap().len(), 1);
		assert!(answer(&misattributed, &o, docs).is_err());
		// Omitted bytes outside every claim: no answer.
		let elsewhere = dispute("omission", 2, Some((0, 20)));
		assert!(answer(&honest, &elsewhere, docs).is_err());
		// Contribution bytes not at hand: no answer.
		assert!(answer(&honest, &dispute("share", 0, None), |_: &ContributionRef| None).is_err());
	}

	#[test]
	fn only_the_payers_signature_asks_for_evidence() {
		let payer = sr25519::Pair::from_string("//Eve", None).unwrap();
		let id = RequestId::repeat_byte(4);
		let sig = openledger_primitives::Signature::from(payer.sign(&(EVIDENCE_DOMAIN, id).encode()));
		let hex_sig = format!("0x{}", hex::encode(sig.encode()));
		let who = openledger_primitives::AccountId::from(payer.public());
		assert!(payer_asked(&hex_sig, &who, &id));
		assert!(!payer_asked(&hex_sig, &who, &RequestId::repeat_byte(5)), "another request");
		assert!(!payer_asked(&hex_sig, &openledger_primitives::AccountId::new([1; 32]), &id), "another payer");
		assert!(!payer_asked("0xzz", &who, &id));
		assert!(!payer_asked("", &who, &id));
	}

	#[test]
	fn the_store_keeps_records_until_their_block() {
		let dir = tempfile::tempdir().unwrap();
		let s = EvidenceStore::open(dir.path()).unwrap();
		let (a, b) = (RequestId::repeat_byte(1), RequestId::repeat_byte(2));
		let mut r = record(1, 0);
		s.put(&a, &r).unwrap();
		r.keep_until = 200;
		s.put(&b, &r).unwrap();
		assert_eq!(s.get(&a).unwrap().unwrap().keep_until, 100);
		assert_eq!(s.prune(150).unwrap(), 1);
		assert!(s.get(&a).unwrap().is_none());
		assert_eq!(s.get(&b).unwrap(), Some(r.clone()));
		assert!(s.get(&RequestId::repeat_byte(3)).unwrap().is_none());
		// Reopened, it finds what is on disk (and ignores stray files).
		std::fs::write(dir.path().join("stray.txt"), b"x").unwrap();
		let s = EvidenceStore::open(dir.path()).unwrap();
		assert_eq!(s.get(&b).unwrap(), Some(r));
		assert!(s.get(&a).unwrap().is_none());
	}
}
