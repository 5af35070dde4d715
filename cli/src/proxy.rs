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
	ensure!(cfg.api_key.as_ref().is_none_or(|k| k.len() >= 16), "OPENLEDGER_PROXY_KEY must be at least 16 characters");
	let spent = spent_on(&cfg.spend_log, today())?;
	let log = std::fs::OpenOptions::new()
		.create(true)
		.append(true)
		.open(&cfg.spend_log)
		.with_context(|| format!("opening the spend log {}", cfg.spend_log.display()))?;
	// No redirects: the voucher header must go to the worker named, nowhere else.
	let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).redirect(reqwest::redirect::Policy::none()).build()?;
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
	/// Refuses browsers and foreign hosts (a web page must not spend through a local proxy:
	/// requests carrying `Origin`, or naming another `Host` — DNS rebinding — are refused) and
	/// callers without the key when one is set.
	fn admit(&self, headers: &HeaderMap) -> Result<(), Response> {
		if headers.contains_key(header::ORIGIN) {
			return Err(error(403, "browser_refused", "the pay-proxy does not serve browsers (a request with an Origin header)"));
		}
		let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
		let hostname = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
		if self.cfg.api_key.is_none() && !matches!(hostname, "127.0.0.1" | "localhost" | "[::1]") {
			return Err(error(403, "host_refused", format!("the pay-proxy answers only to loopback host names, not {host:?}")));
		}
		if !self.authorized(headers) {
			return Err(error(401, "invalid_api_key", "send the proxy's key as `Authorization: Bearer <key>`"));
		}
		Ok(())
	}

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
		let age = cards.0.elapsed();
		if age > Duration::from_secs(30) || (!cards.1.contains_key(name) && age > Duration::from_secs(5)) {
			let resp = self.http.get(self.worker_url("/v1/models")).timeout(Duration::from_secs(10)).send().await?.error_for_status()?;
			let list: serde_json::Value = serde_json::from_slice(&read_capped(resp, MAX_MODELS_BYTES).await?)?;
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

/// Checks a receipt the worker returned (`receipt.signed`: SCALE `(Receipt, sr25519
/// signature)`) against the voucher we sent, the worker's registered key, the voucher's maximum
/// and the answer text we received.
fn check_receipt(r: &serde_json::Value, voucher: &SignedVoucher, signing_key: &[u8; 32], text: &str) -> Result<SignedReceipt> {
	let hex_ = r["signed"].as_str().context("the receipt has no `signed` field")?;
	let bytes = hex::decode(hex_.trim_start_matches("0x")).context("the receipt is not hex")?;
	let mut input = &bytes[..];
	let signed = SignedReceipt::decode(&mut input).context("the receipt does not decode")?;
	ensure!(input.is_empty(), "trailing bytes after the receipt");
	let rc = &signed.receipt;
	ensure!(rc.voucher == voucher.voucher && rc.payer_signature == voucher.signature, "the receipt names another voucher");
	ensure!(
		signed.worker_signed_with(&sr25519::Public::from_raw(*signing_key)),
		"the receipt is not signed by the worker's key registered on chain"
	);
	ensure!(rc.fee <= voucher.voucher.max_fee, "the receipt charges {} above the voucher's {}", rc.fee, voucher.voucher.max_fee);
	ensure!(
		rc.output_len as usize == text.len() && rc.output_root == content_root(text.as_bytes()),
		"the receipt's output_root is not the answer received"
	);
	Ok(signed)
}

impl Paid {
	/// Checks the receipt the worker returned for the answer text `text`; logs the spend when
	/// it holds. When it does not, the voucher stays reserved at its maximum and the chain is
	/// watched for what the worker settles with it. Returns the error to show the client.
	fn finish(&mut self, receipt: Option<&serde_json::Value>, text: &str) -> Option<String> {
		self.done = true;
		match receipt.context("the worker returned no receipt").and_then(|r| check_receipt(r, &self.voucher, &self.signing_key, text)) {
			Ok(r) => {
				let entry = self.entry(r.receipt.fee, r.receipt.prompt_tokens, r.receipt.completion_tokens, true, None);
				self.proxy.settle(self.max, Some(entry));
				confirm(self.proxy.clone(), self.voucher.clone(), self.name.clone(), r.receipt.fee);
				None
			},
			Err(e) => {
				let err = format!("{e:#}");
				watch(self.proxy.clone(), self.voucher.clone(), self.max, self.name.clone(), true, err.clone());
				Some(err)
			},
		}
	}

	fn entry(&self, fee: Balance, pt: u32, ct: u32, verified: bool, err: Option<String>) -> serde_json::Value {
		entry_of(&self.voucher, &self.name, self.max, fee.to_string(), pt.into(), ct.into(), verified, err)
	}
}

#[allow(clippy::too_many_arguments)]
fn entry_of(
	v: &SignedVoucher,
	name: &str,
	max: Balance,
	fee: String,
	pt: serde_json::Value,
	ct: serde_json::Value,
	verified: bool,
	err: Option<String>,
) -> serde_json::Value {
	serde_json::json!({
		"time": unix_secs(), "requestId": format!("{:?}", v.request_id), "model": name,
		"modelId": v.voucher.model, "modelVersion": v.voucher.model_version,
		"worker": v.voucher.worker.to_ss58check(), "maxFee": max.to_string(), "fee": fee,
		"promptTokens": pt, "completionTokens": ct, "verified": verified, "error": err,
	})
}

/// Watches the chain for a receipt of `v` until the voucher has expired (the chain refuses it
/// after `expires_at`): a worker that cut an answer short, failed, or returned a receipt that
/// did not hold can still settle the voucher, and what it settles is logged and counted. With
/// `hold`, the voucher's maximum stays reserved until then (so such a worker cannot take the
/// proxy past its cap); without, the reservation is released now (an honest refusal).
fn watch(proxy: Arc<Proxy>, v: SignedVoucher, max: Balance, name: String, hold: bool, why: String) {
	if !hold {
		proxy.settle(max, None);
	}
	tokio::spawn(async move {
		let entry = settled(&proxy, &v).await.map(|r| {
			let fee = r["fee"].as_str().unwrap_or("0").to_string();
			let why = format!("{why}; fee read from the settled receipt");
			entry_of(&v, &name, max, fee, r["promptTokens"].clone(), r["completionTokens"].clone(), false, Some(why))
		});
		proxy.settle(if hold { max } else { 0 }, entry);
	});
}

/// The chain's receipt of voucher `v` once it settles, or `None` when the voucher expired
/// unsettled (it can no longer cost anything) or the chain stayed stalled past any sensible
/// wait (blocks are 6 s: twice the voucher's lifetime, plus ten minutes).
async fn settled(proxy: &Proxy, v: &SignedVoucher) -> Option<serde_json::Value> {
	let give_up = Instant::now() + Duration::from_secs(u64::from(proxy.cfg.expires_in) * 12 + 600);
	while Instant::now() < give_up {
		if let Ok(r) = proxy.chain.rpc::<serde_json::Value>("attribution_getReceipt", rpc_params![v.request_id]).await {
			return Some(r);
		}
		if proxy.chain.best_number().await.is_ok_and(|n| n > v.voucher.expires_at.saturating_add(10)) {
			return None;
		}
		tokio::time::sleep(Duration::from_secs(3)).await;
	}
	None
}

/// After a verified receipt: the chain settles a voucher, not a receipt, so a worker that
/// signed two receipts for it could settle the dearer one. When the settled fee exceeds the one
/// logged, the difference is logged and counted (the log stays equal to the escrow decrease).
fn confirm(proxy: Arc<Proxy>, v: SignedVoucher, name: String, logged: Balance) {
	tokio::spawn(async move {
		let Some(r) = settled(&proxy, &v).await else { return };
		let chain_fee: Balance = r["fee"].as_str().and_then(|f| f.parse().ok()).unwrap_or(logged);
		if chain_fee > logged {
			let why = format!("the worker settled {chain_fee}, not the {logged} of the receipt it returned");
			let e = entry_of(&v, &name, v.voucher.max_fee, (chain_fee - logged).to_string(), 0.into(), 0.into(), false, Some(why));
			proxy.settle(0, Some(e));
		}
	});
}

impl Drop for Paid {
	/// A request that ended without its receipt (the client or the worker went away): the
	/// worker bills what it sent, so learn the fee from the chain once the receipt settles.
	fn drop(&mut self) {
		if !self.done {
			self.done = true;
			watch(self.proxy.clone(), self.voucher.clone(), self.max, self.name.clone(), true, "the answer was cut off".into());
		}
	}
}

async fn models(State(p): State<Arc<Proxy>>, headers: HeaderMap) -> Response {
	if let Err(r) = p.admit(&headers) {
		return r;
	}
	match p.http.get(p.worker_url("/v1/models")).timeout(Duration::from_secs(10)).send().await {
		Ok(r) => {
			let status = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
			match read_capped(r, MAX_MODELS_BYTES).await {
				Ok(b) => (status, [(header::CONTENT_TYPE, "application/json")], b).into_response(),
				Err(e) => error(502, "bad_worker_response", format!("{e:#}")),
			}
		},
		Err(e) => error(502, "worker_unreachable", format!("the worker did not answer: {e}")),
	}
}

/// `GET /v1/spend`: today's spend and the limits.
async fn spend(State(p): State<Arc<Proxy>>, headers: HeaderMap) -> Response {
	if let Err(r) = p.admit(&headers) {
		return r;
	}
	let mut b = p.budget.lock().expect("not poisoned; qed");
	b.roll(today());
	Json(serde_json::json!({
		"payer": account_of(&p.payer).to_ss58check(), "spentToday": b.spent.to_string(), "inFlight": b.reserved.to_string(),
		"dailyCap": p.cfg.daily_cap.map(|c| c.to_string()), "maxFee": p.cfg.max_fee.to_string(),
	}))
	.into_response()
}

async fn paid(State(p): State<Arc<Proxy>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
	if let Err(r) = p.admit(&headers) {
		return r;
	}
	if !headers
		.get(header::CONTENT_TYPE)
		.and_then(|v| v.to_str().ok())
		.is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")))
	{
		// Also what keeps a web page's form or `no-cors` fetch from spending.
		return error(415, "unsupported_media_type", "send the body as Content-Type: application/json");
	}
	let path = uri.path().to_string();
	let chat = path.ends_with("/chat/completions");
	let json: serde_json::Value = match serde_json::from_slice(&body) {
		Ok(v) => v,
		Err(e) => return error(400, "invalid_json", format!("the body is not JSON: {e}")),
	};
	let Some(name) = json["model"].as_str().map(str::to_owned) else {
		return error(400, "model_required", "the request names no `model`");
	};
	if json.get("n").and_then(|n| n.as_u64()).is_some_and(|n| n != 1) {
		return error(400, "unsupported_request", "the pay-proxy checks one choice per request: `n` must be 1");
	}
	let rh = match request_hash(&path, &json) {
		Ok(h) => h,
		Err(e) => return error(400, "unsupported_request", format!("{e:#}")),
	};
	let stream = json["stream"].as_bool().unwrap_or(false);
	let (card, key, quote) = match prepare(&p, &name).await {
		Ok(x) => x,
		Err(r) => return r,
	};
	let best = match p.chain.best_number().await {
		Ok(n) => n,
		Err(e) => return error(502, "chain_unreachable", format!("{e:#}")),
	};
	let max = match p.reserve() {
		Ok(m) => m,
		Err(r) => return r,
	};
	let spec = VoucherSpec {
		worker: card.worker.clone(),
		quote,
		max_fee: max,
		nonce: fresh_nonce(),
		expires_at: best.saturating_add(p.cfg.expires_in),
		request_hash: rh,
	};
	let voucher = sign_voucher(&p.payer, p.chain.genesis(), &spec);
	let mut req = p
		.http
		.post(p.worker_url(&path))
		.header(header::CONTENT_TYPE, "application/json")
		.header(VOUCHER_HEADER, &voucher.header)
		.body(body);
	if !stream {
		req = req.timeout(Duration::from_secs(600));
	}
	if let Some(a) = headers.get(header::ACCEPT) {
		req = req.header(header::ACCEPT, a);
	}
	let mut paid = Paid { proxy: p.clone(), voucher, signing_key: key, name, max, done: false };
	let resp = match tokio::time::timeout(Duration::from_secs(600), req.send()).await {
		Ok(Ok(r)) => r,
		// Never reached the worker, went away or said nothing: `Drop` watches the chain for
		// what it served.
		Ok(Err(e)) => return no_retry(error(502, "worker_unreachable", format!("the worker did not answer: {e}"))),
		Err(_) => return no_retry(error(504, "worker_timeout", "the worker sent no answer within 600 s")),
	};
	let status = resp.status().as_u16();
	if status != 200 {
		// An honest worker refuses before serving (4xx): the reservation is released, and the
		// chain is still watched in case it settles the voucher anyway. Anything else (a 5xx, a
		// 2xx or 3xx that is not an answer) may come after serving: the maximum stays reserved
		// until the chain says.
		paid.done = true;
		let refused_before_serving = (400..500).contains(&status);
		watch(p.clone(), paid.voucher.clone(), max, paid.name.clone(), !refused_before_serving, format!("the worker answered {status}"));
		let bytes = read_capped(resp, MAX_ANSWER_BYTES).await.unwrap_or_default();
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
		return no_retry((status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response());
	}
	if !stream {
		let v: serde_json::Value = match read_capped(resp, MAX_ANSWER_BYTES).await.and_then(|b| Ok(serde_json::from_slice(&b)?)) {
			Ok(v) => v,
			Err(e) => return no_retry(error(502, "bad_worker_response", format!("the worker's answer did not arrive whole: {e:#}"))),
		};
		let text = match v["choices"].as_array().map(Vec::as_slice) {
			Some([c]) => if chat { c["message"]["content"].as_str() } else { c["text"].as_str() }.unwrap_or("").to_string(),
			_ => String::new(),
		};
		if let Some(e) = paid.finish(v.get("receipt"), &text) {
			return no_retry(error(502, "receipt_invalid", format!("the worker's receipt does not hold: {e}")));
		}
		return Json(v).into_response();
	}
	// A stream: pass every event on as it comes, collecting the text and the receipt; `[DONE]`
	// is held back until the receipt is checked, so an error reaches the client before it.
	let mut upstream = resp.bytes_stream();
	let out = async_stream_body(move |tx| async move {
		let (mut buf, mut text, mut receipt, mut choices_ok) = (Vec::<u8>::new(), String::new(), None::<serde_json::Value>, true);
		let stream_deadline = Instant::now() + STREAM_TOTAL;
		let mut finished = false;
		'read: loop {
			let chunk = match tokio::time::timeout(STREAM_IDLE, upstream.next()).await {
				Ok(Some(Ok(c))) => c,
				_ => break, // ended, failed or stalled: `Drop` of `paid` watches the chain if unfinished
			};
			if Instant::now() > stream_deadline {
				break;
			}
			buf.extend_from_slice(&chunk);
			while let Some(i) = buf.iter().position(|&b| b == b'\n') {
				let line: Vec<u8> = buf.drain(..=i).collect();
				let body = line.strip_suffix(b"\n").unwrap_or(&line);
				let body = body.strip_suffix(b"\r").unwrap_or(body);
				if let Some(data) = body.strip_prefix(b"data:") {
					let data = data.strip_prefix(b" ").unwrap_or(data);
					// Clients stop at anything starting `[DONE]`: hold all of it back.
					if data.trim_ascii().starts_with(b"[DONE]") {
						finished = true;
						break 'read;
					}
					if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
						match v["choices"].as_array().map(Vec::as_slice) {
							Some([c]) => {
								let t = if chat { c["delta"]["content"].as_str() } else { c["text"].as_str() };
								text.push_str(t.unwrap_or(""));
							},
							Some([]) | None => {},
							Some(_) => choices_ok = false,
						}
						if let Some(r) = v.get("receipt") {
							receipt = Some(r.clone());
						}
					}
				}
				if tx.send(Ok(Bytes::from(line))).await.is_err() {
					return; // the client went away: `Drop` of `paid` takes over
				}
			}
			// What is left is one unfinished line.
			if buf.len() > MAX_SSE_LINE || text.len() > MAX_ANSWER_BYTES {
				break;
			}
		}
		if !finished {
			// Cut off, stalled or oversized: say so (no `[DONE]`); `Drop` of `paid` watches the
			// chain for what the worker bills.
			let ev = serde_json::json!({ "error": { "message": "the worker's stream ended before its receipt", "type": "server_error", "code": "stream_incomplete" } });
			tx.send(Ok(Bytes::from(format!("data: {ev}\n\n")))).await.ok();
			return;
		}
		let err = if choices_ok { paid.finish(receipt.as_ref(), &text) } else { paid.finish(None, "") };
		if let Some(e) = err {
			let ev = serde_json::json!({ "error": { "message": format!("the worker's receipt does not hold: {e}"), "type": "invalid_request_error", "code": "receipt_invalid" } });
			if tx.send(Ok(Bytes::from(format!("data: {ev}\n\n")))).await.is_err() {
				return;
			}
		}
		// The client's own `[DONE]` (it may be gone; nothing is left to do then).
		tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await.ok();
	});
	Response::builder()
		.status(200)
		.header(header::CONTENT_TYPE, "text/event-stream")
		.header(header::CACHE_CONTROL, "no-cache")
		.body(out)
		.unwrap_or_else(|_| error(500, "internal", "building the response"))
}

/// Largest answer body read from a worker.
const MAX_ANSWER_BYTES: usize = 16 << 20;
/// Largest model list read from a worker.
const MAX_MODELS_BYTES: usize = 1 << 20;
/// Longest SSE line buffered.
const MAX_SSE_LINE: usize = 1 << 20;
/// A stream that sends nothing for this long is abandoned.
const STREAM_IDLE: Duration = Duration::from_secs(120);
/// No stream lasts longer.
const STREAM_TOTAL: Duration = Duration::from_secs(1800);


/// The body of `resp`, refusing more than `cap` bytes.
async fn read_capped(resp: reqwest::Response, cap: usize) -> Result<Vec<u8>> {
	let mut out = Vec::new();
	let mut s = resp.bytes_stream();
	while let Some(c) = s.next().await {
		let c = c?;
		ensure!(out.len() + c.len() <= cap, "the worker's answer is over {cap} bytes");
		out.extend_from_slice(&c);
	}
	Ok(out)
}

/// Tells OpenAI clients not to retry: a retry would sign (and perhaps pay) a new voucher.
fn no_retry(mut r: Response) -> Response {
	r.headers_mut().insert("x-should-retry", header::HeaderValue::from_static("false"));
	r
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

#[cfg(test)]
mod tests {
	use super::*;
	use crate::money::Quote;
	use codec::Encode;
	use openledger_primitives::receipt::{AttributionMethod, Receipt};
	use sp_core::Pair;

	/// A voucher, and the worker's signed receipt for the answer `text` at `fee`.
	fn fixture(text: &str, fee: Balance) -> (SignedVoucher, sr25519::Pair, SignedReceipt) {
		let payer = sr25519::Pair::from_string("//Eve", None).unwrap();
		let worker = sr25519::Pair::from_string("//Charlie//receipts", None).unwrap();
		let quote = Quote { model: 1, version: 1, terms: H256::repeat_byte(1), per_request: 0, per_1k_tokens: 0 };
		let spec = VoucherSpec { worker: AccountId::new([3; 32]), quote, max_fee: 1_000, nonce: 1, expires_at: 50, request_hash: H256::repeat_byte(2) };
		let v = sign_voucher(&payer, H256::repeat_byte(9), &spec);
		let receipt = Receipt {
			voucher: v.voucher.clone(),
			payer_signature: v.signature.clone(),
			prompt_tokens: 3,
			completion_tokens: 4,
			fee,
			output_len: text.len() as u32,
			output_root: content_root(text.as_bytes()),
			claims_root: H256::zero(),
			claims: 0,
			method: AttributionMethod::SpanMatch,
			attribution: Default::default(),
		};
		let worker_signature = worker.sign(&receipt.signing_payload());
		(v, worker, SignedReceipt { receipt, worker_signature })
	}

	fn json(s: &SignedReceipt) -> serde_json::Value {
		serde_json::json!({ "signed": format!("0x{}", hex::encode(s.encode())) })
	}

	#[test]
	fn receipts_are_checked_against_voucher_key_fee_and_answer() {
		let (v, worker, good) = fixture("It held so.", 700);
		let key = worker.public().0;
		assert!(check_receipt(&json(&good), &v, &key, "It held so.").is_ok());
		// Another answer than the one received (a byte differs, or one is missing).
		for text in ["It held sO.", "It held so", ""] {
			assert!(check_receipt(&json(&good), &v, &key, text).unwrap_err().to_string().contains("output_root"), "{text:?}");
		}
		// Signed by another key than the one registered on chain.
		assert!(check_receipt(&json(&good), &v, &[7; 32], "It held so.").unwrap_err().to_string().contains("not signed"));
		// A fee above the voucher's maximum, even when properly signed.
		let (v2, w2, dear) = fixture("It held so.", 1_001);
		assert!(check_receipt(&json(&dear), &v2, &w2.public().0, "It held so.").unwrap_err().to_string().contains("above"));
		// A receipt of another voucher (ours differs by its nonce).
		let mut other = v.clone();
		other.voucher.nonce = 2;
		assert!(check_receipt(&json(&good), &other, &key, "It held so.").unwrap_err().to_string().contains("another voucher"));
		// Garbage, trailing bytes, a missing field.
		let mut long = good.encode();
		long.push(0);
		assert!(check_receipt(&serde_json::json!({ "signed": format!("0x{}", hex::encode(long)) }), &v, &key, "It held so.").is_err());
		assert!(check_receipt(&serde_json::json!({ "signed": "0xzz" }), &v, &key, "It held so.").is_err());
		assert!(check_receipt(&serde_json::json!({ "fee": "0" }), &v, &key, "It held so.").is_err());
	}

	#[test]
	fn budget_rolls_over_at_midnight_keeping_reservations() {
		let mut b = Budget { day: 10, spent: 500, reserved: 70 };
		b.roll(10);
		assert_eq!((b.spent, b.reserved), (500, 70));
		b.roll(11);
		assert_eq!((b.day, b.spent, b.reserved), (11, 0, 70));
	}

	#[test]
	fn the_spend_log_is_summed_per_day() {
		let dir = tempfile::tempdir().unwrap();
		let p = dir.path().join("spend.jsonl");
		std::fs::write(&p, "{\"time\":86400,\"fee\":\"5\"}\n{\"time\":90000,\"fee\":\"7\"}\nnot json\n{\"time\":1,\"fee\":\"100\"}\n\n").unwrap();
		assert_eq!(spent_on(&p, 1).unwrap(), 12);
		assert_eq!(spent_on(&p, 0).unwrap(), 100);
		assert_eq!(spent_on(&dir.path().join("none"), 0).unwrap(), 0);
	}
}
