//! `openledger studio`: serves OpenLedger Studio (the web app built from `web/` into
//! `web/dist`) on loopback, with the two things a page cannot do by itself:
//!
//! - `POST /api/store`: puts a file's bytes into the content store (the same store and content
//!   hash as `openledger contribute`) and answers `{hash, size, tokens, uri}`, which the page
//!   then contributes on chain with the user's own key (the server never signs);
//! - `GET /api/config`: the node's JSON-RPC URL and whether a worker is configured;
//! - `/api/worker/v1/…`: the worker's OpenAI API (models, completions, chat completions,
//!   receipts) and ModelFactory jobs, passed through with the voucher header, so the page needs
//!   no CORS from the worker. The factory is the worker's admin API: the page sends the admin
//!   token the user types (`Authorization`), which is passed on for `/v1/factory/jobs…` only;
//!   the Studio holds no token of its own.
//!
//! It listens on loopback only, and answers only requests addressed to it by a loopback name
//! (`Host`: no DNS rebinding) and, for writes, sent by its own page (`Origin`; uploads must be
//! `application/octet-stream`, which a cross-site form cannot send without a preflight): a web
//! page the user visits elsewhere can neither fill the content store nor reach the worker
//! through it. Its own page is served with a content security policy, no framing, no sniffing.

use crate::store::ContentStore;
use anyhow::{bail, Context, Result};
use axum::{
	body::Bytes,
	extract::{DefaultBodyLimit, Path, Request, State},
	http::{header, HeaderValue, StatusCode},
	middleware::{self, Next},
	response::{IntoResponse, Response},
	routing::{get, post},
	Json, Router,
};
use std::{net::SocketAddr, path::PathBuf, sync::Arc};

/// Largest file one upload may carry.
pub const MAX_UPLOAD: usize = 16 << 20;

pub struct Config {
	pub listen: SocketAddr,
	/// The built app (`web/dist`).
	pub dir: PathBuf,
	pub store: String,
	/// The node's JSON-RPC URL, as the browser reaches it.
	pub rpc: String,
	/// The worker's HTTP URL (the Studio server passes the page's requests to it).
	pub worker: Option<String>,
}

struct AppState {
	/// `Content-Security-Policy` of the page: scripts and styles from the Studio only (and the
	/// WebAssembly of the sr25519 code), connections to the Studio and the node only.
	csp: HeaderValue,
	/// Uploads stored at once (each holds its body in memory).
	uploads: tokio::sync::Semaphore,
	dir: PathBuf,
	store: ContentStore,
	rpc: String,
	worker: Option<String>,
	http: reqwest::Client,
}

/// Largest request body passed to the worker (its own limit is 2 MiB).
const MAX_WORKER_BODY: usize = 2 << 20;
/// Largest worker response passed back.
const MAX_WORKER_RESPONSE: usize = 8 << 20;

/// The worker paths the page may reach: the public OpenAI API, receipts, and factory jobs.
fn worker_path_allowed(path: &str) -> bool {
	let fixed = ["v1/models", "v1/completions", "v1/chat/completions", "v1/factory/jobs"];
	let id = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
	fixed.contains(&path) || path.strip_prefix("v1/receipts/").is_some_and(id) || path.strip_prefix("v1/factory/jobs/").is_some_and(id)
}

/// Whether the user's `Authorization` header is passed on: to the factory only, never to the
/// paid API (a voucher pays there, not a token).
fn passes_authorization(path: &str) -> bool {
	path.starts_with("v1/factory/")
}

pub fn router(cfg: &Config) -> Result<Router> {
	let dir = std::fs::canonicalize(&cfg.dir).with_context(|| format!("the Studio's files: {} (run scripts/build.sh)", cfg.dir.display()))?;
	if !dir.join("index.html").is_file() {
		bail!("{} has no index.html (run scripts/build.sh)", dir.display());
	}
	let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(300)).redirect(reqwest::redirect::Policy::none()).build()?;
	let worker = cfg.worker.as_ref().map(|w| w.trim_end_matches('/').to_string());
	let rpc_http = cfg.rpc.replacen("ws", "http", 1);
	let csp = HeaderValue::from_str(&format!(
		"default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
		 connect-src 'self' {} {rpc_http}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
		cfg.rpc
	))
	.context("the node URL cannot go into a header")?;
	let st = Arc::new(AppState {
		csp,
		uploads: tokio::sync::Semaphore::new(2),
		dir,
		store: ContentStore::open(&cfg.store)?,
		rpc: cfg.rpc.clone(),
		worker,
		http,
	});
	Ok(Router::new()
		.route("/", get(index))
		.route("/api/config", get(config))
		.route("/api/store", post(put).layer(DefaultBodyLimit::max(MAX_UPLOAD)))
		.route("/api/worker/{*path}", get(to_worker).post(to_worker).layer(DefaultBodyLimit::max(MAX_WORKER_BODY)))
		.route("/{*path}", get(file))
		.layer(middleware::from_fn_with_state(st.clone(), guard))
		.with_state(st))
}

/// Whether `host` (a `Host` header) names this machine's loopback: `127.0.0.1`, `localhost` or
/// `[::1]`, with any port.
fn loopback_host(host: &str) -> bool {
	let name = match host.strip_prefix('[') {
		Some(rest) => rest.split(']').next().unwrap_or(""),
		None => host.rsplit_once(':').map_or(host, |(n, _)| n),
	};
	matches!(name, "127.0.0.1" | "localhost" | "::1")
}

/// Refuses requests not addressed to a loopback name, and writes not sent by the Studio's own
/// page; adds the page's security headers.
async fn guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
	let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
	if !loopback_host(&host) {
		return (StatusCode::FORBIDDEN, "the Studio answers requests to a loopback address only").into_response();
	}
	if req.method() != axum::http::Method::GET && req.method() != axum::http::Method::HEAD {
		let origin = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok());
		if origin != Some(format!("http://{host}").as_str()) {
			return (StatusCode::FORBIDDEN, "writes are accepted from the Studio's own page only").into_response();
		}
	}
	let mut resp = next.run(req).await;
	let h = resp.headers_mut();
	h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
	h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
	h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
	h.insert(header::CONTENT_SECURITY_POLICY, st.csp.clone());
	resp
}

pub async fn run(cfg: Config) -> Result<()> {
	if !cfg.listen.ip().is_loopback() {
		bail!("the Studio listens on loopback only (its store endpoint writes files for anyone who reaches it): {}", cfg.listen);
	}
	let app = router(&cfg)?;
	let listener = tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
	println!("OpenLedger Studio on http://{} (node {}, worker {})", listener.local_addr()?, cfg.rpc, cfg.worker.as_deref().unwrap_or("none"));
	axum::serve(listener, app).await?;
	Ok(())
}

async fn index(State(st): State<Arc<AppState>>) -> Response {
	serve(&st.dir, "index.html").await
}

async fn file(State(st): State<Arc<AppState>>, Path(path): Path<String>) -> Response {
	serve(&st.dir, &path).await
}

/// A file of the app: plain relative paths only (no `..`, no absolute or hidden parts).
async fn serve(dir: &std::path::Path, rel: &str) -> Response {
	let ok = !rel.is_empty() && rel.split('/').all(|p| !p.is_empty() && !p.starts_with('.') && !p.contains('\\'));
	if !ok {
		return (StatusCode::NOT_FOUND, "not found").into_response();
	}
	let path = dir.join(rel);
	let kind = match path.extension().and_then(|e| e.to_str()) {
		Some("html") => "text/html; charset=utf-8",
		Some("js") => "text/javascript; charset=utf-8",
		Some("css") => "text/css; charset=utf-8",
		Some("svg") => "image/svg+xml",
		Some("png") => "image/png",
		Some("json") | Some("map") => "application/json",
		Some("wasm") => "application/wasm",
		_ => "application/octet-stream",
	};
	match tokio::fs::read(&path).await {
		Ok(bytes) => ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], bytes).into_response(),
		Err(_) => (StatusCode::NOT_FOUND, "not found").into_response(),
	}
}

async fn config(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
	Json(serde_json::json!({ "rpc": st.rpc, "worker": st.worker.is_some(), "maxUpload": MAX_UPLOAD }))
}

async fn to_worker(State(st): State<Arc<AppState>>, Path(path): Path<String>, method: axum::http::Method, headers: axum::http::HeaderMap, body: Bytes) -> Response {
	let fail = |status: StatusCode, msg: String| (status, Json(serde_json::json!({ "error": { "message": msg } }))).into_response();
	let Some(base) = &st.worker else { return fail(StatusCode::NOT_FOUND, "the Studio was started without --worker".into()) };
	if !worker_path_allowed(&path) {
		return fail(StatusCode::NOT_FOUND, format!("/{path} is not passed to the worker"));
	}
	let mut req = st.http.request(method, format!("{base}/{path}"));
	for name in [header::CONTENT_TYPE.as_str(), "x-openledger-voucher"] {
		if let Some(v) = headers.get(name) {
			req = req.header(name, v);
		}
	}
	if passes_authorization(&path) {
		if let Some(v) = headers.get(header::AUTHORIZATION) {
			req = req.header(header::AUTHORIZATION, v);
		}
	}
	let mut resp = match req.body(body).send().await {
		Ok(r) => r,
		Err(e) => return fail(StatusCode::BAD_GATEWAY, format!("the worker did not answer: {e}")),
	};
	let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
	if resp.content_length().is_some_and(|n| n > MAX_WORKER_RESPONSE as u64) {
		return fail(StatusCode::BAD_GATEWAY, "the worker's answer is too large".into());
	}
	// Read with a cap whatever the worker says its length is (a stream has none).
	let mut body = Vec::new();
	loop {
		match resp.chunk().await {
			Ok(Some(c)) if body.len() + c.len() <= MAX_WORKER_RESPONSE => body.extend_from_slice(&c),
			Ok(Some(_)) => return fail(StatusCode::BAD_GATEWAY, "the worker's answer is too large".into()),
			Ok(None) => break,
			Err(e) => return fail(StatusCode::BAD_GATEWAY, format!("reading the worker's answer: {e}")),
		}
	}
	// Always JSON to the page: whatever the worker (or something in front of it) claims, nothing
	// it sends is rendered as a document of the Studio's origin.
	(status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn put(State(st): State<Arc<AppState>>, headers: axum::http::HeaderMap, body: Bytes) -> Response {
	if headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) != Some("application/octet-stream") {
		return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(serde_json::json!({ "error": "send the file as application/octet-stream" }))).into_response();
	}
	let Ok(_slot) = st.uploads.acquire().await else {
		return (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": "shutting down" }))).into_response();
	};
	if body.is_empty() {
		return (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": "an empty file has nothing to contribute" }))).into_response();
	}
	match st.store.put(&body).await {
		Ok(hash) => Json(serde_json::json!({
			"hash": format!("0x{}", hex::encode(hash.as_bytes())),
			"size": body.len(),
			// What `openledger contribute` records: whitespace-separated words, at least 1.
			"tokens": String::from_utf8_lossy(&body).split_whitespace().count().max(1),
			"uri": st.store.uri(&hash),
		}))
		.into_response(),
		Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({ "error": format!("{e:#}") }))).into_response(),
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[tokio::test]
	async fn files_stay_inside_the_app_folder() {
		let dir = tempfile::tempdir().unwrap();
		std::fs::write(dir.path().join("index.html"), "<!doctype html>").unwrap();
		std::fs::write(dir.path().join(".secret"), "x").unwrap();
		let ok = serve(dir.path(), "index.html").await;
		assert_eq!(ok.status(), StatusCode::OK);
		assert_eq!(ok.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
		for bad in ["../etc/passwd", "a/../../x", ".secret", "", "/etc/passwd", "a\\..\\b"] {
			assert_eq!(serve(dir.path(), bad).await.status(), StatusCode::NOT_FOUND, "{bad}");
		}
	}

	#[test]
	fn only_loopback_names_are_answered() {
		for ok in ["127.0.0.1:3000", "localhost:3000", "[::1]:3000", "localhost"] {
			assert!(loopback_host(ok), "{ok}");
		}
		for bad in ["evil.example:3000", "127.0.0.1.evil.example:3000", "", "[::2]:3000", "localhost.:3000", "10.0.0.1:3000"] {
			assert!(!loopback_host(bad), "{bad}");
		}
	}

	#[test]
	fn only_the_public_worker_api_is_passed_through() {
		for ok in ["v1/models", "v1/completions", "v1/chat/completions", "v1/receipts/0xab12", "v1/factory/jobs", "v1/factory/jobs/3"] {
			assert!(worker_path_allowed(ok), "{ok}");
		}
		for bad in ["v1/receipts/", "v1/receipts/../factory", "metrics", "v1/evidence/0x1", "v1/models/../factory", "v1/factory/jobs/../../metrics", "v1/factory"] {
			assert!(!worker_path_allowed(bad), "{bad}");
		}
		assert!(passes_authorization("v1/factory/jobs") && passes_authorization("v1/factory/jobs/3"));
		assert!(!passes_authorization("v1/completions") && !passes_authorization("v1/receipts/0x1"));
	}
}
