//! Secrets of a running worker: the admin bearer token and the keys' secret URIs. They come from
//! files (or the environment), never from the command line (visible to every user in `ps`), and
//! are never printed: `--help` hides environment values, `Debug` of [`AdminToken`] shows nothing.

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The bearer token of the admin endpoints (`/v1/factory/*`), kept as its SHA-256 only, so the
/// comparison time does not depend on how much of a guess matches.
#[derive(Clone)]
pub struct AdminToken([u8; 32]);

impl std::fmt::Debug for AdminToken {
	fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
		f.write_str("AdminToken(..)")
	}
}

/// Shortest admin token accepted (bytes, after trimming).
pub const MIN_TOKEN_BYTES: usize = 16;

impl AdminToken {
	pub fn new(token: &str) -> Result<Self> {
		let t = token.trim();
		ensure!(t.len() >= MIN_TOKEN_BYTES, "the admin token must be at least {MIN_TOKEN_BYTES} bytes");
		ensure!(t.bytes().all(|b| b.is_ascii_graphic()), "the admin token must be printable ASCII without spaces");
		Ok(Self(Sha256::digest(t.as_bytes()).into()))
	}

	/// Reads the token from the first line of `path`.
	pub fn from_file(path: &Path) -> Result<Self> {
		let text = read_secret_file(path)?;
		Self::new(text.lines().next().unwrap_or_default()).with_context(|| format!("admin token file {}", path.display()))
	}

	/// Whether an `Authorization` header value carries this token (`Bearer <token>`).
	pub fn accepts(&self, header: Option<&str>) -> bool {
		let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else { return false };
		let digest: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
		// Equal digests; the comparison reads every byte.
		digest.iter().zip(&self.0).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
	}
}

/// Reads a secret file, warning when other users may read it.
pub fn read_secret_file(path: &Path) -> Result<String> {
	#[cfg(unix)]
	{
		use std::os::unix::fs::PermissionsExt;
		if let Ok(m) = std::fs::metadata(path) {
			if m.permissions().mode() & 0o077 != 0 {
				tracing::warn!("{} is readable by other users (chmod 600 it)", path.display());
			}
		}
	}
	std::fs::read_to_string(path).with_context(|| format!("reading the secret file {}", path.display()))
}

/// A key's secret URI from `--*-file` (first line) or its environment variable; a value on the
/// command line is accepted only for the well-known development keys (`//Alice`, `//Bob//stash`),
/// which are public anyway.
pub fn secret_uri(arg: Option<&str>, file: Option<&Path>, what: &str) -> Result<Option<String>> {
	if let Some(path) = file {
		let text = read_secret_file(path)?;
		let line = text.lines().next().unwrap_or_default().trim().to_string();
		ensure!(!line.is_empty(), "{what}: {} is empty", path.display());
		return Ok(Some(line));
	}
	match arg {
		None => Ok(None),
		Some(v) if is_dev_uri(v) => Ok(Some(v.to_string())),
		Some(_) => bail!(
			"{what}: a secret on the command line is visible to every user of this machine (ps); put it in a file (--{what}-file) or the environment variable"
		),
	}
}

/// `//Name` or `//Name//path` of the development phrase: no secret material.
pub fn is_dev_uri(v: &str) -> bool {
	v.starts_with("//") && v.len() > 2 && v.split("//").skip(1).all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn admin_token_accepts_only_the_exact_bearer_token() {
		let t = AdminToken::new("0123456789abcdef-secret\n").unwrap();
		assert!(t.accepts(Some("Bearer 0123456789abcdef-secret")));
		assert!(!t.accepts(Some("Bearer 0123456789abcdef-secreT")));
		assert!(!t.accepts(Some("Bearer 0123456789abcdef-secre")));
		assert!(!t.accepts(Some("Basic 0123456789abcdef-secret")));
		assert!(!t.accepts(Some("")));
		assert!(!t.accepts(None));
		assert!(AdminToken::new("short").is_err());
		assert!(AdminToken::new("has a space in it, long enough").is_err());
		assert_eq!(format!("{t:?}"), "AdminToken(..)");
	}

	#[test]
	fn secrets_come_from_files_or_dev_uris_only() {
		assert_eq!(secret_uri(Some("//Charlie"), None, "account").unwrap().as_deref(), Some("//Charlie"));
		assert_eq!(secret_uri(Some("//Alice//stash"), None, "account").unwrap().as_deref(), Some("//Alice//stash"));
		let phrase = "bottom drive obey lake curtain smoke basket hold race lonely fit walk//Alice";
		let e = secret_uri(Some(phrase), None, "account").unwrap_err().to_string();
		assert!(e.contains("--account-file") && !e.contains("bottom"), "{e}");
		assert!(secret_uri(Some("0x1234"), None, "account").is_err());
		let dir = tempfile::tempdir().unwrap();
		let f = dir.path().join("key");
		std::fs::write(&f, format!("{phrase}\n")).unwrap();
		assert_eq!(secret_uri(Some("//Ignored"), Some(&f), "account").unwrap().as_deref(), Some(phrase));
		std::fs::write(&f, "\n").unwrap();
		assert!(secret_uri(None, Some(&f), "account").is_err());
		assert_eq!(secret_uri(None, None, "account").unwrap(), None);
	}
}
