//! The OpenAI-compatible HTTP API (axum). This layer owns the wire types only; it reaches the
//! engine through [`Engine::submit`] and a per-request event channel. Dropping that channel —
//! the client went away, the response future was dropped — cancels the sequence.

pub mod wire;

use crate::adapters::{AdapterCache, AdapterError};
use crate::attribution::retrieval::{Passage, RetrievalIndex};
use crate::attribution::span::{Attribution, AttributionParams, SpanIndex};
use crate::chain::billing::{self, Accepted, Refusal, VOUCHER_HEADER};
use crate::chain::queue::ReserveError;
use crate::chain::ChainState;
use crate::engine::{Engine, Event, FinishReason, SubmitError};
use crate::metrics::Metrics;
use crate::model::lora::LoraAdapter;
use crate::tokenizer::TextTokenizer;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use openledger_primitives::receipt::{AttributionMethod, ContributionRef};
use std::sync::Arc;
use tokio::sync::mpsc;
use wire::*;

pub struct AppState {
	pub engine: Engine,
	pub tokenizer: Arc<TextTokenizer>,
	pub adapters: Arc<AdapterCache>,
	/// The name the base model is served under (`model` field without an adapter).
	pub base_name: String,
	pub metrics: Metrics,
	pub created: u64,
	pub next_id: AtomicU64,
	/// Span-attribution index of the served corpus, if any.
	pub spans: Option<Arc<SpanIndex>>,
	/// BM25 index of the same corpus (the span index's `retrieval/`), if built.
	pub retrieval: Option<Arc<RetrievalIndex>>,
	/// Vouchers and receipts, when the worker is connected to a chain.
	pub chain: Option<Arc<ChainState>>,
	/// Influence attribution (`--influence`): base weights in differentiable form.
	pub influence: Option<Arc<crate::attribution::influence::Attributor>>,
	/// Fine-tuning jobs (`/v1/factory/jobs`), when the worker runs with a content store.
	pub factory: Option<Arc<crate::factory::jobs::Factory>>,
	/// Bearer token of the admin endpoints (`/v1/factory/*`); without one they answer 401.
	pub admin_token: Option<crate::secrets::AdminToken>,
}

/// Span attribution of an answer with the byte-level claims behind its shares. With
/// `misattribute` (tests only, `--test-misattribute`) the top contribution's share and claims are
/// moved to another contribution of the index, which no span backs.
/// With `lineage` (a paid request), only documents of those `(datanet, version)` snapshots are
/// credited: the receipt may credit no other.
/// With a retrieval index, the documents sharing a span are ranked by BM25 relevance to the whole
/// answer.
pub fn span_attribution(
	idx: &SpanIndex,
	retrieval: Option<&RetrievalIndex>,
	ids: &[u32],
	text: &str,
	tk: &TextTokenizer,
	lineage: Option<&[(u32, u32)]>,
	misattribute: bool,
) -> Attribution {
	let allowed = |d: &crate::attribution::span::DocRef| lineage.is_none_or(|l| l.contains(&(d.datanet, d.version)));
	let rank = |cands: &[usize]| {
		retrieval.and_then(|r| r.relevance(text, cands).inspect_err(|e| tracing::warn!("span ranking: {e:#}")).ok()).unwrap_or_default()
	};
	let rank: Option<crate::attribution::span::Relevance<'_>> = retrieval.is_some().then_some(&rank);
	let mut a = idx.attribute_claimed(ids, text, &|ids| tk.decode(ids).ok(), &allowed, &AttributionParams::default(), rank);
	if misattribute {
		if let Some((top, _)) = a.shares.first().copied() {
			let credited: Vec<_> = a.shares.iter().map(|(d, _)| (d.datanet, d.version, d.index)).collect();
			if let Some(other) =
				idx.meta.docs.iter().find(|d| d.datanet == top.datanet && d.version == top.version && !credited.contains(&(d.datanet, d.version, d.index)))
			{
				a.shares[0].0 = *other;
				for c in a.claims.iter_mut().filter(|c| (c.contribution.datanet, c.contribution.version, c.contribution.index) == (top.datanet, top.version, top.index)) {
					c.contribution.index = other.index;
				}
			}
		}
	}
	a
}

/// The `attribution` object of a response: spans of the answer found in the corpus, the
/// contributions they credit, and `Perbill` shares (parts per billion).
pub fn attribution_json(a: &Attribution) -> serde_json::Value {
	let r = |d: &crate::attribution::span::DocRef| serde_json::json!({ "datanet": d.datanet, "version": d.version, "index": d.index });
	serde_json::json!({
		"method": "span_match",
		"coverage": a.coverage,
		"spans": a.spans.iter().map(|s| serde_json::json!({
			"start": s.start, "end": s.end, "count": s.count,
			"contributions": s.docs.iter().map(r).collect::<Vec<_>>(),
		})).collect::<Vec<_>>(),
		"shares": a.shares.iter().map(|(d, share)| serde_json::json!({ "contribution": r(d), "share": share })).collect::<Vec<_>>(),
		// The byte ranges of the answer's text (UTF-8, `[start, end)`) that each credited
		// contribution holds verbatim: what a client highlights (paid requests; the receipt's
		// claims, in its claims root).
		"claims": a.claims.iter().map(|c| serde_json::json!({
			"start": c.output_start, "end": c.output_start as u64 + c.len as u64,
			"contribution": { "datanet": c.contribution.datanet, "version": c.contribution.version, "index": c.contribution.index },
		})).collect::<Vec<_>>(),
	})
}

/// A paid request's accepted voucher and what has been sent for it.
///
/// The voucher is spent once generation starts: dropped before that (refused, busy), the
/// reservation is released; dropped after it without a queued receipt (the client went away
/// mid-answer, or a non-streamed request was abandoned), a receipt is queued for the prompt and
/// the tokens sent — the answer the client already has is paid for, and the voucher cannot be
/// replayed. Only a failure of the worker's own with nothing sent releases it.
struct Paid {
	accepted: Accepted,
	chain: Arc<ChainState>,
	queued: bool,
	started: bool,
	failed: bool,
	prompt_tokens: u32,
	sent_text: String,
	sent_ids: Vec<u32>,
	spans: Option<Arc<SpanIndex>>,
	ranking: Option<Arc<RetrievalIndex>>,
	/// The retrieved passages' credits, for a request attributed by retrieval.
	retrieval: Option<Vec<(ContributionRef, u32)>>,
	tokenizer: Arc<TextTokenizer>,
	metrics: Metrics,
}

impl Paid {
	/// Records text and a token handed to the client.
	fn sent(&mut self, text: &str, id: u32) {
		self.sent_text.push_str(text);
		self.sent_ids.push(id);
	}
}

impl Drop for Paid {
	fn drop(&mut self) {
		if self.queued {
			return;
		}
		let id = self.accepted.request_id;
		if !self.started || (self.failed && self.sent_ids.is_empty()) {
			self.chain.queue.release(&id);
			return;
		}
		// Attribution and signing are CPU work: done with the push, off the async threads.
		let (accepted, chain, spans, tk, ranking) = (self.accepted.clone(), self.chain.clone(), self.spans.clone(), self.tokenizer.clone(), self.ranking.clone());
		let (prompt_tokens, sent_ids, sent_text) = (self.prompt_tokens, std::mem::take(&mut self.sent_ids), std::mem::take(&mut self.sent_text));
		let (queue, metrics, retrieval) = (self.chain.queue.clone(), self.metrics.clone(), self.retrieval.take());
		let push = move || match {
			// Retrieved passages were in the prompt whatever was sent of the answer.
			let (method, credited, claims) = match retrieval {
				Some(credited) => (AttributionMethod::Retrieval, credited, Vec::new()),
				None => {
					let a = match &spans {
						Some(idx) if !sent_ids.is_empty() => {
							Some(span_attribution(idx, ranking.as_deref(), &sent_ids, &sent_text, &tk, Some(&accepted.served.lineage), chain.misattribute))
						},
						_ => None,
					};
					(AttributionMethod::SpanMatch, a.as_ref().map(billing::span_credits).unwrap_or_default(), a.map(|a| a.claims).unwrap_or_default())
				},
			};
			let (signed, claims) = billing::receipt(
				&accepted,
				&chain.signing_key,
				prompt_tokens,
				sent_ids.len() as u32,
				&sent_text,
				method,
				&credited,
				&claims,
			);
			billing::keep_evidence(&chain, &signed, &sent_text, claims).and_then(|_| queue.push(&signed))
		} {
			Ok(()) => {
				metrics.receipts.with_label_values(&["partial"]).inc();
				metrics.receipts_queued.set(queue.counts().0 as i64);
			},
			Err(e) => {
				tracing::error!("the receipt of an interrupted request could not be queued: {e:#}");
				queue.release(&id);
			},
		};
		match tokio::runtime::Handle::try_current() {
			Ok(h) => drop(h.spawn_blocking(push)),
			Err(_) => push(),
		}
	}
}

fn refusal(r: Refusal) -> ApiError {
	ApiError { status: r.status, kind: "invalid_request_error", message: r.message, param: Some("voucher"), code: Some(r.code) }
}

fn chain_unavailable(e: anyhow::Error) -> ApiError {
	tracing::warn!("the chain cannot be reached: {e:#}");
	ApiError { status: 503, kind: "server_error", message: "the chain cannot be reached; retry shortly".into(), param: None, code: Some("chain_unavailable") }
}

/// Checks the request's voucher (when the worker bills on chain) before anything is generated.
async fn accept_voucher(
	st: &AppState,
	headers: &HeaderMap,
	model: &str,
	adapter: Option<&LoraAdapter>,
	request_hash: sp_core::H256,
	max_tokens: usize,
) -> Result<Option<Paid>, ApiError> {
	let Some(chain) = &st.chain else { return Ok(None) };
	let Some(value) = headers.get(VOUCHER_HEADER) else {
		if chain.require_voucher {
			return Err(refusal(Refusal {
				status: 402,
				code: "voucher_required",
				message: format!("this worker bills on chain: send a signed voucher in the `{VOUCHER_HEADER}` header"),
			}));
		}
		return Ok(None);
	};
	let value = value.to_str().map_err(|_| ApiError::invalid("the voucher header is not text", "voucher"))?;
	let (voucher, sig) = billing::parse_header(value).map_err(refusal)?;
	let accepted = billing::check(&chain.registry, model, adapter.map(|a| &a.id), &request_hash, voucher, sig, max_tokens as u32).map_err(|r| {
		if r.code == "adapter_changed" {
			// Reload from disk at the next request; the registry follows the chain meanwhile.
			st.adapters.invalidate(model);
		}
		refusal(r)
	})?;
	let client = chain.conn.get().await.map_err(chain_unavailable)?;
	// Reserved against the escrow beside every request in flight and receipt not yet settled
	// for the same payer: concurrent vouchers cannot promise the same OPEN twice. A read taken
	// before a settlement is read again (the settled fee left both the escrow and the commitments).
	let mut tries = 0;
	let reserved = loop {
		let epoch = chain.queue.epoch();
		let held = crate::chain::escrow_available(&client, &accepted.voucher.payer).await.map_err(chain_unavailable)?;
		match chain.queue.reserve(accepted.request_id, &accepted.voucher.payer, accepted.voucher.max_fee, held, epoch) {
			Err(ReserveError::Stale) if tries < 4 => tries += 1,
			other => break other,
		}
	};
	match reserved {
		Ok(()) => {},
		Err(ReserveError::Stale) => {
			return Err(ApiError { status: 503, kind: "server_error", message: "receipts are settling; retry shortly".into(), param: None, code: Some("busy") })
		},
		Err(ReserveError::Used) => {
			return Err(refusal(Refusal { status: 409, code: "voucher_used", message: "this voucher has already been used".into() }))
		},
		Err(ReserveError::Escrow { held, committed }) => {
			return Err(refusal(Refusal {
				status: 402,
				code: "insufficient_escrow",
				message: format!(
					"the payer's escrow ({held}) does not cover this voucher's maximum fee ({}) beside {committed} already owed to this worker by requests in flight and receipts not yet settled",
					accepted.voucher.max_fee
				),
			}))
		},
	}
	Ok(Some(Paid {
		accepted,
		chain: chain.clone(),
		queued: false,
		started: false,
		failed: false,
		prompt_tokens: 0,
		sent_text: String::new(),
		sent_ids: Vec::new(),
		spans: st.spans.clone(),
		ranking: st.retrieval.clone(),
		retrieval: None,
		tokenizer: st.tokenizer.clone(),
		metrics: st.metrics.clone(),
	}))
}

/// How a request's answer is to be attributed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum AttrMode {
	Auto,
	Span,
	Influence,
	Retrieval,
}

impl AttrMode {
	fn parse(requested: Option<&str>) -> Result<Self, ApiError> {
		match requested.unwrap_or("auto") {
			"auto" => Ok(AttrMode::Auto),
			"span" => Ok(AttrMode::Span),
			"influence" => Ok(AttrMode::Influence),
			"retrieval" => Ok(AttrMode::Retrieval),
			other => {
				let shown: String = other.chars().take(32).collect();
				Err(ApiError::invalid(format!("attribution {shown:?}: one of auto, span, influence, retrieval"), "attribution"))
			},
		}
	}
}

/// What attribution needs besides the answer: the adapter, the prompt's tokens and whether
/// (under which requested mode) the answer is attributed by influence.
struct AttrPlan {
	adapter: Option<Arc<LoraAdapter>>,
	prompt: Vec<u32>,
	influence: Option<AttrMode>,
	/// The passages retrieved into the prompt (`attribution: "retrieval"`).
	retrieval: Option<Retrieved>,
}

impl AttrPlan {
	/// Decides the method before anything is generated (after the voucher was accepted): the
	/// influence cache is loaded off the async threads, and an explicit `influence` request is
	/// refused with 429 while every influence slot is busy.
	async fn new(st: &AppState, mode: AttrMode, adapter: Option<Arc<LoraAdapter>>, prompt: Vec<u32>, retrieval: Option<Retrieved>) -> Result<Self, ApiError> {
		let no_cache = || {
			ApiError::invalid(
				"influence attribution needs an adapter trained by the factory (it caches the training gradients) on a worker started with --influence",
				"attribution",
			)
		};
		let checked = match (&st.influence, &adapter, mode) {
			(_, _, AttrMode::Span | AttrMode::Retrieval) => None,
			(Some(inf), Some(a), _) => {
				let (inf, a) = (inf.clone(), a.clone());
				Some(off_thread(move || inf.check(&a)).await?)
			},
			(_, _, AttrMode::Influence) => return Err(no_cache()),
			_ => None,
		};
		let wanted = match (mode, checked) {
			(AttrMode::Influence, Some(Ok(Some(_)))) => true,
			(AttrMode::Influence, Some(Ok(None)) | None) => return Err(no_cache()),
			(AttrMode::Influence, Some(Err(e))) => {
				tracing::warn!("influence attribution unavailable: {e:#}");
				return Err(ApiError {
					status: 503,
					kind: "server_error",
					message: "influence attribution is unavailable for this adapter on this worker (its cache exceeds the worker's budget or cannot be read)".into(),
					param: Some("attribution"),
					code: Some("influence_unavailable"),
				});
			},
			(AttrMode::Auto, Some(Ok(Some(true)))) => true,
			(AttrMode::Auto, Some(Err(e))) => {
				tracing::warn!("influence attribution unavailable, spans instead: {e:#}");
				false
			},
			_ => false,
		};
		if wanted && mode == AttrMode::Influence && st.influence.as_ref().is_some_and(|inf| inf.busy()) {
			st.metrics.rejected_busy.inc();
			return Err(ApiError {
				status: 429,
				kind: "server_overloaded",
				message: "every influence-attribution slot is busy; retry shortly or ask for span attribution".into(),
				param: Some("attribution"),
				code: Some("busy"),
			});
		}
		Ok(Self { adapter, prompt, influence: wanted.then_some(mode), retrieval })
	}
}

/// Passages retrieved into a prompt, what they are credited and the `attribution` object that
/// cites them.
struct Retrieved {
	credited: Vec<(ContributionRef, u32)>,
	json: serde_json::Value,
}

impl Retrieved {
	fn new(passages: &[Passage]) -> Self {
		let shares = crate::attribution::retrieval::shares(passages);
		let r = |d: &crate::attribution::span::DocRef| serde_json::json!({ "datanet": d.datanet, "version": d.version, "index": d.index });
		let json = serde_json::json!({
			"method": "retrieval",
			"citations": passages.iter().enumerate().map(|(i, p)| serde_json::json!({
				"n": i + 1, "contribution": r(&p.doc), "score": p.score, "text": p.text,
			})).collect::<Vec<_>>(),
			"shares": shares.iter().map(|(d, share)| serde_json::json!({ "contribution": r(d), "share": share })).collect::<Vec<_>>(),
		});
		let credited = shares.iter().map(|(d, s)| (ContributionRef { datanet: d.datanet, version: d.version, index: d.index }, *s)).collect();
		Retrieved { credited, json }
	}
}

/// For `attribution: "retrieval"`: the passages most relevant to `query` (the prompt, or the last
/// user message), from the snapshots of the model's lineage when the request is paid (a receipt
/// may credit no other), best first. `None` for other modes.
async fn retrieve(st: &AppState, headers: &HeaderMap, common: &CommonParams, query: &str) -> Result<Option<Vec<Passage>>, ApiError> {
	let mode = AttrMode::parse(common.attribution.as_deref())?;
	if mode != AttrMode::Retrieval {
		if common.retrieval.is_some() {
			return Err(ApiError::invalid("`retrieval` options go with `attribution: \"retrieval\"`", "retrieval"));
		}
		return Ok(None);
	}
	let (Some(spans), Some(index)) = (&st.spans, &st.retrieval) else {
		return Err(ApiError::invalid(
			"retrieval attribution needs a worker started with --span-index over an index with a retrieval index (span build-retrieval)",
			"attribution",
		));
	};
	let k = common.retrieval.as_ref().and_then(|r| r.top_k).unwrap_or(crate::attribution::retrieval::DEFAULT_TOP_K);
	if !(1..=crate::attribution::retrieval::MAX_TOP_K).contains(&k) {
		return Err(ApiError::invalid(format!("retrieval.top_k must be 1 to {}", crate::attribution::retrieval::MAX_TOP_K), "retrieval"));
	}
	// A paid request: only its model's lineage. A model this worker does not bill for has none
	// (its voucher is refused next).
	let lineage = match &st.chain {
		Some(chain) if headers.contains_key(VOUCHER_HEADER) => Some(chain.registry.get(&common.model).map(|m| m.lineage).unwrap_or_default()),
		_ => None,
	};
	let (spans, index, query) = (spans.clone(), index.clone(), query.to_string());
	let passages = off_thread(move || index.search(&spans, &query, k, lineage.as_deref())).await?.map_err(|e| {
		tracing::error!("retrieval: {e:#}");
		internal("retrieval failed")
	})?;
	Ok(Some(passages))
}

/// The prompt `render` makes with as many of the retrieved passages (best first) as leave room
/// in the context for the request's `max_tokens` (256 when it names none, as sampling defaults);
/// the passages dropped are neither cited nor credited. Passages lose any added-token text
/// (`<|im_start|>`, …) first: a contribution must not open or close turns in someone's prompt.
/// At most ⌈log₂(k + 1)⌉ + 1 tokenizations. Without retrieval, the prompt as sent.
async fn fit_passages(
	st: &AppState,
	common: &CommonParams,
	passages: Option<Vec<Passage>>,
	chat: bool,
	render: impl Fn(&[Passage]) -> Result<String, ApiError> + Send + 'static,
) -> Result<(String, Option<Retrieved>), ApiError> {
	let room = st.engine.max_len.saturating_sub(common.max_completion_tokens.or(common.max_tokens).unwrap_or(256));
	let tokenizer = st.tokenizer.clone();
	off_thread(move || {
		let Some(mut passages) = passages else { return Ok((render(&[])?, None)) };
		let added = tokenizer.added_tokens();
		for p in passages.iter_mut() {
			p.text = crate::attribution::retrieval::without_tokens(&p.text, &added);
		}
		let fits = |n: usize| -> Result<Option<String>, ApiError> {
			let prompt = render(&passages[..n])?;
			let len = if chat { tokenizer.encode(&prompt) } else { tokenizer.encode_prompt(&prompt) }.map(|t| t.len()).unwrap_or(usize::MAX);
			Ok((n == 0 || len <= room).then_some(prompt))
		};
		// All of them (the common case), else the most that fit (fitting is monotone in n).
		let (mut prompt, mut n) = match fits(passages.len())? {
			Some(p) => (p, passages.len()),
			None => (render(&[])?, 0),
		};
		if n < passages.len() {
			let (mut lo, mut hi) = (0, passages.len() - 1); // the answer is in lo..=hi
			while lo < hi {
				let mid = (lo + hi).div_ceil(2);
				match fits(mid)? {
					Some(p) => {
						(lo, prompt) = (mid, p);
					},
					None => hi = mid - 1,
				}
			}
			n = lo;
			if n == 0 {
				prompt = render(&[])?;
			}
		}
		passages.truncate(n);
		Ok((prompt, Some(Retrieved::new(&passages))))
	})
	.await?
}

fn influence_json(r: &crate::attribution::influence::InfluenceResult) -> serde_json::Value {
	serde_json::json!({
		"method": "influence",
		"estimator": r.estimator,
		"training_examples": r.examples,
		"shares": r.shares.iter().map(|((datanet, version, index), share, score)| serde_json::json!({
			"contribution": { "datanet": datanet, "version": version, "index": index }, "share": share, "score": score,
		})).collect::<Vec<_>>(),
	})
}

/// After the answer: its `attribution` object and, for a paid request, its `receipt` object —
/// the signed receipt is on disk before this returns.
async fn finish(
	st: &AppState,
	paid: &mut Option<Paid>,
	usage: &Usage,
	text: &str,
	ids: &[u32],
	plan: &AttrPlan,
) -> Result<(Option<serde_json::Value>, Option<serde_json::Value>), ApiError> {
	let result = attribute_and_queue(st, paid, usage, text, ids, plan).await;
	if result.is_err() {
		// A failure of the worker's own: billed only for what a stream already sent.
		if let Some(p) = paid.as_mut() {
			p.failed = true;
		}
	}
	result
}

/// The influence slot for an answer about to be attributed by influence: waited for up to
/// [`INFLUENCE_WAIT`] (the backward pass holds it until it ends, even if the client leaves);
/// `None` when none came (then `auto` falls back to spans, `influence` fails).
async fn influence_slot(inf: &crate::attribution::influence::Attributor) -> Option<tokio::sync::OwnedSemaphorePermit> {
	tokio::time::timeout(INFLUENCE_WAIT, inf.permit()).await.ok()
}

/// How long a finished answer waits for an influence slot.
const INFLUENCE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

async fn attribute_and_queue(
	st: &AppState,
	paid: &mut Option<Paid>,
	usage: &Usage,
	text: &str,
	ids: &[u32],
	plan: &AttrPlan,
) -> Result<(Option<serde_json::Value>, Option<serde_json::Value>), ApiError> {
	if let Some(r) = &plan.retrieval {
		let json = r.json.clone();
		return queue_receipt(st, paid, usage, text, Some(json), AttributionMethod::Retrieval, &r.credited, &[]).await;
	}
	let mut influence = match (plan.influence, &st.influence, &plan.adapter) {
		(Some(mode), Some(inf), Some(a)) if !ids.is_empty() => match influence_slot(inf).await {
			Some(slot) => Some((inf.clone(), a.clone(), slot)),
			None if mode == AttrMode::Influence => {
				return Err(ApiError {
					status: 503,
					kind: "server_error",
					message: "every influence-attribution slot stayed busy".into(),
					param: Some("attribution"),
					code: Some("busy"),
				})
			},
			None => None,
		},
		_ => None,
	};
	let (attribution, method, credited, claims) = match influence.take() {
		Some((inf, adapter, slot)) => {
			let (prompt, completion) = (plan.prompt.clone(), ids.to_vec());
			// The slot moves into the blocking task: released when the backward pass ends.
			let r = off_thread(move || {
				let _slot = slot;
				inf.attribute(&adapter, &prompt, &completion, crate::attribution::influence::Method::DataInf)
			})
			.await?
			.map_err(|e| {
				tracing::error!("influence attribution: {e:#}");
				internal("influence attribution failed")
			})?
			.ok_or_else(|| ApiError::invalid("the adapter has no cached training gradients", "attribution"))?;
			let credited: Vec<(ContributionRef, u32)> =
				r.shares.iter().map(|((datanet, version, index), p, _)| (ContributionRef { datanet: *datanet, version: *version, index: *index }, *p)).collect();
			(Some(influence_json(&r)), AttributionMethod::Influence, credited, Vec::new())
		},
		_ => {
			let misattribute = paid.as_ref().is_some_and(|p| p.chain.misattribute);
			let lineage = paid.as_ref().map(|p| p.accepted.served.lineage.clone());
			let a = match &st.spans {
				Some(idx) => {
					let (idx, ids, text, tk, ranking) = (idx.clone(), ids.to_vec(), text.to_string(), st.tokenizer.clone(), st.retrieval.clone());
					Some(off_thread(move || span_attribution(&idx, ranking.as_deref(), &ids, &text, &tk, lineage.as_deref(), misattribute)).await?)
				},
				None => None,
			};
			let credited = a.as_ref().map(billing::span_credits).unwrap_or_default();
			let json = a.as_ref().map(attribution_json);
			(json, AttributionMethod::SpanMatch, credited, a.map(|a| a.claims).unwrap_or_default())
		},
	};
	queue_receipt(st, paid, usage, text, attribution, method, &credited, &claims).await
}

/// Signs the receipt of a paid request and queues it (on disk before this returns); adds its
/// id to the `attribution` object and returns both.
#[allow(clippy::too_many_arguments)]
async fn queue_receipt(
	st: &AppState,
	paid: &mut Option<Paid>,
	usage: &Usage,
	text: &str,
	mut attribution: Option<serde_json::Value>,
	method: AttributionMethod,
	credited: &[(ContributionRef, u32)],
	claims: &[openledger_primitives::evidence::SpanClaim],
) -> Result<(Option<serde_json::Value>, Option<serde_json::Value>), ApiError> {
	let Some(p) = paid.as_mut() else { return Ok((attribution, None)) };
	let (signed, claims) = billing::receipt(
		&p.accepted,
		&p.chain.signing_key,
		usage.prompt_tokens as u32,
		usage.completion_tokens as u32,
		text,
		method,
		credited,
		claims,
	);
	let queue = p.chain.queue.clone();
	let to_disk = signed.clone();
	let id = p.accepted.request_id;
	let (chain, output) = (p.chain.clone(), text.to_string());
	// Marked queued before the write: if this request is dropped meanwhile, the write still
	// completes on the blocking pool and no second (partial) receipt is made. If the write
	// fails, the reservation is given up there.
	p.queued = true;
	tokio::task::spawn_blocking(move || {
		billing::keep_evidence(&chain, &to_disk, &output, claims).and_then(|_| queue.push(&to_disk)).inspect_err(|e| {
			tracing::error!("the receipt of {id:?} could not be queued: {e:#}");
			queue.release(&id);
		})
	})
	.await
	.map_err(|e| anyhow::anyhow!("{e}"))
	.and_then(|r| r)
	.map_err(|_| internal("the receipt could not be queued"))?;
	st.metrics.receipts.with_label_values(&["queued"]).inc();
	st.metrics.receipts_queued.set(p.chain.queue.counts().0 as i64);
	let id = format!("{:?}", p.accepted.request_id);
	if let Some(a) = attribution.as_mut() {
		a["receipt_id"] = id.clone().into();
	}
	let receipt = serde_json::json!({
		"id": id,
		"model": p.accepted.served.model,
		"model_version": p.accepted.served.version,
		"fee": signed.receipt.fee.to_string(),
		"attributed": signed.receipt.attribution.len(),
		"status": "queued",
		// What the worker signed, as it will be on chain: the payer can check that
		// `output_root` is its answer's content root and keep the worker's signature of it.
		"output_len": signed.receipt.output_len,
		"output_root": format!("{:?}", signed.receipt.output_root),
		"claims_root": format!("{:?}", signed.receipt.claims_root),
		"signed": format!("0x{}", hex::encode(codec::Encode::encode(&signed))),
	});
	Ok((attribution, Some(receipt)))
}

/// A request id from a path: `0x` (optional) and 64 hex digits.
fn parse_request_id(id: &str) -> Result<crate::chain::RequestId, ApiError> {
	match hex::decode(id.strip_prefix("0x").unwrap_or(id)) {
		Ok(b) if b.len() == 32 => Ok(crate::chain::RequestId::from_slice(&b)),
		_ => Err(ApiError::invalid("a request id is 0x followed by 64 hex digits", "id")),
	}
}

/// `GET /v1/evidence/{request id}`: the evidence of a span receipt — its committed claims, each
/// proven (SCALE `Vec<SpanEvidence>`, hex): the claim's place under the claims root, the
/// answer's 1 KiB chunks holding it under the output root, the contribution's under its content
/// root. Those chunks are the payer's answer: only the payer may read it (header
/// `X-OpenLedger-Evidence-Signature`: its signature of SCALE `("openledger:evidence:v1",
/// request id)`) or the operator (admin bearer token); anyone else gets 403 (a dispute
/// publishes what it needs on chain). `openledger evidence` checks it.
async fn evidence(State(st): State<Arc<AppState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
	let Some(chain) = &st.chain else {
		return error_response(&ApiError { status: 404, ..ApiError::invalid("this worker does not bill on chain", "id") });
	};
	let id = match parse_request_id(&id) {
		Ok(id) => id,
		Err(e) => return error_response(&e),
	};
	let auth = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
	let operator = st.admin_token.as_ref().is_some_and(|t| t.accepts(auth));
	let signature = headers.get("x-openledger-evidence-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
	let (store, spans) = (chain.evidence.clone(), st.spans.clone());
	let built = off_thread(move || {
		store.get(&id).map(|r| {
			r.map(|r| {
				let allowed = operator || signature.as_deref().is_some_and(|s| crate::chain::evidence::payer_asked(s, &r.payer, &id));
				let e = allowed.then(|| {
					crate::chain::evidence::all_evidence(&r, |c| spans.as_deref().and_then(|i| crate::chain::evidence::doc_bytes(i, c)))
				});
				(r, e)
			})
		})
	})
	.await;
	match built {
		Ok(Ok(Some((_, None)))) => error_response(&ApiError {
			status: 403,
			kind: "invalid_request_error",
			message: "only the payer (X-OpenLedger-Evidence-Signature) or the operator may read a receipt's evidence".into(),
			param: Some("id"),
			code: Some("not_the_payer"),
		}),
		Ok(Ok(Some((r, Some(e))))) => Json(serde_json::json!({
			"request_id": format!("{id:?}"),
			"output_len": r.output.len(),
			"output_root": format!("{:?}", openledger_primitives::evidence::content_root(&r.output)),
			"claims_root": format!("{:?}", openledger_primitives::evidence::claims_tree(&r.claims).root()),
			"claims": r.claims,
			"evidence": format!("0x{}", hex::encode(codec::Encode::encode(&e))),
		}))
		.into_response(),
		Ok(Ok(None)) => error_response(&ApiError { status: 404, ..ApiError::invalid("no evidence is kept for this request id", "id") }),
		Ok(Err(e)) => {
			tracing::error!("reading evidence: {e:#}");
			error_response(&internal("the evidence could not be read"))
		},
		Err(e) => error_response(&e),
	}
}

/// `GET /v1/receipts/{request id}`: where a paid request's receipt is.
async fn receipt_status(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
	let Some(chain) = &st.chain else {
		return error_response(&ApiError { status: 404, ..ApiError::invalid("this worker does not bill on chain", "id") });
	};
	let id = match parse_request_id(&id) {
		Ok(id) => id,
		Err(e) => return error_response(&e),
	};
	Json(chain.queue.status(&id)).into_response()
}

/// The factory, for an authenticated admin caller: 401 without the bearer token (whatever the
/// route, so that an anonymous caller learns nothing), 404 when the factory is off.
fn factory_of<'a>(st: &'a AppState, headers: &HeaderMap) -> Result<&'a Arc<crate::factory::jobs::Factory>, Response> {
	let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
	if !st.admin_token.as_ref().is_some_and(|t| t.accepts(auth)) {
		let mut r = error_response(&ApiError {
			status: 401,
			kind: "invalid_request_error",
			message: "the factory endpoints need the worker's admin token: `Authorization: Bearer <token>` (see --admin-token-file)".into(),
			param: None,
			code: Some("invalid_api_key"),
		});
		r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
		return Err(r);
	}
	st.factory.as_ref().ok_or_else(|| {
		error_response(&ApiError {
			status: 404,
			..ApiError::invalid("the factory is off: start the worker with --chain-rpc, --base-model-id and --content-store", "url")
		})
	})
}

/// `POST /v1/factory/jobs`: queue a fine-tuning job (`factory::jobs::JobRequest`); 202 with the job.
async fn factory_submit(
	State(st): State<Arc<AppState>>,
	headers: HeaderMap,
	body: Result<Json<crate::factory::jobs::JobRequest>, JsonRejection>,
) -> Response {
	let f = match factory_of(&st, &headers) {
		Ok(f) => f,
		Err(r) => return r,
	};
	let Json(request) = match body {
		Ok(b) => b,
		Err(rej) => return error_response(&json_error(rej)),
	};
	use crate::factory::jobs::{SubmitError, MAX_PENDING_JOBS};
	match f.submit(request) {
		Ok(job) => (StatusCode::ACCEPTED, Json(job)).into_response(),
		Err(SubmitError::Invalid(e)) => error_response(&ApiError::invalid(e, "body")),
		Err(SubmitError::Full) => error_response(&ApiError {
			status: 429,
			kind: "server_overloaded",
			message: format!("{MAX_PENDING_JOBS} factory jobs are queued or running; retry when one is done"),
			param: None,
			code: Some("busy"),
		}),
	}
}

/// `GET /v1/factory/jobs`: every job, oldest first.
async fn factory_list(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
	match factory_of(&st, &headers) {
		Ok(f) => Json(serde_json::json!({ "object": "list", "data": f.list() })).into_response(),
		Err(r) => r,
	}
}

/// `GET /v1/factory/jobs/{id}`: a job's state, progress, report and model id.
async fn factory_job(State(st): State<Arc<AppState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
	let f = match factory_of(&st, &headers) {
		Ok(f) => f,
		Err(r) => return r,
	};
	let Ok(id) = id.parse::<u64>() else {
		return error_response(&ApiError::invalid("a job id is a number", "id"));
	};
	match f.get(id) {
		Some(job) => Json(job).into_response(),
		None => error_response(&ApiError { status: 404, ..ApiError::invalid(format!("no job {id}"), "id") }),
	}
}

pub fn router(state: Arc<AppState>) -> Router {
	Router::new()
		.route("/v1/models", get(models))
		.route("/v1/completions", post(completions))
		.route("/v1/chat/completions", post(chat_completions))
		.route("/v1/receipts/{id}", get(receipt_status))
		.route("/v1/evidence/{id}", get(evidence))
		.route("/v1/factory/jobs", post(factory_submit).get(factory_list))
		.route("/v1/factory/jobs/{id}", get(factory_job))
		.route("/health", get(health))
		.route("/openapi.json", get(openapi))
		.route("/metrics", get(metrics))
		.fallback(|| async { error_response(&ApiError { status: 404, ..ApiError::invalid("no such route", "url") }) })
		.layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
		.with_state(state)
}

/// The HTTP API as an OpenAPI 3.0 document (`GET /openapi.json`).
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
	([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

fn now() -> u64 {
	std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn error_response(e: &ApiError) -> Response {
	let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
	let mut r = (status, Json(e.body())).into_response();
	if e.status == 429 || e.status == 503 {
		r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
	}
	r
}

fn json_error(rej: JsonRejection) -> ApiError {
	// 413 for a body over the limit, 400 (as OpenAI answers) for everything else.
	let status = if rej.status() == StatusCode::PAYLOAD_TOO_LARGE { 413 } else { 400 };
	ApiError {
		status,
		code: None,
		..ApiError::invalid(format!("We could not parse the JSON body of your request: {}", rej.body_text()), "body")
	}
}

async fn models(State(st): State<Arc<AppState>>) -> Json<ModelList> {
	let on_chain = |name: &str| {
		let chain = st.chain.as_ref()?;
		let m = chain.registry.get(name)?;
		Some(crate::http::wire::OnChainModel {
			worker: sp_core::crypto::Ss58Codec::to_ss58check(&chain.registry.account),
			model: m.model,
			version: m.version,
			terms: format!("{:?}", m.terms),
			price_per_request: m.per_request.to_string(),
			price_per_1k_tokens: m.per_1k_tokens.to_string(),
		})
	};
	let mut data = vec![ModelCard {
		id: st.base_name.clone(),
		object: "model",
		created: st.created,
		owned_by: "openledger".into(),
		parent: None,
		openledger: on_chain(&st.base_name),
	}];
	// Compositions registered on chain for this worker are served under their names too.
	let composed = st.chain.as_ref().map(|c| c.registry.served()).unwrap_or_default().into_iter().map(|(n, _)| n).filter(|n| n.contains('+'));
	for name in st.adapters.list().into_iter().chain(composed) {
		data.push(ModelCard {
			openledger: on_chain(&name),
			id: name,
			object: "model",
			created: st.created,
			owned_by: "openledger".into(),
			parent: Some(st.base_name.clone()),
		});
	}
	Json(ModelList { object: "list", data })
}

/// `GET /health`: 200 while the engine thread runs, 503 once it has stopped (so a load
/// balancer or supervisor takes the worker out instead of sending it requests it cannot serve).
async fn health(State(st): State<Arc<AppState>>) -> Response {
	let (resident, bytes) = st.adapters.resident();
	let alive = st.engine.health.alive();
	let body = Json(serde_json::json!({
		"status": if alive { "ok" } else { "engine_stopped" },
		"model": st.base_name, "in_flight": st.engine.in_flight(),
		"engine_panics": st.engine.health.panics(),
		"kv_blocks_used": st.engine.health.kv_blocks().0, "kv_blocks_cached": st.engine.health.kv_blocks().1,
		"kv_blocks_total": st.engine.kv_blocks, "kv_block_tokens": st.engine.kv_block_size,
		"preemptions": st.engine.health.preemptions(), "kv_swaps": st.engine.health.swaps(),
		"adapters_resident": resident, "adapter_bytes": bytes,
	}));
	if alive { body.into_response() } else { (StatusCode::SERVICE_UNAVAILABLE, body).into_response() }
}

async fn metrics(State(st): State<Arc<AppState>>) -> impl IntoResponse {
	([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.metrics.render())
}

/// A load of the request's adapter, started before the request is tokenized and queued.
type Loading = tokio::task::JoinHandle<Result<Arc<LoraAdapter>, AdapterError>>;

/// The model field names the base model (`None`) or an adapter in the store, whose load starts
/// now (it goes on if the client leaves: the next request for it finds it loaded). A model that
/// is not in the store is refused here, before the request costs a tokenization or a place in
/// line.
fn start_resolving(st: &AppState, model: &str) -> Result<Option<Loading>, ApiError> {
	if model == st.base_name {
		return Ok(None);
	}
	match crate::model::lora::parse_composition(model) {
		Some(Err(e)) => return Err(ApiError::invalid(e, "model")),
		// A worker that bills builds only the compositions registered on chain for it: an
		// unpaid caller cannot fill the adapter cache with weightings nobody serves.
		Some(Ok(_)) if st.chain.as_ref().is_some_and(|c| c.registry.get(model).is_none()) => {
			return Err(ApiError {
				status: 404,
				code: Some("model_not_found"),
				..ApiError::invalid(format!("The composition `{model}` is not registered on chain for this worker."), "model")
			})
		},
		_ => {},
	}
	if !st.adapters.in_store(model) {
		return Err(not_found(model));
	}
	let (adapters, name) = (st.adapters.clone(), model.to_string());
	Ok(Some(tokio::spawn(async move { adapters.get(&name).await })))
}

fn not_found(model: &str) -> ApiError {
	ApiError {
		status: 404,
		code: Some("model_not_found"),
		..ApiError::invalid(format!("The model `{model}` does not exist or you do not have access to it."), "model")
	}
}

/// The adapter a [`start_resolving`] load gave.
async fn resolved(model: &str, loading: Option<Loading>) -> Result<Option<Arc<LoraAdapter>>, ApiError> {
	let Some(loading) = loading else { return Ok(None) };
	let loaded = loading.await.map_err(|e| {
		tracing::error!("loading the adapter `{model}`: {e}");
		internal("the request could not be processed")
	})?;
	loaded.map(Some).map_err(|e| match e {
		// Removed from the store since it was checked.
		AdapterError::NotFound(_) => not_found(model),
		AdapterError::Invalid(..) => {
			tracing::error!("{e}");
			ApiError { param: Some("model"), ..internal(&format!("the model `{model}` cannot be loaded on this worker")) }
		},
	})
}

struct Prepared {
	rx: mpsc::Receiver<Event>,
	paid: Option<Paid>,
	id: String,
	model: String,
	include_usage: bool,
	plan: AttrPlan,
}

/// `request_hash`: what a voucher for this request must name (the prompt, or the messages).
async fn prepare(
	st: &AppState,
	headers: &HeaderMap,
	common: &CommonParams,
	prompt: &str,
	request_hash: sp_core::H256,
	prefix: &str,
	retrieved: Option<Retrieved>,
) -> Result<Prepared, ApiError> {
	// The model first: a request for one that is not served costs no tokenization. A cold
	// adapter loads from here on, while the prompt is tokenized and the request waits in line.
	let loading = start_resolving(st, &common.model)?;
	let (tokenizer, text, chat) = (st.tokenizer.clone(), prompt.to_string(), prefix == "chatcmpl");
	let tokens = off_thread(move || if chat { tokenizer.encode(&text) } else { tokenizer.encode_prompt(&text) })
		.await?
		.map_err(|e| ApiError::invalid(e.to_string(), "prompt"))?;
	let params = common.sampling(tokens.len(), st.engine.max_len)?;
	let mode = AttrMode::parse(common.attribution.as_deref())?;
	// In line now, held: it runs once opened below, after its voucher is spent; on any error
	// before that, `held` is dropped and the request leaves the line having run nothing.
	let (held, rx) = st.engine.hold(tokens.clone(), params.clone()).map_err(|e| submit_error(st, e))?;
	let adapter = resolved(&common.model, loading).await?;
	// The voucher next: nothing costly (influence caches) for a request nobody pays for.
	let mut paid = accept_voucher(st, headers, &common.model, adapter.as_deref(), request_hash, tokens.len() + params.max_tokens).await?;
	// The prompt's tokens are kept only for an influence gradient.
	let prompt = if st.influence.is_some() { tokens.clone() } else { Vec::new() };
	let plan = AttrPlan::new(st, mode, adapter.clone(), prompt, retrieved).await?;
	if let Some(p) = paid.as_mut() {
		p.retrieval = plan.retrieval.as_ref().map(|r| r.credited.clone());
	}
	let prompt_tokens = tokens.len() as u32;
	// Generation has started: from here on the voucher is spent — durably, before the first
	// token can leave (the response is not returned before this).
	if let Some(p) = paid.as_mut() {
		p.started = true;
		p.prompt_tokens = prompt_tokens;
		let (queue, id, expires) = (p.chain.queue.clone(), p.accepted.request_id, p.accepted.voucher.expires_at);
		if let Err(e) = off_thread(move || queue.spend(&id, expires)).await.and_then(|r| {
			r.map_err(|e| {
				tracing::error!("marking voucher {id:?} spent: {e:#}");
				internal("the request could not be recorded")
			})
		}) {
			p.failed = true; // nothing was sent: released, and `held` dropped cancels generation
			return Err(e);
		}
	}
	// The payer is the tenant whose cached prefixes this request may share (`--prefix-cache`).
	let tenant = paid.as_ref().map(|p| p.accepted.voucher.payer.clone());
	if let Err(e) = held.open(adapter, tenant.as_ref().map(|t| AsRef::<[u8]>::as_ref(t))) {
		if let Some(p) = paid.as_mut() {
			p.failed = true; // the engine stopped: nothing will be sent
		}
		return Err(submit_error(st, e));
	}
	let id = format!("{prefix}-{:x}{:06x}", now(), st.next_id.fetch_add(1, Ordering::Relaxed));
	Ok(Prepared {
		rx,
		paid,
		id,
		model: common.model.clone(),
		include_usage: common.stream_options.as_ref().is_some_and(|o| o.include_usage),
		plan,
	})
}

fn submit_error(st: &AppState, e: SubmitError) -> ApiError {
	match e {
		SubmitError::Busy(_) => {
			st.metrics.rejected_busy.inc();
			ApiError { status: 429, kind: "server_overloaded", message: e.to_string(), param: None, code: Some("busy") }
		},
		SubmitError::EmptyPrompt => ApiError::invalid(e.to_string(), "prompt"),
		SubmitError::KvTooLarge { .. } => ApiError { code: Some("context_length_exceeded"), ..ApiError::invalid(e.to_string(), "max_tokens") },
		SubmitError::Stopped => ApiError { status: 503, kind: "server_error", message: e.to_string(), param: None, code: None },
	}
}

/// Runs CPU-bound request work (tokenization, chat templates) on the blocking pool, not on the
/// async threads that serve every connection.
async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
	tokio::task::spawn_blocking(f).await.map_err(|e| {
		tracing::error!("request preprocessing failed: {e}");
		internal("the request could not be processed")
	})
}

/// A 500 whose message says nothing about the worker's files or internals (those go to its log).
fn internal(message: &str) -> ApiError {
	ApiError { status: 500, kind: "server_error", message: message.into(), param: None, code: None }
}

/// Waits for the whole answer: (text, finish reason, usage).
async fn collect(mut rx: mpsc::Receiver<Event>) -> Result<(String, FinishReason, Usage, Vec<u32>), ApiError> {
	let mut text = String::new();
	let mut ids = Vec::new();
	while let Some(ev) = rx.recv().await {
		match ev {
			Event::Token { text: t, id } => {
				text.push_str(&t);
				ids.push(id);
			},
			Event::Done { reason, prompt_tokens, completion_tokens } =>
				return Ok((text, reason, Usage::new(prompt_tokens, completion_tokens), ids)),
			Event::Error(e) => return Err(ApiError { status: 500, kind: "server_error", message: e, param: None, code: None }),
		}
	}
	Err(ApiError { status: 500, kind: "server_error", message: "the engine dropped the request".into(), param: None, code: None })
}

/// A whole (non-streamed) answer with its `attribution` and `receipt` objects.
struct Answer {
	text: String,
	reason: FinishReason,
	usage: Usage,
	attribution: Option<serde_json::Value>,
	receipt: Option<serde_json::Value>,
}

/// Waits for the whole answer, then attributes it and queues its receipt.
async fn answer(st: &AppState, rx: mpsc::Receiver<Event>, paid: &mut Option<Paid>, plan: &AttrPlan) -> Result<Answer, ApiError> {
	let (text, reason, usage, ids) = collect(rx).await.inspect_err(|_| {
		// The worker failed with nothing sent: the voucher is not spent.
		if let Some(p) = paid.as_mut() {
			p.failed = true;
		}
	})?;
	let (attribution, receipt) = finish(st, paid, &usage, &text, &ids, plan).await?;
	Ok(Answer { text, reason, usage, attribution, receipt })
}

fn sse_json<T: serde::Serialize>(v: &T) -> Result<SseEvent, Infallible> {
	Ok(SseEvent::default().data(serde_json::to_string(v).expect("wire types serialize; qed")))
}

/// Engine events as SSE chunks built by `chunk(text, finish, usage)`, then `[DONE]`.
/// The final chunk carries the `attribution` and `receipt` objects.
fn sse_stream<F>(
	st: Arc<AppState>,
	p: Prepared,
	first: Option<SseEvent>,
	chunk: F,
) -> impl Stream<Item = Result<SseEvent, Infallible>>
where
	F: Fn(Option<String>, Option<FinishReason>, Option<Usage>) -> serde_json::Value + Send + Sync + 'static,
{
	let include_usage = p.include_usage;
	let plan = Arc::new(p.plan);
	let head = futures::stream::iter(first.map(Ok));
	let chunk = Arc::new(chunk);
	let error_event = |err: ApiError| Ok(SseEvent::default().data(err.body().to_string()));
	let body = futures::stream::unfold((p.rx, p.paid, false, Vec::new(), String::new()), move |(mut rx, mut paid, done, mut ids, mut out)| {
		let chunk = chunk.clone();
		let st = st.clone();
		let plan = plan.clone();
		async move {
			if done {
				return None;
			}
			let events: Vec<Result<SseEvent, Infallible>> = match rx.recv().await {
				Some(Event::Token { text, id }) => {
					ids.push(id);
					out.push_str(&text);
					if let Some(p) = paid.as_mut() {
						p.sent(&text, id);
					}
					if text.is_empty() { vec![] } else { vec![sse_json(&chunk(Some(text), None, None))] }
				},
				Some(Event::Done { reason, prompt_tokens, completion_tokens }) => {
					let usage = Usage::new(prompt_tokens, completion_tokens);
					let mut last = chunk(None, Some(reason), None);
					let mut v = match finish(&st, &mut paid, &usage, &out, &ids, &plan).await {
						Ok((attribution, receipt)) => {
							if let Some(a) = attribution {
								last["attribution"] = a;
							}
							if let Some(r) = receipt {
								last["receipt"] = r;
							}
							vec![sse_json(&last)]
						},
						Err(e) => vec![error_event(e)],
					};
					if include_usage {
						v.push(sse_json(&chunk(None, None, Some(usage))));
					}
					v.push(Ok(SseEvent::default().data("[DONE]")));
					return Some((v, (rx, paid, true, ids, out)));
				},
				Some(Event::Error(e)) => {
					if let Some(p) = paid.as_mut() {
						p.failed = true;
					}
					let err = ApiError { status: 500, kind: "server_error", message: e, param: None, code: None };
					return Some((vec![error_event(err)], (rx, paid, true, ids, out)));
				},
				None => return None,
			};
			Some((events, (rx, paid, false, ids, out)))
		}
	});
	head.chain(body.flat_map(futures::stream::iter))
}

async fn completions(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Result<Json<CompletionRequest>, JsonRejection>) -> Response {
	let req = match body {
		Ok(Json(r)) => r,
		Err(rej) => return fail(&st, json_error(rej)),
	};
	if let Err(e) = check_extra(&req.extra) {
		return fail(&st, e);
	}
	let prompts = req.prompt.clone().into_vec();
	if prompts.len() != 1 {
		return fail(&st, ApiError::invalid("exactly one prompt per request is supported", "prompt"));
	}
	let request_hash = openledger_primitives::receipt::completion_request_hash(&prompts[0]);
	// The retrieved passages before the prompt; the voucher still names the prompt as sent.
	let question = prompts[0].clone();
	let render = move |p: &[Passage]| {
		Ok(if p.is_empty() { question.clone() } else { format!("{}\n{}", crate::attribution::retrieval::context(p), question) })
	};
	let (prompt, retrieved) = match retrieve(&st, &headers, &req.common, &prompts[0]).await {
		Ok(passages) => match fit_passages(&st, &req.common, passages, false, render).await {
			Ok(r) => r,
			Err(e) => return fail(&st, e),
		},
		Err(e) => return fail(&st, e),
	};
	let p = match prepare(&st, &headers, &req.common, &prompt, request_hash, "cmpl", retrieved).await {
		Ok(p) => p,
		Err(e) => return fail(&st, e),
	};
	st.metrics.requests.with_label_values(&["ok"]).inc();
	let created = now();
	if req.common.stream {
		let (id, model) = (p.id.clone(), p.model.clone());
		let stream = sse_stream(st.clone(), p, None, move |text, finish, usage| {
			let choices = if usage.is_some() {
				vec![]
			} else {
				vec![CompletionChoice { index: 0, text: text.unwrap_or_default(), logprobs: None, finish_reason: finish }]
			};
			serde_json::to_value(CompletionResponse {
				id: id.clone(),
				object: "text_completion",
				created,
				model: model.clone(),
				choices,
				usage,
				attribution: None,
				receipt: None,
			})
			.expect("serializable; qed")
		});
		return Sse::new(stream).keep_alive(KeepAlive::default()).into_response();
	}
	let Prepared { rx, mut paid, id, model, plan, .. } = p;
	match answer(&st, rx, &mut paid, &plan).await {
		Ok(a) => Json(CompletionResponse {
			id,
			object: "text_completion",
			created,
			model,
			choices: vec![CompletionChoice { index: 0, text: a.text, logprobs: None, finish_reason: Some(a.reason) }],
			usage: Some(a.usage),
			attribution: a.attribution,
			receipt: a.receipt,
		})
		.into_response(),
		Err(e) => error_response(&e),
	}
}

async fn chat_completions(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Result<Json<ChatRequest>, JsonRejection>) -> Response {
	let req = match body {
		Ok(Json(r)) => r,
		Err(rej) => return fail(&st, json_error(rej)),
	};
	if let Err(e) = check_extra(&req.extra) {
		return fail(&st, e);
	}
	if req.messages.is_empty() {
		return fail(&st, ApiError::invalid("messages must not be empty", "messages"));
	}
	let messages = match req.messages.iter().map(ChatMessageIn::to_message).collect::<Result<Vec<_>, _>>() {
		Ok(m) => m,
		Err(e) => return fail(&st, e),
	};
	// What the payer's voucher names: the messages as sent (role, text content).
	let request_hash = openledger_primitives::receipt::chat_request_hash(req.messages.iter().zip(&messages).map(|(sent, m)| (sent.role.as_str(), m.content.as_str())));
	// Retrieval searches the last user message and puts the passages before it (inside it:
	// every chat template has a user turn, not every one a system turn).
	let last_user = messages.iter().rposition(|m| m.role == "user");
	let query = last_user.map(|i| messages[i].content.clone()).unwrap_or_default();
	let tokenizer = st.tokenizer.clone();
	let render = move |p: &[Passage]| {
		let mut messages = messages.clone();
		if let (false, Some(i)) = (p.is_empty(), last_user) {
			messages[i].content = format!("{}\nQuestion: {}", crate::attribution::retrieval::context(p), messages[i].content);
		}
		tokenizer.apply_chat_template(&messages).map_err(|e| ApiError::invalid(e.to_string(), "messages"))
	};
	let (prompt, retrieved) = match retrieve(&st, &headers, &req.common, &query).await {
		Ok(passages) => match fit_passages(&st, &req.common, passages, true, render).await {
			Ok(r) => r,
			Err(e) => return fail(&st, e),
		},
		Err(e) => return fail(&st, e),
	};
	let p = match prepare(&st, &headers, &req.common, &prompt, request_hash, "chatcmpl", retrieved).await {
		Ok(p) => p,
		Err(e) => return fail(&st, e),
	};
	st.metrics.requests.with_label_values(&["ok"]).inc();
	let created = now();
	if req.common.stream {
		let (id, model) = (p.id.clone(), p.model.clone());
		let make = move |delta: Delta, finish: Option<FinishReason>, usage: Option<Usage>| {
			let choices = if usage.is_some() {
				vec![]
			} else {
				vec![ChatChunkChoice { index: 0, delta, logprobs: None, finish_reason: finish }]
			};
			serde_json::to_value(ChatChunk {
				id: id.clone(),
				object: "chat.completion.chunk",
				created,
				model: model.clone(),
				choices,
				usage,
			})
			.expect("serializable; qed")
		};
		let first = sse_json(&make(Delta { role: Some("assistant"), content: Some(String::new()) }, None, None)).ok();
		let stream = sse_stream(st.clone(), p, first, move |text, finish, usage| {
			let delta = Delta { role: None, content: text };
			make(delta, finish, usage)
		});
		return Sse::new(stream).keep_alive(KeepAlive::default()).into_response();
	}
	let Prepared { rx, mut paid, id, model, plan, .. } = p;
	match answer(&st, rx, &mut paid, &plan).await {
		Ok(a) => Json(ChatResponse {
			id,
			object: "chat.completion",
			created,
			model,
			choices: vec![ChatChoice {
				index: 0,
				message: AssistantMessage { role: "assistant", content: a.text },
				logprobs: None,
				finish_reason: Some(a.reason),
			}],
			usage: a.usage,
			attribution: a.attribution,
			receipt: a.receipt,
		})
		.into_response(),
		Err(e) => error_response(&e),
	}
}

fn fail(st: &AppState, e: ApiError) -> Response {
	st.metrics.requests.with_label_values(&[if e.status == 429 { "busy" } else { "error" }]).inc();
	error_response(&e)
}
