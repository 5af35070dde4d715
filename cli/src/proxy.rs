//! `openledger pay-proxy`: the OpenAI API on localhost, paid from the payer's escrow.
//!
//! A developer keeps the `openai` client and points `base_url` at the proxy. For each
//! completion or chat request the proxy
//!
//! 1. maps the model name to its on-chain model through the worker's `/v1/models` and checks
//!    the price terms and the worker's registration **against the chain** (the worker is not
//!    trusted for either);
//! 2. reserves the voucher's maximum fee against the daily cap (`--daily-cap`), refusing with
//!    HTTP 402 `budget_exceeded` when nothing is left;
//! 3. signs a voucher for exactly this request (its request hash) and forwards the body
//!    unchanged with `X-OpenLedger-Voucher`;
//! 4. checks the receipt that comes back — the voucher it names is ours, the worker signed it
//!    with the key registered on chain, the fee is within the voucher, and the `output_root` is
//!    the content root of the text we received — and appends one JSON line per paid request to
//!    the spend log (`--spend-log`).
//!
//! A stream (`"stream": true`) is passed through chunk by chunk and checked at its end. When a
//! client goes away mid-stream, the worker bills what it sent: the proxy then learns the fee
//! from the chain once the receipt settles and logs it. Requests the worker refuses before
//! serving cost nothing and are not logged.

use crate::{
	chain::{account_of, Chain},
	money::{fmt_open, fresh_nonce, request_hash, sign_voucher, Quote, SignedVoucher, VoucherSpec},
};
use anyhow::{anyhow, bail, ensure, Context, Result};
use axum::{
	body::{Body, Bytes},
	extract::{DefaultBodyLimit, State},
	http::{header, HeaderMap, StatusCode, Uri},
	response::{IntoResponse, Response},
	routing::{get, post},
	Json, Router,
};
use codec::Decode;
use futures::StreamExt;
use jsonrpsee::rpc_params;
use openledger_primitives::{evidence::content_root, AccountId, Balance};
use sp_core::{crypto::Ss58Codec, sr25519, H256};
use std::{
	collections::HashMap,
	io::Write,
	net::SocketAddr,
	path::PathBuf,
	sync::{Arc, Mutex},
	time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// The worker's voucher header.
const VOUCHER_HEADER: &str = "x-openledger-voucher";

/// The receipt a worker signs, as the runtime decodes it.
type SignedReceipt = pallet_attribution::SignedReceiptOf<openledger_runtime::Runtime>;

/// How the proxy spends.
#[derive(Clone, Debug)]
pub struct Config {
	pub listen: SocketAddr,
	pub worker: String,
	/// The voucher maximum per request.
	pub max_fee: Balance,
	/// Most spent (plus reserved by requests in flight) per UTC day.
	pub daily_cap: Option<Balance>,
	pub spend_log: PathBuf,
	/// Blocks a voucher stays valid.
	pub expires_in: u32,
	/// When set, clients must send `Authorization: Bearer <key>` (the `openai` client's
	/// `api_key`).
	pub api_key: Option<String>,
}

/// Spend of the current UTC day.
#[derive(Debug, Default)]
struct Budget {
	day: u64,
	spent: Balance,
	reserved: Balance,
}

impl Budget {
	fn roll(&mut self, today: u64) {
		if self.day != today {
			*self = Budget { day: today, spent: 0, reserved: self.reserved };
		}
	}
}

struct Proxy {
	chain: Chain,
	payer: sr25519::Pair,
	cfg: Config,
	http: reqwest::Client,
	budget: Mutex<Budget>,
	log: Mutex<std::fs::File>,
	/// Model name → the worker's on-chain card, refreshed when a name is missing or after 30 s.
	cards: tokio::sync::Mutex<(Instant, HashMap<String, Card>)>,
}

/// What the worker says a name is billed as (checked against the chain before use).
#[derive(Clone, Debug)]
struct Card {
	worker: AccountId,
	model: u32,
	version: u32,
	terms: H256,
}

fn today() -> u64 {
	unix_secs() / 86_400
}

fn unix_secs() -> u64 {
	SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What the log says was spent on `day` (unparsable lines are skipped with a warning).
fn spent_on(path: &std::path::Path, day: u64) -> Result<Balance> {
	let Ok(text) = std::fs::read_to_string(path) else { return Ok(0) };
	let mut sum: Balance = 0;
	for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
		let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
			eprintln!("pay-proxy: skipping line {} of {}: not JSON", i + 1, path.display());
			continue;
		};
		if v["time"].as_u64().map(|t| t / 86_400) == Some(day) {
			sum = sum.saturating_add(v["fee"].as_str().and_then(|f| f.parse().ok()).unwrap_or(0));
		}
	}
	Ok(sum)
}

/// An OpenAI-style error object.
fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
	let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
	let kind = if status == StatusCode::PAYMENT_REQUIRED { "insufficient_quota" } else { "invalid_request_error" };
	(status, Json(serde_json::json!({ "error": { "message": message.into(), "type": kind, "param": null, "code": code } })))
		.into_response()
}

/// Runs the proxy until the process is stopped.
pub async fn run(chain: Chain, payer: sr25519::Pair, cfg: Config) -> Result<()> {
	ensure!(
		cfg.listen.ip().is_loopback() || cfg.api_key.is_some(),
		"the proxy spends your escrow for whoever reaches it: listen on a loopback address, or set OPENLEDGER_PROXY_KEY"
	);
	ensure!(cfg.max_fee > 0, "--max-fee must be above zero");
	let spent = spent_on(&cfg.spend_log, today())?;
	let log = std::fs::OpenOptions::new()
		.create(true)
		.append(true)
		.open(&cfg.spend_log)
		.with_context(|| format!("opening the spend log {}", cfg.spend_log.display()))?;
	let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build()?;
	let listener = tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
	let addr = listener.local_addr()?;
	let proxy = Arc::new(Proxy {
		chain,
		payer,
		http,
		budget: Mutex::new(Budget { day: today(), spent, reserved: 0 }),
		log: Mutex::new(log),
		cards: tokio::sync::Mutex::new((Instant::now() - Duration::from_secs(3600), HashMap::new())),
		cfg,
	});
	eprintln!(
		"pay-proxy: OpenAI API on http://{addr}/v1 paying as {} through {} (at most {} OPEN per request{}), spend log {}",
		account_of(&proxy.payer).to_ss58check(),
		proxy.cfg.worker,
		fmt_open(proxy.cfg.max_fee),
		proxy.cfg.daily_cap.map(|c| format!(", {} OPEN per day, {} spent today", fmt_open(c), fmt_open(spent))).unwrap_or_default(),
		proxy.cfg.spend_log.display()
	);
	// Printed on stdout, one line, for scripts that start the proxy on port 0.
	println!("{}", serde_json::json!({ "listening": format!("http://{addr}") }));
	let app = Router::new()
		.route("/v1/completions", post(paid))
		.route("/v1/chat/completions", post(paid))
		.route("/v1/models", get(models))
		.route("/v1/spend", get(spend))
		.route("/health", get(|| async { "ok" }))
		.layer(DefaultBodyLimit::max(4 << 20))
		.with_state(proxy);
	axum::serve(listener, app).await?;
	Ok(())
}

impl Proxy {
	fn authorized(&self, headers: &HeaderMap) -> bool {
		let Some(key) = &self.cfg.api_key else { return true };
		let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
		// Constant time in the key's bytes.
		given.is_some_and(|g| g.len() == key.len() && g.bytes().zip(key.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0)
	}

	fn worker_url(&self, path: &str) -> String {
		format!("{}{path}", self.cfg.worker.trim_end_matches('/'))
	}

	/// The worker's card for `name`, re-read from the worker when it is unknown or stale.
	async fn card(&self, name: &str) -> Result<Option<Card>> {
		let mut cards = self.cards.lock().await;
		if cards.0.elapsed() > Duration::from_secs(30) || !cards.1.contains_key(name) {
			let list: serde_json::Value = self.http.get(self.worker_url("/v1/models")).send().await?.error_for_status()?.json().await?;
			let mut map = HashMap::new();
			for m in list["data"].as_array().into_iter().flatten() {
				let (Some(id), Some(o)) = (m["id"].as_str(), m.get("openledger")) else { continue };
				let card = (|| -> Result<Card> {
					Ok(Card {
						worker: AccountId::from_ss58check(o["worker"].as_str().context("worker")?).map_err(|e| anyhow!("{e:?}"))?,
						model: o["model"].as_u64().context("model")? as u32,
						version: o["version"].as_u64().context("version")? as u32,
						terms: crate::hash_of(&o["terms"])?,
					})
				})();
				if let Ok(c) = card {
					map.insert(id.to_string(), c);
				}
			}
			*cards = (Instant::now(), map);
		}
		Ok(cards.1.get(name).cloned())
	}

	/// The worker's receipt-signing key as registered on chain, checking that it serves `model`.
	async fn signing_key(&self, worker: &AccountId, model: u32) -> Result<[u8; 32]> {
		let key = format!("0x{}", hex::encode(openledger_primitives::tx::worker_storage_key(worker)));
		let raw: Option<String> = self.chain.rpc("state_getStorage", rpc_params![key]).await?;
		let raw = hex::decode(raw.context("the worker is not bonded on chain")?.trim_start_matches("0x"))?;
		let head = openledger_primitives::tx::WorkerRecordHead::decode(&mut &raw[..]).context("decoding the worker record")?;
		ensure!(head.models.contains(&model), "the worker is not registered on chain to serve model {model}");
		Ok(head.signing_key)
	}

	/// Reserves up to `cfg.max_fee` of today's budget: the voucher's maximum.
	fn reserve(&self) -> Result<Balance, Response> {
		let mut b = self.budget.lock().expect("not poisoned; qed");
		b.roll(today());
		let left = match self.cfg.daily_cap {
			Some(cap) => cap.saturating_sub(b.spent).saturating_sub(b.reserved),
			None => Balance::MAX,
		};
		if left == 0 {
			return Err(error(
				402,
				"budget_exceeded",
				format!(
					"the pay-proxy's daily cap of {} OPEN is used up: {} OPEN spent today, {} OPEN held by requests in flight",
					fmt_open(self.cfg.daily_cap.unwrap_or(0)),
					fmt_open(b.spent),
					fmt_open(b.reserved)
				),
			));
		}
		let max = self.cfg.max_fee.min(left);
		b.reserved += max;
		Ok(max)
	}

	/// Releases a reservation of `max`, counting `fee` as spent, and logs it when it was spent.
	fn settle(&self, max: Balance, entry: Option<serde_json::Value>) {
		let fee = entry.as_ref().and_then(|e| e["fee"].as_str()).and_then(|f| f.parse::<Balance>().ok()).unwrap_or(0);
		{
			let mut b = self.budget.lock().expect("not poisoned; qed");
			b.reserved = b.reserved.saturating_sub(max);
			b.roll(today());
			b.spent = b.spent.saturating_add(fee);
		}
		if let Some(e) = entry {
			let mut f = self.log.lock().expect("not poisoned; qed");
			if let Err(err) = writeln!(f, "{e}").and_then(|_| f.flush()) {
				eprintln!("pay-proxy: could not append to the spend log: {err}");
			}
		}
	}
}

/// One paid request in flight.
struct Paid {
	proxy: Arc<Proxy>,
	voucher: SignedVoucher,
	signing_key: [u8; 32],
	name: String,
	max: Balance,
	done: bool,
}

impl Paid {
	/// Checks the receipt the worker returned for the answer text `text` and logs the spend.
	/// Returns the error to show the client when the receipt does not hold.
	fn finish(&mut self, receipt: Option<&serde_json::Value>, text: &str) -> Option<String> {
		self.done = true;
		let checked = receipt.context("the worker returned no receipt").and_then(|r| self.check(r, text));
		let (fee, verified, err) = match &checked {
			Ok(r) => (r.receipt.fee, true, None),
			// The worker will settle what it signed: count its fee when it decodes at all.
			Err(e) => (
				receipt.and_then(|r| r["fee"].as_str()).and_then(|f| f.parse().ok()).unwrap_or(self.max).min(self.max),
				false,
				Some(format!("{e:#}")),
			),
		};
		let (pt, ct) = checked.as_ref().map(|r| (r.receipt.prompt_tokens, r.receipt.completion_tokens)).unwrap_or_default();
		let entry = serde_json::json!({
			"time": unix_secs(), "requestId": format!("{:?}", self.voucher.request_id), "model": self.name,
			"modelId": self.voucher.voucher.model, "modelVersion": self.voucher.voucher.model_version,
			"worker": self.voucher.voucher.worker.to_ss58check(), "maxFee": self.max.to_string(), "fee": fee.to_string(),
			"promptTokens": pt, "completionTokens": ct, "verified": verified, "error": err,
		});
		self.proxy.settle(self.max, Some(entry));
		err
	}

	fn check(&self, r: &serde_json::Value, text: &str) -> Result<SignedReceipt> {
		let hex_ = r["signed"].as_str().context("the receipt has no `signed` field")?;
		let bytes = hex::decode(hex_.trim_start_matches("0x")).context("the receipt is not hex")?;
		let signed = SignedReceipt::decode(&mut &bytes[..]).context("the receipt does not decode")?;
		let rc = &signed.receipt;
		ensure!(
			rc.voucher == self.voucher.voucher && rc.payer_signature == self.voucher.signature,
			"the receipt names another voucher"
		);
		ensure!(
			signed.worker_signed_with(&sr25519::Public::from_raw(self.signing_key)),
			"the receipt is not signed by the worker's key registered on chain"
		);
		ensure!(rc.fee <= self.max, "the receipt charges {} above the voucher's {}", rc.fee, self.max);
		ensure!(
			rc.output_len as usize == text.len() && rc.output_root == content_root(text.as_bytes()),
			"the receipt's output_root is not the answer received"
		);
		Ok(signed)
	}
}

impl Drop for Paid {
	/// A request that ended without its receipt (the client or the worker went away): the
	/// worker bills what it sent, so learn the fee from the chain once the receipt settles.
	fn drop(&mut self) {
		if self.done {
			return;
		}
		let (proxy, id, max, name) = (self.proxy.clone(), self.voucher.request_id, self.max, self.name.clone());
		let voucher = self.voucher.voucher.clone();
		tokio::spawn(async move {
			let deadline = Instant::now() + Duration::from_secs(600);
			let mut entry = None;
			while Instant::now() < deadline {
				if let Ok(r) = proxy.chain.rpc::<serde_json::Value>("attribution_getReceipt", rpc_params![id]).await {
					entry = Some(serde_json::json!({
						"time": unix_secs(), "requestId": format!("{id:?}"), "model": name, "modelId": voucher.model,
						"modelVersion": voucher.model_version, "worker": voucher.worker.to_ss58check(),
						"maxFee": max.to_string(), "fee": r["fee"].as_str().unwrap_or("0"),
						"promptTokens": r["promptTokens"], "completionTokens": r["completionTokens"],
						"verified": false, "error": "the answer was cut off; fee read from the settled receipt",
					}));
					break;
				}
				tokio::time::sleep(Duration::from_secs(2)).await;
			}
			proxy.settle(max, entry);
		});
	}
}

async fn models(State(p): State<Arc<Proxy>>, headers: HeaderMap) -> Response {
	if !p.authorized(&headers) {
		return error(401, "invalid_api_key", "send the proxy's key as `Authorization: Bearer <key>`");
	}
	match p.http.get(p.worker_url("/v1/models")).send().await {
		Ok(r) => {
			let status = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
			(status, [(header::CONTENT_TYPE, "application/json")], r.bytes().await.unwrap_or_default()).into_response()
		},
		Err(e) => error(502, "worker_unreachable", format!("the worker did not answer: {e}")),
	}
}

/// `GET /v1/spend`: today's spend and the limits.
async fn spend(State(p): State<Arc<Proxy>>, headers: HeaderMap) -> Response {
	if !p.authorized(&headers) {
		return error(401, "invalid_api_key", "send the proxy's key as `Authorization: Bearer <key>`");
	}
	let b = p.budget.lock().expect("not poisoned; qed");
	Json(serde_json::json!({
		"payer": account_of(&p.payer).to_ss58check(), "spentToday": b.spent.to_string(), "inFlight": b.reserved.to_string(),
		"dailyCap": p.cfg.daily_cap.map(|c| c.to_string()), "maxFee": p.cfg.max_fee.to_string(),
	}))
	.into_response()
}

async fn paid(State(p): State<Arc<Proxy>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
	if !p.authorized(&headers) {
		return error(401, "invalid_api_key", "send the proxy's key as `Authorization: Bearer <key>`");
	}
	let path = uri.path().to_string();
	let json: serde_json::Value = match serde_json::from_slice(&body) {
		Ok(v) => v,
		Err(e) => return error(400, "invalid_json", format!("the body is not JSON: {e}")),
	};
	let Some(name) = json["model"].as_str().map(str::to_owned) else {
		return error(400, "model_required", "the request names no `model`");
	};
	let rh = match request_hash(&path, &json) {
		Ok(h) => h,
		Err(e) => return error(400, "unsupported_request", format!("{e:#}")),
	};
	let stream = json["stream"].as_bool().unwrap_or(false);
	let (card, key, quote) = match prepare(&p, &name).await {
		Ok(x) => x,
		Err(r) => return r,
	};
	let max = match p.reserve() {
		Ok(m) => m,
		Err(r) => return r,
	};
	let expires_at = match p.chain.rpc::<serde_json::Value>("chain_getHeader", rpc_params![]).await {
		Ok(h) => h["number"]
			.as_str()
			.and_then(|n| u32::from_str_radix(n.trim_start_matches("0x"), 16).ok())
			.unwrap_or(0)
			.saturating_add(p.cfg.expires_in),
		Err(e) => {
			p.settle(max, None);
			return error(502, "chain_unreachable", format!("{e:#}"));
		},
	};
	let spec = VoucherSpec { worker: card.worker.clone(), quote, max_fee: max, nonce: fresh_nonce(), expires_at, request_hash: rh };
	let voucher = sign_voucher(&p.payer, p.chain.genesis(), &spec);
	let mut req = p
		.http
		.post(p.worker_url(&path))
		.header(header::CONTENT_TYPE, "application/json")
		.header(VOUCHER_HEADER, &voucher.header)
		.body(body);
	if let Some(a) = headers.get(header::ACCEPT) {
		req = req.header(header::ACCEPT, a);
	}
	let mut paid = Paid { proxy: p.clone(), voucher, signing_key: key, name, max, done: false };
	let resp = match req.send().await {
		Ok(r) => r,
		// Never reached the worker, or it went away: `Drop` learns from the chain whether it
		// served anything.
		Err(e) => return error(502, "worker_unreachable", format!("the worker did not answer: {e}")),
	};
	let status = resp.status().as_u16();
	if status != 200 {
		// Refused before serving: nothing is billed.
		paid.done = true;
		p.settle(max, None);
		let bytes = resp.bytes().await.unwrap_or_default();
		if status == 402 && max < p.cfg.max_fee {
			if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
				if v["error"]["code"] == "fee_above_voucher" {
					return error(
						402,
						"budget_exceeded",
						format!("the daily cap leaves {} OPEN, below what this request may cost: {}", fmt_open(max), v["error"]["message"]),
					);
				}
			}
		}
		let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
		return (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response();
	}
	if !stream {
		let v: serde_json::Value = match resp.json().await {
			Ok(v) => v,
			Err(e) => return error(502, "bad_worker_response", format!("the worker's answer did not arrive whole: {e}")),
		};
		let c = &v["choices"][0];
		let text = c["text"].as_str().or_else(|| c["message"]["content"].as_str()).unwrap_or("").to_string();
		if let Some(e) = paid.finish(v.get("receipt"), &text) {
			return error(502, "receipt_invalid", format!("the worker's receipt does not hold: {e}"));
		}
		return Json(v).into_response();
	}
	// A stream: pass every chunk on as it comes, collecting the text and the receipt.
	let mut upstream = resp.bytes_stream();
	let out = async_stream_body(move |tx| async move {
		let (mut buf, mut text, mut receipt) = (Vec::<u8>::new(), String::new(), None::<serde_json::Value>);
		while let Some(chunk) = upstream.next().await {
			let Ok(chunk) = chunk else { return };
			buf.extend_from_slice(&chunk);
			while let Some(i) = buf.iter().position(|&b| b == b'\n') {
				let line: Vec<u8> = buf.drain(..=i).collect();
				if let Some(data) = line.strip_prefix(b"data: ") {
					if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
						let c = &v["choices"][0];
						if let Some(t) = c["text"].as_str().or_else(|| c["delta"]["content"].as_str()) {
							text.push_str(t);
						}
						if let Some(r) = v.get("receipt") {
							receipt = Some(r.clone());
						}
					}
				}
			}
			if tx.send(Ok(chunk)).await.is_err() {
				return; // the client went away: `Drop` of `paid` takes over
			}
		}
		if receipt.is_some() {
			if let Some(e) = paid.finish(receipt.as_ref(), &text) {
				let ev = serde_json::json!({ "error": { "message": format!("the worker's receipt does not hold: {e}"), "type": "invalid_request_error", "code": "receipt_invalid" } });
				let _ = tx.send(Ok(Bytes::from(format!("data: {ev}\n\n")))).await;
			}
		}
	});
	Response::builder()
		.status(200)
		.header(header::CONTENT_TYPE, "text/event-stream")
		.header(header::CACHE_CONTROL, "no-cache")
		.body(out)
		.unwrap_or_else(|_| error(500, "internal", "building the response"))
}

/// A body fed by `f` through a channel (the task ends when the client goes away).
fn async_stream_body<F, Fut>(f: F) -> Body
where
	F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>) -> Fut,
	Fut: std::future::Future<Output = ()> + Send + 'static,
{
	let (tx, rx) = tokio::sync::mpsc::channel(16);
	tokio::spawn(f(tx));
	Body::from_stream(tokio_stream_of(rx))
}

fn tokio_stream_of<T: Send + 'static>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> + Send {
	futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The card for `name`, checked against the chain: the worker serves it on chain, with the
/// terms the chain has now; the signing key receipts must carry.
async fn prepare(p: &Proxy, name: &str) -> Result<(Card, [u8; 32], Quote), Response> {
	let card = match p.card(name).await {
		Ok(Some(c)) => c,
		Ok(None) => return Err(error(404, "model_not_found", format!("the worker does not bill {name:?} on chain (see GET /v1/models)"))),
		Err(e) => return Err(error(502, "worker_unreachable", format!("reading the worker's models: {e:#}"))),
	};
	let checked = async {
		let quote = Quote::of(&p.chain, card.model).await?;
		if (quote.version, quote.terms) != (card.version, card.terms) {
			bail!(
				"the worker bills {name:?} as model {} version {} with terms {:?}, the chain has version {} with terms {:?}",
				card.model,
				card.version,
				card.terms,
				quote.version,
				quote.terms
			);
		}
		let key = p.signing_key(&card.worker, card.model).await?;
		Ok((key, quote))
	};
	match checked.await {
		Ok((key, quote)) => Ok((card, key, quote)),
		Err(e) => Err(error(502, "worker_not_on_chain", format!("{e:#}"))),
	}
}
