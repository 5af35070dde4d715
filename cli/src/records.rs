//! Reading contribution records from files and folders.
//!
//! - a `.jsonl` file: one record per non-empty line; the canonical bytes are the line re-encoded
//!   as compact JSON with its object keys sorted (serde_json's order: `jq -cS` prints the same
//!   bytes), so whitespace and key order do not change the hash — or, with `verbatim`, the line's
//!   bytes as they are (without the line break), once checked to be JSON;
//! - any other file: one record, its bytes as they are;
//! - a folder: every file in it (recursively, sorted by path), each read as above.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// One record to contribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
	/// Where it came from (`file` or `file:line`).
	pub origin: String,
	/// Canonical bytes (what is hashed and stored).
	pub bytes: Vec<u8>,
}

impl Record {
	/// Token count recorded on chain: whitespace-separated words. The chain stores the
	/// contributor's count; the attribution engine re-tokenizes with the model's tokenizer.
	pub fn token_count(&self) -> u64 {
		String::from_utf8_lossy(&self.bytes).split_whitespace().count().max(1) as u64
	}
}

fn files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
	if path.is_dir() {
		let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<std::io::Result<_>>()?;
		entries.sort_by_key(|e| e.path());
		for e in entries {
			files(&e.path(), out)?;
		}
	} else {
		out.push(path.to_owned());
	}
	Ok(())
}

/// All records under `path`.
pub fn read(path: &Path, verbatim: bool) -> Result<Vec<Record>> {
	let mut paths = Vec::new();
	files(path, &mut paths).with_context(|| format!("reading {}", path.display()))?;
	let mut records = Vec::new();
	for p in paths {
		let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
		if p.extension().is_some_and(|e| e == "jsonl") {
			let text = String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", p.display()))?;
			for (i, line) in text.lines().enumerate() {
				if line.trim().is_empty() {
					continue;
				}
				let value: serde_json::Value = serde_json::from_str(line)
					.with_context(|| format!("{}:{}: not JSON", p.display(), i + 1))?;
				let bytes = if verbatim { line.trim_end_matches('\r').as_bytes().to_vec() } else { serde_json::to_vec(&value)? };
				records.push(Record { origin: format!("{}:{}", p.display(), i + 1), bytes });
			}
		} else if !bytes.is_empty() {
			records.push(Record { origin: p.display().to_string(), bytes });
		}
	}
	if records.is_empty() {
		bail!("no records under {}", path.display());
	}
	Ok(records)
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn jsonl_lines_are_canonicalized_and_folders_sorted() {
		let dir = tempfile::tempdir().unwrap();
		std::fs::write(dir.path().join("b.jsonl"), "{ \"q\": 1 ,\"a\":2}\n\n{\"q\":3}\n").unwrap();
		std::fs::write(dir.path().join("a.txt"), "plain text record").unwrap();
		std::fs::write(dir.path().join("empty.txt"), "").unwrap();
		let r = read(dir.path(), false).unwrap();
		assert_eq!(r.len(), 3);
		assert_eq!(r[0].bytes, b"plain text record");
		assert_eq!(r[0].token_count(), 3);
		assert_eq!(r[1].bytes, br#"{"a":2,"q":1}"#);
		assert!(r[1].origin.ends_with("b.jsonl:1"));
		assert_eq!(r[2].bytes, br#"{"q":3}"#);
		// Verbatim: the line's own bytes (a CRLF line without its CR), still checked as JSON.
		std::fs::write(dir.path().join("b.jsonl"), "{ \"q\": 1 ,\"a\":2}\r\n").unwrap();
		assert_eq!(read(dir.path(), true).unwrap()[1].bytes, br#"{ "q": 1 ,"a":2}"#);
		std::fs::write(dir.path().join("bad.jsonl"), "not json\n").unwrap();
		assert!(read(dir.path(), false).unwrap_err().to_string().contains("not JSON"));
		assert!(read(dir.path(), true).unwrap_err().to_string().contains("not JSON"));
	}
}
