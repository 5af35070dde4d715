//! The OpenAI-compatible HTTP API (axum). This layer owns the wire types only; it reaches the
//! engine through [`Engine::submit`] and a per-request event channel. Dropping that channel —
//! the client went away, the response future was dropped — cancels the sequence.

pub mod wire;

use crate::adapters::{AdapterCache, AdapterError};
use crate::attribution::span::{Attribution, AttributionParams, SpanIndex};
use crate::chain::billing::{self, Accepted, Refusal, VOUCHER_HEADER};
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
	/// Vouchers and receipts, when the worker is connected to a chain.
	pub chain: Option<Arc<ChainState>>,
	/// Influence attribution (`--influence`): base weights in differentiable form.
	pub influence: Option<Arc<crate::factory::influence::Attributor>>,
	/// Fine-tuning jobs (`/v1/factory/jobs`), when the worker runs with a content store.
	pub factory: Option<Arc<crate::factory::jobs::Factory>>,
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
	})
}

/// A paid request's accepted voucher. Dropping it without a queued receipt (the request
/// failed or the client went away) frees the request id for another try.
struct Paid {
	accepted: Accepted,
	chain: Arc<ChainState>,
	queued: bool,
}

impl Drop for Paid {
	fn drop(&mut self) {
		if !self.queued {
			self.chain.queue.release(&self.accepted.request_id);
		}
	}
}

fn refusal(r: Refusal) -> ApiError {
	ApiError { status: r.status, kind: "invalid_request_error", message: r.message, param: Some("voucher"), code: Some(r.code) }
}

fn chain_unavailable(e: anyhow::Error) -> ApiError {
	ApiError { status: 503, kind: "server_error", message: format!("the chain cannot be reached: {e:#}"), param: None, code: None }
}

/// Checks the request's voucher (when the worker bills on chain) before anything is generated.
async fn accept_voucher(st: &AppState, headers: &HeaderMap, model: &str, max_tokens: usize) -> Result<Option<Paid>, ApiError> {
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
	let accepted = billing::check(&chain.registry, model, voucher, sig, max_tokens as u32).map_err(refusal)?;
	let client = chain.conn.get().await.map_err(chain_unavailable)?;
	let held = crate::chain::escrow_of(&client, &accepted.voucher.payer).await.map_err(chain_unavailable)?;
	if held < accepted.voucher.max_fee {
		return Err(refusal(Refusal {
			status: 402,
			code: "insufficient_escrow",
			message: format!("the payer's escrow ({held}) is below the voucher's maximum fee ({})", accepted.voucher.max_fee),
		}));
	}
	if !chain.queue.reserve(accepted.request_id) {
		return Err(refusal(Refusal { status: 409, code: "voucher_used", message: "this voucher has already been used".into() }));
	}
	Ok(Some(Paid { accepted, chain: chain.clone(), queued: false }))
}

/// How a request's answer is to be attributed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AttrMode {
	Auto,
	Span,
	Influence,
}

/// What attribution needs besides the answer: the mode, the adapter and the prompt's tokens.
struct AttrPlan {
	mode: AttrMode,
	adapter: Option<Arc<LoraAdapter>>,
	prompt: Vec<u32>,
}

impl AttrPlan {
	fn new(st: &AppState, requested: Option<&str>, adapter: Option<Arc<LoraAdapter>>, prompt: Vec<u32>) -> Result<Self, ApiError> {
		let mode = match requested.unwrap_or("auto") {
			"auto" => AttrMode::Auto,
			"span" => AttrMode::Span,
			"influence" => AttrMode::Influence,
			other => return Err(ApiError::invalid(format!("attribution {other:?}: one of auto, span, influence"), "attribution")),
		};
		if mode == AttrMode::Influence {
			let ok = match (&st.influence, &adapter) {
				(Some(inf), Some(a)) => inf.has_cache(a),
				_ => false,
			};
			if !ok {
				return Err(ApiError::invalid(
					"influence attribution needs an adapter trained by the factory (it caches the training gradients) on a worker started with --influence",
					"attribution",
				));
			}
		}
		Ok(Self { mode, adapter, prompt })
	}

	/// The adapter to attribute by influence, if this request is.
	fn influence<'a>(&'a self, st: &'a AppState) -> Option<(&'a crate::factory::influence::Attributor, &'a Arc<LoraAdapter>)> {
		let (inf, a) = (st.influence.as_deref()?, self.adapter.as_ref()?);
		match self.mode {
			AttrMode::Influence => Some((inf, a)),
			AttrMode::Auto if inf.suits(a) => Some((inf, a)),
			_ => None,
		}
	}
}

fn influence_json(r: &crate::factory::influence::InfluenceResult) -> serde_json::Value {
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
	use openledger_primitives::receipt::{AttributionMethod, ContributionRef};
	let (mut attribution, method, credited) = match plan.influence(st) {
		Some((inf, adapter)) if !ids.is_empty() => {
			let r = tokio::task::block_in_place(|| inf.attribute(adapter, &plan.prompt, ids, crate::factory::influence::Method::DataInf))
				.map_err(|e| ApiError { status: 500, kind: "server_error", message: format!("influence attribution: {e:#}"), param: None, code: None })?
				.ok_or_else(|| ApiError::invalid("the adapter has no cached training gradients", "attribution"))?;
			let credited: Vec<(ContributionRef, u32)> =
				r.shares.iter().map(|((datanet, version, index), p, _)| (ContributionRef { datanet: *datanet, version: *version, index: *index }, *p)).collect();
			(Some(influence_json(&r)), AttributionMethod::Influence, credited)
		},
		_ => {
			let a = st.spans.as_ref().map(|idx| idx.attribute(ids, &AttributionParams::default()));
			let credited = a.as_ref().map(billing::span_credits).unwrap_or_default();
			(a.as_ref().map(attribution_json), AttributionMethod::SpanMatch, credited)
		},
	};
	let Some(p) = paid.as_mut() else { return Ok((attribution, None)) };
	let signed = billing::receipt(
		&p.accepted,
		&p.chain.signing_key,
		usage.prompt_tokens as u32,
		usage.completion_tokens as u32,
		text,
		method,
		&credited,
	);
	let queue = p.chain.queue.clone();
	let to_disk = signed.clone();
	tokio::task::spawn_blocking(move || queue.push(&to_disk))
		.await
		.map_err(|e| anyhow::anyhow!("{e}"))
		.and_then(|r| r)
		.map_err(|e| ApiError { status: 500, kind: "server_error", message: format!("the receipt could not be queued: {e:#}"), param: None, code: None })?;
	p.queued = true;
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
	});
	Ok((attribution, Some(receipt)))
}

/// `GET /v1/receipts/{request id}`: where a paid request's receipt is.
async fn receipt_status(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
	let Some(chain) = &st.chain else {
		return error_response(&ApiError { status: 404, ..ApiError::invalid("this worker does not bill on chain", "id") });
	};
	let id = match hex::decode(id.trim_start_matches("0x")) {
		Ok(b) if b.len() == 32 => crate::chain::RequestId::from_slice(&b),
		_ => return error_response(&ApiError::invalid("a request id is 0x followed by 64 hex digits", "id")),
	};
	Json(chain.queue.status(&id)).into_response()
}

fn factory_of(st: &AppState) -> Result<&Arc<crate::factory::jobs::Factory>, Response> {
	st.factory.as_ref().ok_or_else(|| {
		error_response(&ApiError {
			status: 404,
			..ApiError::invalid("the factory is off: start the worker with --chain-rpc, --base-model-id and --content-store", "url")
		})
	})
}

/// `POST /v1/factory/jobs`: queue a fine-tuning job (`factory::jobs::JobRequest`); 202 with the job.
async fn factory_submit(State(st): State<Arc<AppState>>, body: Result<Json<crate::factory::jobs::JobRequest>, JsonRejection>) -> Response {
	let f = match factory_of(&st) {
		Ok(f) => f,
		Err(r) => return r,
	};
	let Json(request) = match body {
		Ok(b) => b,
		Err(rej) => return error_response(&json_error(rej)),
	};
	match f.submit(request) {
		Ok(job) => (StatusCode::ACCEPTED, Json(job)).into_response(),
		Err(e) => error_response(&ApiError::invalid(e, "body")),
	}
}

/// `GET /v1/factory/jobs`: every job, oldest first.
async fn factory_list(State(st): State<Arc<AppState>>) -> Response {
	match factory_of(&st) {
		Ok(f) => Json(serde_json::json!({ "object": "list", "data": f.list() })).into_response(),
		Err(r) => r,
	}
}

/// `GET /v1/factory/jobs/{id}`: a job's state, progress, report and model id.
async fn factory_job(State(st): State<Arc<AppState>>, Path(id): Path<u64>) -> Response {
	let f = match factory_of(&st) {
		Ok(f) => f,
		Err(r) => return r,
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
		.route("/v1/factory/jobs", post(factory_submit).get(factory_list))
		.route("/v1/factory/jobs/{id}", get(factory_job))
		.route("/health", get(health))
		.route("/metrics", get(metrics))
		.fallback(|| async { error_response(&ApiError { status: 404, ..ApiError::invalid("no such route", "url") }) })
		.with_state(state)
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
	ApiError { code: None, ..ApiError::invalid(format!("We could not parse the JSON body of your request: {}", rej.body_text()), "body") }
}

async fn models(State(st): State<Arc<AppState>>) -> Json<ModelList> {
	let mut data = vec![ModelCard {
		id: st.base_name.clone(),
		object: "model",
		created: st.created,
		owned_by: "openledger".into(),
		parent: None,
	}];
	for name in st.adapters.list() {
		data.push(ModelCard {
			id: name,
			object: "model",
			created: st.created,
			owned_by: "openledger".into(),
			parent: Some(st.base_name.clone()),
		});
	}
	Json(ModelList { object: "list", data })
}

async fn health(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
	let (resident, bytes) = st.adapters.resident();
	Json(serde_json::json!({
		"status": "ok", "model": st.base_name, "in_flight": st.engine.in_flight(),
		"adapters_resident": resident, "adapter_bytes": bytes,
	}))
}

async fn metrics(State(st): State<Arc<AppState>>) -> impl IntoResponse {
	([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.metrics.render())
}

/// The model field names the base model or an adapter in the store.
async fn resolve(st: &AppState, model: &str) -> Result<Option<Arc<LoraAdapter>>, ApiError> {
	if model == st.base_name {
		return Ok(None);
	}
	st.adapters.get(model).await.map(Some).map_err(|e| match e {
		AdapterError::NotFound(_) => ApiError {
			status: 404,
			code: Some("model_not_found"),
			..ApiError::invalid(format!("The model `{model}` does not exist or you do not have access to it."), "model")
		},
		AdapterError::Invalid(..) => ApiError {
			status: 500,
			kind: "server_error",
			message: e.to_string(),
			param: Some("model"),
			code: None,
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

async fn prepare(st: &AppState, headers: &HeaderMap, common: &CommonParams, prompt: &str, prefix: &str) -> Result<Prepared, ApiError> {
	let adapter = resolve(st, &common.model).await?;
	let tokens = st.tokenizer.encode(prompt).map_err(|e| ApiError::invalid(e.to_string(), "prompt"))?;
	let params = common.sampling(tokens.len(), st.engine.max_len)?;
	// The prompt's tokens are kept only for an influence gradient.
	let prompt = if st.influence.is_some() { tokens.clone() } else { Vec::new() };
	let plan = AttrPlan::new(st, common.attribution.as_deref(), adapter.clone(), prompt)?;
	let paid = accept_voucher(st, headers, &common.model, tokens.len() + params.max_tokens).await?;
	let rx = st.engine.submit(tokens, adapter, params).map_err(|e| match e {
		SubmitError::Busy(_) => {
			st.metrics.rejected_busy.inc();
			ApiError { status: 429, kind: "server_overloaded", message: e.to_string(), param: None, code: Some("busy") }
		},
		SubmitError::Stopped => ApiError { status: 503, kind: "server_error", message: e.to_string(), param: None, code: None },
	})?;
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
	let (text, reason, usage, ids) = collect(rx).await?;
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
	let prompts = req.prompt.clone().into_vec();
	if prompts.len() != 1 {
		return fail(&st, ApiError::invalid("exactly one prompt per request is supported", "prompt"));
	}
	let p = match prepare(&st, &headers, &req.common, &prompts[0], "cmpl").await {
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
	if req.messages.is_empty() {
		return fail(&st, ApiError::invalid("messages must not be empty", "messages"));
	}
	let messages = match req.messages.iter().map(ChatMessageIn::to_message).collect::<Result<Vec<_>, _>>() {
		Ok(m) => m,
		Err(e) => return fail(&st, e),
	};
	let prompt = match st.tokenizer.apply_chat_template(&messages) {
		Ok(p) => p,
		Err(e) => return fail(&st, ApiError::invalid(e.to_string(), "messages")),
	};
	let p = match prepare(&st, &headers, &req.common, &prompt, "chatcmpl").await {
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
