//! `openledger studio`: serves OpenLedger Studio (the web app built from `web/` into
//! `web/dist`) on loopback, with the two things a page cannot do by itself:
//!
//! - `POST /api/store`: puts a file's bytes into the content store (the same store and content
//!   hash as `openledger contribute`) and answers `{hash, size, tokens, uri}`, which the page
//!   then contributes on chain with the user's own key (the server never signs);
//! - `GET /api/config`: the node's JSON-RPC URL and the worker's URL the page should talk to.
//!
//! It listens on loopback only: the store endpoint writes files for whoever can reach it.

use crate::store::ContentStore;
use anyhow::{bail, Context, Result};
use axum::{
	body::Bytes,
	extract::{DefaultBodyLimit, Path, State},
	http::{header, StatusCode},
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
	/// The worker's HTTP URL, as the browser reaches it.
	pub worker: Option<String>,
}

struct AppState {
	dir: PathBuf,
	store: ContentStore,
	rpc: String,
	worker: Option<String>,
}

pub fn router(cfg: &Config) -> Result<Router> {
	let dir = std::fs::canonicalize(&cfg.dir).with_context(|| format!("the Studio's files: {} (run scripts/build.sh)", cfg.dir.display()))?;
	if !dir.join("index.html").is_file() {
		bail!("{} has no index.html (run scripts/build.sh)", dir.display());
	}
	let st = Arc::new(AppState { dir, store: ContentStore::open(&cfg.store)?, rpc: cfg.rpc.clone(), worker: cfg.worker.clone() });
	Ok(Router::new()
		.route("/", get(index))
		.route("/api/config", get(config))
		.route("/api/store", post(put).layer(DefaultBodyLimit::max(MAX_UPLOAD)))
		.route("/{*path}", get(file))
		.with_state(st))
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
	Json(serde_json::json!({ "rpc": st.rpc, "worker": st.worker, "maxUpload": MAX_UPLOAD }))
}

async fn put(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
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
}
