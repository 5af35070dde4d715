//! `openledger-worker span-index build|query`: build a span index from JSON lines (optionally
//! also in infini-gram's on-disk token layout, for cross-checking and benchmarks) and answer
//! count / longest-match queries as JSON lines.

use super::span::{build_index_with, shard_tokens_for, BuildOptions, DocRef, SpanIndex, SEPARATOR};
use crate::tokenizer::TextTokenizer;
use anyhow::Context;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum SpanCmd {
	/// Index the `text` of each JSON line (`{"text": ..., "datanet": .., "version": .., "index": ..}`);
	/// a document's content hash is blake2-256 of its text, as contributions are hashed on chain.
	Build {
		/// Model folder whose tokenizer.json tokenizes the corpus.
		#[arg(long)]
		tokenizer: PathBuf,
		/// JSON lines file.
		#[arg(long)]
		input: PathBuf,
		#[arg(long)]
		out: PathBuf,
		/// Also write `tokenized.0` + `offset.0` (infini-gram's layout, u16 tokens) here.
		#[arg(long)]
		infini_gram: Option<PathBuf>,
		/// Build in shards whose construction each fits this much memory (MiB), queried together;
		/// without it, one shard.
		#[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
		shard_mib: Option<u64>,
	},
	/// Index Datanet snapshot `--version` of `--datanet` as the chain commits to it: leaves
	/// verified against the on-chain Merkle root, content from the store checked against each
	/// leaf's hash (see `attribution::snapshot`).
	BuildSnapshot {
		/// The node's WebSocket JSON-RPC endpoint.
		#[arg(long, env = "OPENLEDGER_CHAIN_RPC")]
		chain_rpc: String,
		#[arg(long)]
		datanet: u32,
		#[arg(long)]
		version: u32,
		/// Content store folder (the `openledger` CLI's `--store`).
		#[arg(long)]
		store: PathBuf,
		/// Model folder whose tokenizer.json tokenizes the corpus.
		#[arg(long)]
		tokenizer: PathBuf,
		#[arg(long)]
		out: PathBuf,
	},
	/// Index a token stream in infini-gram's layout (`tokenized.0`: each document a separator —
	/// all bits set — then its tokens, little endian, 2 or 4 bytes each); document `i` becomes
	/// contribution (0, 0, i). For benchmarks on one corpus.
	BuildTokens {
		#[arg(long)]
		tokenized: PathBuf,
		#[arg(long)]
		out: PathBuf,
		/// Bytes per token in the file: 2 (u16) or 4 (u32, vocabularies past 65,535).
		#[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=4))]
		token_bytes: u8,
		/// Build in shards whose construction each fits this much memory (MiB).
		#[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
		shard_mib: Option<u64>,
	},
	/// Attribution latency: `attribute` (longest matches, spans, credit) of each answer of
	/// `--answers` (JSON arrays of ids, one per line); prints `{"n", "p50_ms", "p99_ms",
	/// "mean_coverage"}`.
	BenchAttribute {
		#[arg(long)]
		index: PathBuf,
		#[arg(long)]
		answers: PathBuf,
	},
	/// Longest-suffix latency: one query per line of `--queries` (JSON arrays of ids); prints
	/// `{"n", "p50_us", "p99_us", "lengths"}`.
	BenchQuery {
		#[arg(long)]
		index: PathBuf,
		#[arg(long)]
		queries: PathBuf,
	},
	/// Reads JSON lines `{"count": [ids]}`, `{"longest": [ids]}` or `{"attribute": [ids]}` from
	/// stdin and answers one JSON line each.
	Query {
		#[arg(long)]
		index: PathBuf,
	},
	/// (Re)builds the BM25 retrieval index (`retrieval/`) of a span index, for `attribution:
	/// "retrieval"` and for ranking span sources (`build` and `build-snapshot` write it too).
	BuildRetrieval {
		#[arg(long)]
		index: PathBuf,
	},
	/// Searches the retrieval index of `--index` for `--query`: one JSON line per passage, best
	/// first (what a request with `attribution: "retrieval"` puts into its prompt).
	Search {
		#[arg(long)]
		index: PathBuf,
		#[arg(long)]
		query: String,
		#[arg(long, default_value_t = super::retrieval::DEFAULT_TOP_K)]
		top_k: usize,
	},
	/// Lists the contributions of an index that are near-copies of earlier ones (for curators):
	/// one JSON line each, the copy, its original and their shingle similarity.
	NearDuplicates {
		#[arg(long)]
		index: PathBuf,
	},
	/// For curators, before they accept: every contribution of a Datanet on chain (pending and
	/// accepted) compared with the earlier ones; prints each near-copy (≥ 80 % of its 5-token
	/// shingles shared, Jaccard) with the earliest contribution it copies, and each contribution
	/// whose bytes could not be compared. `openledger curate reject --reason duplicate ID` then.
	Review {
		/// The node's WebSocket JSON-RPC endpoint.
		#[arg(long, env = "OPENLEDGER_CHAIN_RPC")]
		chain_rpc: String,
		#[arg(long)]
		datanet: u32,
		/// Content store folder (the `openledger` CLI's `--store`).
		#[arg(long)]
		store: PathBuf,
		/// Model folder whose tokenizer.json tokenizes the records.
		#[arg(long)]
		tokenizer: PathBuf,
	},
}

#[derive(serde::Deserialize)]
struct Line {
	text: String,
	#[serde(default)]
	datanet: u32,
	#[serde(default)]
	version: u32,
	#[serde(default)]
	index: Option<u32>,
}

/// Writes token documents in infini-gram's layout: each document is `ff ff` followed by its u16
/// tokens (little endian) in `tokenized.0`; `offset.0` holds each document's byte offset (u64).
pub fn write_infini_gram_layout(dir: &Path, docs: &[Vec<u32>]) -> anyhow::Result<()> {
	std::fs::create_dir_all(dir)?;
	let mut data = BufWriter::new(std::fs::File::create(dir.join("tokenized.0"))?);
	let mut offsets = BufWriter::new(std::fs::File::create(dir.join("offset.0"))?);
	let mut at = 0u64;
	for d in docs {
		offsets.write_all(&at.to_le_bytes())?;
		data.write_all(&SEPARATOR.to_le_bytes())?;
		for &t in d {
			anyhow::ensure!(t < SEPARATOR as u32, "token id {t} does not fit infini-gram's u16 layout");
			data.write_all(&(t as u16).to_le_bytes())?;
		}
		at += 2 + 2 * d.len() as u64;
	}
	data.flush()?;
	offsets.flush()?;
	Ok(())
}

/// One JSON array of token ids per line.
fn id_lines(path: &Path) -> anyhow::Result<Vec<Vec<u32>>> {
	std::io::BufReader::new(std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?)
		.lines()
		.map(|l| Ok(serde_json::from_str(&l?)?))
		.collect()
}

/// The `p` quantile of sorted `xs` (nearest rank).
fn quantile(xs: &[f64], p: f64) -> f64 {
	xs[((xs.len() as f64 - 1.0) * p).round() as usize]
}

pub async fn run(cmd: SpanCmd) -> anyhow::Result<()> {
	match cmd {
		SpanCmd::BuildSnapshot { chain_rpc, datanet, version, store, tokenizer, out } => {
			let tk = TextTokenizer::load(&tokenizer)?;
			let chain = crate::chain::ChainClient::connect(&chain_rpc).await?;
			let t = std::time::Instant::now();
			let meta = super::snapshot::build(&chain, datanet, version, &store, &tk, &out).await?;
			let idx = SpanIndex::open(&out)?;
			super::retrieval::build(&out, &idx)?;
			println!(
				"{}",
				serde_json::json!({
					"datanet": datanet, "version": version, "docs": meta.docs.len(), "tokens": meta.tokens,
					"seconds": t.elapsed().as_secs_f64(), "bytes_per_token": idx.bytes_per_token(),
					"near_duplicates": idx.copies().copies.len(),
				})
			);
			Ok(())
		},
		SpanCmd::Build { tokenizer, input, out, infini_gram, shard_mib } => {
			let tk = TextTokenizer::load(&tokenizer)?;
			let file = std::fs::File::open(&input).with_context(|| format!("opening {}", input.display()))?;
			let mut refs = Vec::new();
			let mut docs = Vec::new();
			let mut raws = Vec::new();
			for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
				let line = line?;
				if line.trim().is_empty() {
					continue;
				}
				let l: Line = serde_json::from_str(&line).with_context(|| format!("line {}", n + 1))?;
				let hash = openledger_primitives::evidence::content_root(l.text.as_bytes()).0;
				refs.push(DocRef { datanet: l.datanet, version: l.version, index: l.index.unwrap_or(n as u32), content_hash: hash });
				docs.push(tk.encode(&l.text)?);
				raws.push(l.text.into_bytes());
			}
			let t = std::time::Instant::now();
			let opts = BuildOptions { shard_tokens: shard_mib.map(shard_tokens_for), ..Default::default() };
			let meta = build_index_with(
				&out,
				refs.iter().copied().zip(docs.iter().zip(raws.iter())).map(|(r, (d, b))| (r, d.as_slice(), b.as_slice())),
				opts,
			)?;
			let idx = SpanIndex::open(&out)?;
			super::retrieval::build(&out, &idx)?;
			eprintln!(
				"indexed {} documents, {} tokens in {:.2}s ({:.2} bytes/token, {}-byte ids, {} shard(s))",
				meta.docs.len(),
				meta.tokens,
				t.elapsed().as_secs_f64(),
				idx.bytes_per_token(),
				meta.token_bytes,
				idx.shards()
			);
			if let Some(dir) = infini_gram {
				write_infini_gram_layout(&dir, &docs)?;
			}
			Ok(())
		},
		SpanCmd::BuildTokens { tokenized, out, token_bytes, shard_mib } => {
			anyhow::ensure!(token_bytes == 2 || token_bytes == 4, "--token-bytes is 2 or 4");
			let bytes = std::fs::read(&tokenized).with_context(|| format!("reading {}", tokenized.display()))?;
			let t = std::time::Instant::now();
			let tokens: Vec<u32> = if token_bytes == 4 {
				bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
			} else {
				bytes.chunks_exact(2).map(|c| match u16::from_le_bytes([c[0], c[1]]) {
					SEPARATOR => u32::MAX,
					x => x as u32,
				}).collect()
			};
			drop(bytes);
			// Documents as slices of the one token vector (no second copy of the corpus).
			let docs: Vec<&[u32]> = tokens.split(|t| *t == u32::MAX).skip(1).collect();
			let refs = (0..docs.len() as u32).map(|i| DocRef { datanet: 0, version: 0, index: i, content_hash: [0; 32] });
			let opts = BuildOptions { shard_tokens: shard_mib.map(shard_tokens_for), ..Default::default() };
			// Token ids only: no raw bytes, so no claims (and no shares) from such an index.
			let meta = build_index_with(&out, refs.zip(docs.iter()).map(|(r, d)| (r, *d, &b""[..])), opts)?;
			let idx = SpanIndex::open(&out)?;
			println!(
				"{}",
				serde_json::json!({ "docs": meta.docs.len(), "tokens": meta.tokens, "seconds": t.elapsed().as_secs_f64(),
					"bytes_per_token": idx.bytes_per_token(), "token_bytes": meta.token_bytes, "entry_bytes": meta.entry_bytes, "shards": idx.shards() })
			);
			Ok(())
		},
		SpanCmd::BenchAttribute { index, answers } => {
			let idx = SpanIndex::open(&index)?;
			let qs = id_lines(&answers)?;
			anyhow::ensure!(!qs.is_empty(), "no answers");
			let mut lat = Vec::with_capacity(qs.len());
			let mut coverage = 0.0;
			for q in &qs {
				let t = std::time::Instant::now();
				let a = idx.attribute(q, &Default::default());
				lat.push(t.elapsed().as_secs_f64() * 1e3);
				coverage += a.coverage;
			}
			lat.sort_by(f64::total_cmp);
			println!("{}", serde_json::json!({ "n": qs.len(), "p50_ms": quantile(&lat, 0.5), "p99_ms": quantile(&lat, 0.99), "mean_coverage": coverage / qs.len() as f64 }));
			Ok(())
		},
		SpanCmd::BenchQuery { index, queries } => {
			let idx = SpanIndex::open(&index)?;
			let qs = id_lines(&queries)?;
			anyhow::ensure!(!qs.is_empty(), "no queries");
			let mut lat = Vec::with_capacity(qs.len());
			let mut lengths = Vec::with_capacity(qs.len());
			for q in &qs {
				let t = std::time::Instant::now();
				let l = idx.longest_suffix(q);
				lat.push(t.elapsed().as_secs_f64() * 1e6);
				lengths.push(l);
			}
			lat.sort_by(f64::total_cmp);
			println!("{}", serde_json::json!({ "n": qs.len(), "p50_us": quantile(&lat, 0.5), "p99_us": quantile(&lat, 0.99), "lengths": lengths }));
			Ok(())
		},
		SpanCmd::BuildRetrieval { index } => {
			let idx = SpanIndex::open(&index)?;
			let t = std::time::Instant::now();
			let n = super::retrieval::build(&index, &idx)?;
			println!("{}", serde_json::json!({ "docs": n, "seconds": t.elapsed().as_secs_f64() }));
			Ok(())
		},
		SpanCmd::Search { index, query, top_k } => {
			let idx = SpanIndex::open(&index)?;
			let r = super::retrieval::RetrievalIndex::open(&index, &idx)?
				.context("this index has no retrieval index: run `span build-retrieval --index DIR`")?;
			for p in r.search(&idx, &query, top_k, None)? {
				let d = p.doc;
				println!(
					"{}",
					serde_json::json!({ "contribution": { "datanet": d.datanet, "version": d.version, "index": d.index }, "score": p.score, "text": p.text })
				);
			}
			Ok(())
		},
		SpanCmd::NearDuplicates { index } => {
			let idx = SpanIndex::open(&index)?;
			let r = |d: usize| {
				let d = idx.meta.docs[d];
				serde_json::json!({ "datanet": d.datanet, "version": d.version, "index": d.index })
			};
			for &(copy, original, similarity) in &idx.copies().copies {
				println!("{}", serde_json::json!({ "copy": r(copy), "original": r(original), "similarity": similarity }));
			}
			Ok(())
		},
		SpanCmd::Review { chain_rpc, datanet, store, tokenizer } => {
			let tk = TextTokenizer::load(&tokenizer)?;
			let chain = crate::chain::ChainClient::connect(&chain_rpc).await?;
			let review = super::snapshot::review(&chain, datanet, &store, &tk).await?;
			for c in &review.copies {
				println!("{}", serde_json::to_string(c)?);
			}
			for (id, status, why) in &review.unreadable {
				println!("{}", serde_json::json!({ "contribution": id, "status": status, "unreadable": why }));
			}
			tracing::info!(
				datanet,
				contributions = review.contributions,
				near_copies = review.copies.len(),
				unreadable = review.unreadable.len(),
				"reviewed"
			);
			Ok(())
		},
		SpanCmd::Query { index } => {
			let idx = SpanIndex::open(&index)?;
			let stdout = std::io::stdout();
			let mut out = BufWriter::new(stdout.lock());
			for line in std::io::stdin().lock().lines() {
				let v: serde_json::Value = serde_json::from_str(&line?)?;
				let ids = |k: &str| -> Option<Vec<u32>> { serde_json::from_value(v.get(k)?.clone()).ok() };
				let answer = if let Some(q) = ids("count") {
					serde_json::json!({ "count": idx.count(&q) })
				} else if let Some(q) = ids("longest") {
					serde_json::json!({ "longest": idx.longest_matches(&q) })
				} else if let Some(q) = ids("attribute") {
					serde_json::to_value(idx.attribute(&q, &Default::default()))?
				} else {
					serde_json::json!({ "error": "expected count, longest or attribute" })
				};
				serde_json::to_writer(&mut out, &answer)?;
				out.write_all(b"\n")?;
			}
			out.flush()?;
			Ok(())
		},
	}
}
