//! Content-addressed store for contribution bytes.
//!
//! Objects are named by the hex content root of their bytes (`openledger_primitives::evidence`:
//! a Merkle root over 1 KiB chunks bound to the length, so any byte range can be proven),
//! fanned out by the first two bytes (`ab/cd/abcd…`). Every write and every read checks the bytes against the name, so a corrupt
//! or tampered object is never handed out. Backed by `object_store`: a local directory by
//! default; `s3://`, `gs://` and `az://` URLs with the `cloud` feature.

use anyhow::{anyhow, bail, Context, Result};
use object_store::{local::LocalFileSystem, path::Path, ObjectStore, PutPayload};
use sp_core::H256;
use std::sync::Arc;

/// A content-addressed store.
#[derive(Clone)]
pub struct ContentStore {
	inner: Arc<dyn ObjectStore>,
	prefix: Path,
	/// What was given on the command line, for URIs recorded on chain.
	location: String,
}

impl std::fmt::Debug for ContentStore {
	fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
		f.debug_struct("ContentStore").field("location", &self.location).finish()
	}
}

/// The content hash recorded on chain: the content root of the canonical bytes.
pub fn content_hash(bytes: &[u8]) -> H256 {
	openledger_primitives::evidence::content_root(bytes)
}

impl ContentStore {
	/// Opens a store at a local directory (created if missing) or, with the `cloud` feature, an
	/// object-store URL.
	pub fn open(location: &str) -> Result<Self> {
		if location.contains("://") && !location.starts_with("file://") {
			let url = url::Url::parse(location).with_context(|| format!("bad store URL {location}"))?;
			let (store, prefix) = object_store::parse_url(&url)
				.with_context(|| format!("cannot open store {location} (built without the `cloud` feature?)"))?;
			return Ok(Self { inner: Arc::from(store), prefix, location: location.to_owned() });
		}
		let dir = location.trim_start_matches("file://");
		std::fs::create_dir_all(dir).with_context(|| format!("cannot create store directory {dir}"))?;
		let fs = LocalFileSystem::new_with_prefix(dir)?;
		let abs = std::fs::canonicalize(dir)?;
		Ok(Self { inner: Arc::new(fs), prefix: Path::default(), location: format!("file://{}", abs.display()) })
	}

	fn path(&self, hash: &H256) -> Path {
		let hex = hex::encode(hash.as_bytes());
		let mut p = self.prefix.clone();
		for part in [&hex[0..2], &hex[2..4], &hex[..]] {
			p = p.child(part);
		}
		p
	}

	/// The URI under which `hash` is stored (recorded on chain with the contribution).
	pub fn uri(&self, hash: &H256) -> String {
		let hex = hex::encode(hash.as_bytes());
		format!("{}/{}/{}/{}", self.location.trim_end_matches('/'), &hex[0..2], &hex[2..4], hex)
	}

	/// Stores `bytes`, returning their hash. Idempotent: an object already present is checked,
	/// not rewritten.
	pub async fn put(&self, bytes: &[u8]) -> Result<H256> {
		let hash = content_hash(bytes);
		if self.get(&hash).await.is_ok() {
			return Ok(hash);
		}
		let path = self.path(&hash);
		self.inner.put(&path, PutPayload::from(bytes.to_vec())).await.with_context(|| format!("writing {path}"))?;
		// Read back: what is stored must hash to its name.
		self.get(&hash).await.context("verifying the object just written")?;
		Ok(hash)
	}

	/// The bytes stored under `hash`, checked against it.
	pub async fn get(&self, hash: &H256) -> Result<Vec<u8>> {
		let path = self.path(hash);
		let bytes = self.inner.get(&path).await.map_err(|e| anyhow!("reading {path}: {e}"))?.bytes().await?;
		if content_hash(&bytes) != *hash {
			bail!("object {path} is corrupt: its bytes do not hash to its name");
		}
		Ok(bytes.to_vec())
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[tokio::test]
	async fn put_get_roundtrip_and_tamper_detection() {
		let dir = tempfile::tempdir().unwrap();
		let store = ContentStore::open(dir.path().to_str().unwrap()).unwrap();
		let h = store.put(b"hello datanet").await.unwrap();
		assert_eq!(h, content_hash(b"hello datanet"));
		assert_ne!(h, H256(sp_core::hashing::blake2_256(b"hello datanet")), "a content root, not a flat hash");
		assert_eq!(store.get(&h).await.unwrap(), b"hello datanet");
		assert_eq!(store.put(b"hello datanet").await.unwrap(), h, "idempotent");
		assert!(store.uri(&h).starts_with("file://"));
		assert!(store.uri(&h).ends_with(&hex::encode(h.as_bytes())));

		// Tamper with the object on disk: reads refuse it.
		let hex = hex::encode(h.as_bytes());
		let file = dir.path().join(&hex[0..2]).join(&hex[2..4]).join(&hex);
		std::fs::write(&file, b"evil").unwrap();
		let err = store.get(&h).await.unwrap_err().to_string();
		assert!(err.contains("corrupt"), "{err}");
		assert!(store.get(&content_hash(b"absent")).await.is_err());
	}
}
