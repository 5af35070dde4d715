//! Span attribution, infini-gram style: a suffix array over the tokenized contributions of a
//! snapshot, memory-mapped from disk, answering n-gram counts and, for every position of a
//! generated answer, the longest span ending there that occurs in the corpus (∞-gram longest
//! match). Spans at or above a minimum length credit the contributions that contain them.
//!
//! ## On-disk format (`dir/`, format 3)
//! - `tokens.bin`: every document's token ids, little endian, each document preceded by the
//!   separator (all bits set). Ids take **2 bytes** when the corpus's ids are all below 65,535
//!   (Llama 2, Mistral: 32,000), else **4 bytes** (Llama 3: 128,256; Qwen2: 151,936), chosen per
//!   shard from the largest id in it; ids must be below 2²⁴ (the sorter's buckets grow with the
//!   largest id: 64 MiB at most).
//! - `sa.bin`: the suffix array over the positions of `tokens.bin` that are not separators, little
//!   endian, **4 bytes** per entry while the text has fewer than 2³² − 1 positions, else **5
//!   bytes** (40 bits: up to 2⁴⁰ ≈ 1.1 T tokens, as infini-gram does), built by libsais
//!   (Grebnov's SA-IS): on the u16 text, or on the ids as i32 for 4-byte tokens.
//! - `docs.u64`: the start (first token after its separator) of each document.
//! - `meta.json`: format version, counts, both widths, and each document's reference (datanet,
//!   snapshot version, leaf index, content hash) in document order.
//! - `raw.bin`, `raw.u64`: each document's bytes as its content root commits to them, and their
//!   starts (one more entry than documents): what span claims point into.
//!
//! 2 bytes per token for the text + 4 for the suffix array = **6 bytes per token** (infini-gram
//! uses 2 + 5 = 7) for small vocabularies and corpora below 4 G tokens; 4 + 4 = 8 for large
//! vocabularies; one more byte per token past 4 G tokens; plus the raw bytes. Building holds the
//! text as u32 and the suffix array as i32 (i64 past 2³¹ − 1 positions) in memory.
//!
//! ## Scoring (deterministic)
//! With `L(i)` the longest match ending at answer position `i`, a span is maximal when `L(i) ≥
//! min_len` and the match is not extended at `i + 1` (`L(i+1) ≤ L(i)`). A span of length `ℓ`
//! occurring `c` times in a corpus of `N` tokens weighs `ℓ · (1 + log₂(N / c))` — longer and rarer
//! weigh more. A near-copy of an earlier document (`attribution::dedup`, listed in
//! `copies.json`) is dropped from a span its original also holds. Its weight is shared by the
//! distinct documents among its first
//! `max_occurrences` occurrences in suffix-array order — shard by shard in a sharded index, so
//! past `max_occurrences` occurrences the earlier shards' (earlier leaves') documents come first:
//! equally, or, with a retrieval index, by each holder's BM25 relevance to the whole answer
//! ([`SpanIndex::attribute_ranked`], as OLMoTrace ranks its documents). Document credits are summed, the top
//! `top_k` kept, and scaled so that the shares sum to the fraction of answer tokens covered by
//! spans (the rest of the data share stays unattributed); shares are floored to parts per
//! billion, ties broken by document order.
//!
//! ## Claims (what the chain can check)
//! [`SpanIndex::attribute_claimed`] maps each span to the answer's bytes and, for each document
//! it credits, finds those bytes verbatim in the document's raw bytes, extends the match byte by
//! byte as far as both agree, and cuts it into claims of at most `MAX_SPAN_BYTES` (none under
//! `MIN_SPAN_BYTES`). Each credited document keeps its `MAX_EVIDENCE_SPANS` longest claims that
//! add coverage, and its share is capped by the on-chain rule: at most the fraction of the
//! answer's bytes those claims cover. Spans found in tokens but not verbatim in the raw bytes
//! (e.g. text escaped inside a JSON record) earn nothing.

use anyhow::{ensure, Context};
use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// The separator of 2-byte token files (and of infini-gram's layout).
pub const SEPARATOR: u16 = 0xFFFF;
/// The separator of 4-byte token files.
pub const WIDE_SEPARATOR: u32 = u32::MAX;
/// The largest token id an index takes: the suffix sorter's buckets take 4 bytes per value up to
/// the largest (64 MiB here; real vocabularies are below 300,000).
pub const MAX_TOKEN_ID: u32 = (1 << 24) - 1;
pub const FORMAT_VERSION: u32 = 3;

/// Widths to force when building (tests and benches; by default the narrowest that fits).
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildOptions {
	/// 4-byte token ids even when every id fits 2.
	pub wide_tokens: bool,
	/// 5-byte suffix-array entries even when 4 fit.
	pub wide_entries: bool,
	/// Tokens per shard at most (a document is never split; one longer than this is a shard of
	/// its own); `None`: one shard. See [`shard_tokens_for`].
	pub shard_tokens: Option<u64>,
}

/// Bytes of memory a shard's build takes per token, at most: the text as u32, its copy for the
/// sorter (u16 or i32) and the i32 suffix array, below 2³¹ tokens per shard.
pub const BUILD_BYTES_PER_TOKEN: u64 = 16;

/// The shard size whose build fits in `mib` MiB of memory (below 2³¹ tokens, so each shard's
/// suffix array sorts as i32).
pub fn shard_tokens_for(mib: u64) -> u64 {
	(mib.saturating_mul(1 << 20) / BUILD_BYTES_PER_TOKEN).clamp(1, i32::MAX as u64 - 1)
}

/// A contribution as receipts reference it (a leaf of a Datanet snapshot) and its content hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DocRef {
	pub datanet: u32,
	pub version: u32,
	pub index: u32,
	#[serde(with = "hex_hash")]
	pub content_hash: [u8; 32],
}

mod hex_hash {
	use serde::{Deserialize, Deserializer, Serializer};
	pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
		s.serialize_str(&format!("0x{}", hex::encode(h)))
	}
	pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
		let s = String::deserialize(d)?;
		let v = hex::decode(s.trim_start_matches("0x")).map_err(serde::de::Error::custom)?;
		v.try_into().map_err(|_| serde::de::Error::custom("a content hash has 32 bytes"))
	}
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
	pub format: u32,
	pub tokens: u64,
	/// Bytes per token id in `tokens.bin`: 2 or 4.
	pub token_bytes: u8,
	/// Bytes per suffix-array entry in `sa.bin`: 4 or 5.
	pub entry_bytes: u8,
	pub docs: Vec<DocRef>,
}

/// Writes an index for `docs` (reference, token ids, raw bytes) into `dir`, in the narrowest
/// widths that fit.
pub fn build_index<'a>(dir: &Path, docs: impl IntoIterator<Item = (DocRef, &'a [u32], &'a [u8])>) -> anyhow::Result<Meta> {
	build_index_with(dir, docs, BuildOptions::default())
}

/// Writes little-endian `value`'s low `width` bytes.
fn write_le(w: &mut impl Write, value: u64, width: u8) -> std::io::Result<()> {
	w.write_all(&value.to_le_bytes()[..width as usize])
}

/// Reads a little-endian value of `bytes.len()` (at most 8) bytes.
fn read_le(bytes: &[u8]) -> u64 {
	let mut b = [0u8; 8];
	b[..bytes.len()].copy_from_slice(bytes);
	u64::from_le_bytes(b)
}

/// [`build_index`] with widths and sharding set by `opts`. A sharded index is `shards.json`
/// (the shard directories `shard-0000`, … in document order), a `meta.json` over all of them,
/// and each shard a complete index.
pub fn build_index_with<'a>(
	dir: &Path,
	docs: impl IntoIterator<Item = (DocRef, &'a [u32], &'a [u8])>,
	opts: BuildOptions,
) -> anyhow::Result<Meta> {
	build_index_aged(dir, docs, None, opts)
}

/// [`build_index_with`] where a document's age is `age[i]` (lower: earlier, e.g. the
/// contribution id, whatever order the documents were accepted in) rather than its position:
/// a near-copy's original is the earliest similar document by age.
pub fn build_index_aged<'a>(
	dir: &Path,
	docs: impl IntoIterator<Item = (DocRef, &'a [u32], &'a [u8])>,
	age: Option<&[u64]>,
	opts: BuildOptions,
) -> anyhow::Result<Meta> {
	let docs: Vec<(DocRef, &[u32], &[u8])> = docs.into_iter().collect();
	std::fs::create_dir_all(dir)?;
	// Near-copies of earlier contributions, over the whole corpus (all shards); written once the
	// index is, and a stale list from an earlier build removed first.
	let texts: Vec<&[u32]> = docs.iter().map(|d| d.1).collect();
	let copies = match age {
		Some(age) => {
			ensure!(age.len() == docs.len(), "one age per document");
			super::dedup::find_copies_by_age(&texts, age)
		},
		None => super::dedup::find_copies(&texts),
	};
	drop(texts);
	if dir.join("copies.json").exists() {
		std::fs::remove_file(dir.join("copies.json"))?;
	}
	let meta = build_index_docs(dir, docs, opts)?;
	std::fs::write(dir.join("copies.json"), serde_json::to_vec(&copies)?)?;
	Ok(meta)
}

/// [`build_index_with`] without the copy list.
fn build_index_docs(dir: &Path, docs: Vec<(DocRef, &[u32], &[u8])>, opts: BuildOptions) -> anyhow::Result<Meta> {
	let Some(limit) = opts.shard_tokens else {
		return build_shard(dir, docs, opts);
	};
	ensure!(limit > 0, "shards need room for a token");
	// The old list goes first: a build that fails halfway must not leave it naming new shards
	// beside old ones.
	if dir.join("shards.json").exists() {
		std::fs::remove_file(dir.join("shards.json"))?;
	}
	let mut all = Meta { format: FORMAT_VERSION, tokens: 0, token_bytes: 2, entry_bytes: 4, docs: Vec::new() };
	let mut names: Vec<String> = Vec::new();
	let mut group: Vec<(DocRef, &[u32], &[u8])> = Vec::new();
	let mut group_tokens = 0u64;
	let mut docs = docs.into_iter().peekable();
	while let Some((r, t, b)) = docs.next() {
		// Positions, separators included (a document longer than the limit is a shard alone).
		group_tokens += t.len() as u64 + 1;
		group.push((r, t, b));
		let full = docs.peek().is_none_or(|next| group_tokens + next.1.len() as u64 + 1 > limit);
		if full {
			let name = format!("shard-{:04}", names.len());
			let m = build_shard(&dir.join(&name), group.drain(..), opts)?;
			all.tokens += m.tokens;
			all.token_bytes = all.token_bytes.max(m.token_bytes);
			all.entry_bytes = all.entry_bytes.max(m.entry_bytes);
			all.docs.extend(m.docs);
			names.push(name);
			group_tokens = 0;
		}
	}
	if names.is_empty() {
		names.push("shard-0000".into());
		build_shard(&dir.join(&names[0]), std::iter::empty(), opts)?;
	}
	std::fs::write(dir.join("shards.json"), serde_json::to_vec(&ShardList { format: FORMAT_VERSION, shards: names })?)?;
	std::fs::write(dir.join("meta.json"), serde_json::to_vec(&all)?)?;
	Ok(all)
}

/// Writes one shard (a complete index) of `docs` into `dir`.
fn build_shard<'a>(
	dir: &Path,
	docs: impl IntoIterator<Item = (DocRef, &'a [u32], &'a [u8])>,
	opts: BuildOptions,
) -> anyhow::Result<Meta> {
	std::fs::create_dir_all(dir)?;
	// A list of shards left by an earlier build would shadow this one.
	if dir.join("shards.json").exists() {
		std::fs::remove_file(dir.join("shards.json"))?;
	}
	let docs: Vec<_> = docs.into_iter().collect();
	// Separators are written as `WIDE_SEPARATOR` here and narrowed with the text below.
	let mut text: Vec<u32> = Vec::with_capacity(docs.iter().map(|(_, t, _)| t.len() + 1).sum());
	let mut max_id = 0u32;
	let mut starts: Vec<u64> = Vec::new();
	let mut refs = Vec::new();
	let mut raw = BufWriter::new(File::create(dir.join("raw.bin"))?);
	let mut raw_starts: Vec<u64> = vec![0];
	for (r, tokens, bytes) in docs {
		raw.write_all(bytes)?;
		raw_starts.push(raw_starts.last().expect("one at least; qed") + bytes.len() as u64);
		text.push(WIDE_SEPARATOR);
		starts.push(text.len() as u64);
		for &t in tokens {
			ensure!(t <= MAX_TOKEN_ID, "token id {t} is above the largest an index takes ({MAX_TOKEN_ID})");
			max_id = max_id.max(t);
			text.push(t);
		}
		refs.push(r);
	}
	let token_bytes: u8 = if opts.wide_tokens || max_id >= SEPARATOR as u32 { 4 } else { 2 };
	ensure!((text.len() as u64) < 1 << 40, "corpus too large for 40-bit suffix array entries: shard it");
	let entry_bytes: u8 = if opts.wide_entries || text.len() as u64 >= u32::MAX as u64 { 5 } else { 4 };
	// libsais sorts all suffixes; separator positions are dropped afterwards. A separator sorts
	// above every id in both widths (0xFFFF, or `max_id + 1` standing for `WIDE_SEPARATOR`).
	let mut w = BufWriter::new(File::create(dir.join("sa.bin"))?);
	let mut keep = |p: usize| -> std::io::Result<()> {
		if text[p] != WIDE_SEPARATOR {
			write_le(&mut w, p as u64, entry_bytes)?;
		}
		Ok(())
	};
	let libsais_err = |e| anyhow::anyhow!("libsais: {e:?}");
	if text.is_empty() {
		// Nothing to sort: an empty suffix array.
	} else if token_bytes == 2 {
		let narrow: Vec<u16> = text.iter().map(|&t| if t == WIDE_SEPARATOR { SEPARATOR } else { t as u16 }).collect();
		let run = libsais::SuffixArrayConstruction::for_text(&narrow[..]);
		if narrow.len() <= i32::MAX as usize {
			for p in run.in_owned_buffer32().single_threaded().run().map_err(libsais_err)?.into_vec() {
				keep(p as usize)?;
			}
		} else {
			for p in run.in_owned_buffer64().single_threaded().run().map_err(libsais_err)?.into_vec() {
				keep(p as usize)?;
			}
		}
	} else {
		let sep = max_id as i64 + 1;
		let alphabet = sep + 1;
		if text.len() <= i32::MAX as usize {
			let mut t32: Vec<i32> = text.iter().map(|&t| if t == WIDE_SEPARATOR { sep as i32 } else { t as i32 }).collect();
			// Safety: every value is in [0, alphabet): ids ≤ max_id < sep < alphabet ≤ i32::MAX.
			let run = unsafe {
				libsais::SuffixArrayConstruction::for_text_mut(&mut t32[..])
					.in_owned_buffer32()
					.single_threaded()
					.with_alphabet_size(libsais::suffix_array::AlphabetSize::new(alphabet as i32))
			};
			let sa = run.run().map_err(libsais_err)?.into_vec();
			drop(t32);
			for p in sa {
				keep(p as usize)?;
			}
		} else {
			let mut t64: Vec<i64> = text.iter().map(|&t| if t == WIDE_SEPARATOR { sep } else { t as i64 }).collect();
			// Safety: as above.
			let run = unsafe {
				libsais::SuffixArrayConstruction::for_text_mut(&mut t64[..])
					.in_owned_buffer64()
					.single_threaded()
					.with_alphabet_size(libsais::suffix_array::AlphabetSize::new(alphabet))
			};
			let sa = run.run().map_err(libsais_err)?.into_vec();
			drop(t64);
			for p in sa {
				keep(p as usize)?;
			}
		}
	}
	drop(keep);
	w.flush()?;
	let mut w = BufWriter::new(File::create(dir.join("tokens.bin"))?);
	for &t in &text {
		let t = if t == WIDE_SEPARATOR && token_bytes == 2 { SEPARATOR as u32 } else { t };
		write_le(&mut w, t as u64, token_bytes)?;
	}
	w.flush()?;
	let mut w = BufWriter::new(File::create(dir.join("docs.u64"))?);
	for s in &starts {
		w.write_all(&s.to_le_bytes())?;
	}
	w.flush()?;
	raw.flush()?;
	let mut w = BufWriter::new(File::create(dir.join("raw.u64"))?);
	for s in &raw_starts {
		w.write_all(&s.to_le_bytes())?;
	}
	w.flush()?;
	let meta = Meta { format: FORMAT_VERSION, tokens: text.len() as u64 - refs.len() as u64, token_bytes, entry_bytes, docs: refs };
	std::fs::write(dir.join("meta.json"), serde_json::to_vec(&meta)?)?;
	Ok(meta)
}

/// A memory-mapped index: one or more shards (each a complete index over some documents,
/// queried together), documents numbered across them in shard order.
pub struct SpanIndex {
	shards: Vec<Shard>,
	positions: std::collections::HashMap<(u32, u32, u32), usize>,
	/// Near-copies of earlier documents (`copies.json`; none in an index built without it).
	copies: super::dedup::Copies,
	/// The whole index: every shard's documents in order, their tokens summed, the widest widths.
	pub meta: Meta,
}

/// One shard, as [`build_index`] writes a directory.
struct Shard {
	tokens: Mmap,
	sa: Mmap,
	docs: Mmap,
	raw: Option<Mmap>,
	raw_starts: Vec<u64>,
	meta: Meta,
	/// The index-wide number of its first document.
	first_doc: usize,
}

/// `shards.json` of a sharded index: its shard directories, in document order.
#[derive(Serialize, Deserialize)]
struct ShardList {
	format: u32,
	shards: Vec<String>,
}

fn map_maybe_empty(path: &Path) -> anyhow::Result<Option<Mmap>> {
	// An empty file cannot be mapped on every platform; it holds nothing anyway.
	if std::fs::metadata(path).with_context(|| format!("opening {}", path.display()))?.len() == 0 {
		return Ok(None);
	}
	map(path).map(Some)
}

fn map(path: &Path) -> anyhow::Result<Mmap> {
	let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
	// Safety: the index files are written once by `build_index` and never modified in place.
	Ok(unsafe { Mmap::map(&f)? })
}

impl Shard {
	fn open(dir: &Path, first_doc: usize) -> anyhow::Result<Self> {
		#[derive(Deserialize)]
		struct Format {
			format: u32,
		}
		let bytes = std::fs::read(dir.join("meta.json")).context("meta.json")?;
		let format = serde_json::from_slice::<Format>(&bytes).context("meta.json")?.format;
		ensure!(format == FORMAT_VERSION, "index format {format} (this worker reads {FORMAT_VERSION}): rebuild the index");
		let meta: Meta = serde_json::from_slice(&bytes).context("meta.json")?;
		ensure!(matches!(meta.token_bytes, 2 | 4), "token width {} (2 or 4)", meta.token_bytes);
		ensure!(matches!(meta.entry_bytes, 4 | 5), "suffix-array entry width {} (4 or 5)", meta.entry_bytes);
		let raw_starts: Vec<u64> = std::fs::read(dir.join("raw.u64"))
			.context("raw.u64")?
			.chunks(8)
			.map(|c| c.try_into().map(u64::from_le_bytes).map_err(|_| anyhow::anyhow!("truncated raw.u64")))
			.collect::<anyhow::Result<_>>()?;
		let raw = map_maybe_empty(&dir.join("raw.bin"))?;
		let idx = Self {
			tokens: map(&dir.join("tokens.bin"))?,
			sa: map(&dir.join("sa.bin"))?,
			docs: map(&dir.join("docs.u64"))?,
			raw,
			raw_starts,
			meta,
			first_doc,
		};
		ensure!(
			idx.sa.len() % idx.meta.entry_bytes as usize == 0 &&
				idx.tokens.len() % idx.meta.token_bytes as usize == 0 &&
				idx.docs.len() % 8 == 0,
			"truncated index files"
		);
		ensure!(
			idx.meta.tokens.checked_add(idx.meta.docs.len() as u64) == Some(idx.text_len() as u64),
			"tokens.bin and meta.json disagree"
		);
		ensure!(idx.sa_len() as u64 == idx.meta.tokens, "suffix array and meta.json disagree");
		ensure!(idx.docs.len() / 8 == idx.meta.docs.len(), "docs.u64 and meta.json disagree");
		ensure!(idx.raw_starts.len() == idx.meta.docs.len() + 1, "raw.u64 and meta.json disagree");
		ensure!(idx.raw_starts.windows(2).all(|w| w[0] <= w[1]), "raw.u64 is not ascending");
		ensure!(
			idx.raw_starts.last().copied() == Some(idx.raw.as_ref().map_or(0, |m| m.len() as u64)),
			"raw.bin and raw.u64 disagree"
		);
		// Each document starts right after a separator, in order, inside the text (so `doc_of`
		// always lands on a document of this shard).
		let mut prev = 0u64;
		for d in 0..idx.meta.docs.len() {
			let start = idx.doc_start(d);
			ensure!(
				start > prev && start as usize <= idx.text_len() && idx.token(start as usize - 1) == idx.separator(),
				"docs.u64 does not match the separators of tokens.bin"
			);
			prev = start;
		}
		Ok(idx)
	}

	/// The raw bytes of its document `d`.
	fn raw(&self, d: usize) -> &[u8] {
		match (&self.raw, self.raw_starts.get(d), self.raw_starts.get(d + 1)) {
			(Some(m), Some(&a), Some(&b)) => &m[a as usize..b as usize],
			_ => &[],
		}
	}

	/// The separator of this index's token width (every real id is below it).
	fn separator(&self) -> u32 {
		if self.meta.token_bytes == 2 {
			SEPARATOR as u32
		} else {
			WIDE_SEPARATOR
		}
	}
	fn token(&self, pos: usize) -> u32 {
		if self.meta.token_bytes == 2 {
			u16::from_le_bytes([self.tokens[2 * pos], self.tokens[2 * pos + 1]]) as u32
		} else {
			u32::from_le_bytes(self.tokens[4 * pos..4 * pos + 4].try_into().expect("4 bytes; qed"))
		}
	}
	fn text_len(&self) -> usize {
		self.tokens.len() / self.meta.token_bytes as usize
	}
	fn sa_len(&self) -> usize {
		self.sa.len() / self.meta.entry_bytes as usize
	}
	fn sa_at(&self, i: usize) -> usize {
		let w = self.meta.entry_bytes as usize;
		read_le(&self.sa[w * i..w * i + w]) as usize
	}
	fn doc_start(&self, d: usize) -> u64 {
		u64::from_le_bytes(self.docs[8 * d..8 * d + 8].try_into().expect("8 bytes; qed"))
	}

	/// Compares the suffix at text position `pos` with `q` on `q.len()` tokens.
	fn cmp_suffix(&self, pos: usize, q: &[u32]) -> Ordering {
		for (k, &want) in q.iter().enumerate() {
			if pos + k >= self.text_len() {
				return Ordering::Less; // the suffix ended first
			}
			match self.token(pos + k).cmp(&want) {
				Ordering::Equal => continue,
				o => return o,
			}
		}
		Ordering::Equal
	}

	/// The first suffix-array position whose suffix is not below `q`.
	fn lower_bound(&self, q: &[u32]) -> usize {
		let (mut lo, mut hi) = (0, self.sa_len());
		while lo < hi {
			let mid = (lo + hi) / 2;
			if self.cmp_suffix(self.sa_at(mid), q) == Ordering::Less {
				lo = mid + 1;
			} else {
				hi = mid;
			}
		}
		lo
	}

	/// The suffix-array range whose suffixes start with `q`.
	fn range(&self, q: &[u32]) -> (usize, usize) {
		if q.is_empty() {
			return (0, self.sa_len());
		}
		if q.iter().any(|&t| t >= self.separator()) {
			return (0, 0);
		}
		let start = self.lower_bound(q);
		let (mut lo, mut hi) = (start, self.sa_len());
		while lo < hi {
			let mid = (lo + hi) / 2;
			if self.cmp_suffix(self.sa_at(mid), q) == Ordering::Greater {
				hi = mid;
			} else {
				lo = mid + 1;
			}
		}
		(start, lo)
	}

	/// Whether `q` occurs (one binary search instead of the two a count needs).
	fn occurs(&self, q: &[u32]) -> bool {
		if q.iter().any(|&t| t >= self.separator()) {
			return false;
		}
		let lo = self.lower_bound(q);
		lo < self.sa_len() && self.cmp_suffix(self.sa_at(lo), q) == Ordering::Equal
	}

	/// Its document containing text position `pos`.
	fn doc_of(&self, pos: usize) -> usize {
		let (mut lo, mut hi) = (0, self.meta.docs.len());
		while lo + 1 < hi {
			let mid = (lo + hi) / 2;
			if self.doc_start(mid) as usize <= pos {
				lo = mid;
			} else {
				hi = mid;
			}
		}
		lo
	}
}

impl SpanIndex {
	/// Opens the index in `dir`: the shards `shards.json` lists, or `dir` itself as one shard.
	pub fn open(dir: &Path) -> anyhow::Result<Self> {
		let list = dir.join("shards.json");
		let dirs: Vec<std::path::PathBuf> = if list.exists() {
			let l: ShardList = serde_json::from_slice(&std::fs::read(&list)?).context("shards.json")?;
			ensure!(l.format == FORMAT_VERSION, "index format {} (this worker reads {FORMAT_VERSION})", l.format);
			ensure!(!l.shards.is_empty(), "shards.json lists no shard");
			for name in &l.shards {
				ensure!(
					!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
					"bad shard name {name:?}"
				);
			}
			l.shards.iter().map(|n| dir.join(n)).collect()
		} else {
			vec![dir.to_path_buf()]
		};
		let mut shards: Vec<Shard> = Vec::with_capacity(dirs.len());
		let mut meta = Meta { format: FORMAT_VERSION, tokens: 0, token_bytes: 2, entry_bytes: 4, docs: Vec::new() };
		for d in &dirs {
			let shard = Shard::open(d, meta.docs.len()).with_context(|| format!("shard {}", d.display()))?;
			meta.tokens += shard.meta.tokens;
			meta.token_bytes = meta.token_bytes.max(shard.meta.token_bytes);
			meta.entry_bytes = meta.entry_bytes.max(shard.meta.entry_bytes);
			meta.docs.extend_from_slice(&shard.meta.docs);
			shards.push(shard);
		}
		let positions = meta.docs.iter().enumerate().map(|(i, d)| ((d.datanet, d.version, d.index), i)).collect();
		let copies: super::dedup::Copies = match std::fs::read(dir.join("copies.json")) {
			Ok(b) => serde_json::from_slice(&b).context("copies.json")?,
			Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
			Err(e) => return Err(e).context("copies.json"),
		};
		ensure!(
			copies.copies.is_empty() || copies.docs == meta.docs.len(),
			"copies.json was found over {} documents, the index has {}",
			copies.docs,
			meta.docs.len()
		);
		// Copies ascending; an original is another document of the index and no copy itself (it
		// may sit after its copy: originals are the earliest by age, e.g. contribution id).
		ensure!(
			copies.copies.windows(2).all(|w| w[0].0 < w[1].0) &&
				copies.copies.iter().all(|&(c, o, _)| o != c && c < meta.docs.len() && o < meta.docs.len() && copies.original(o).is_none()),
			"copies.json names documents out of order, beyond the index, or a copy as an original"
		);
		Ok(Self { shards, positions, copies, meta })
	}

	/// The near-copies of earlier documents this index found (for curators), and their originals.
	pub fn copies(&self) -> &super::dedup::Copies {
		&self.copies
	}

	/// Shards of this index.
	pub fn shards(&self) -> usize {
		self.shards.len()
	}

	/// The shard holding document `d`, and `d`'s number in it.
	fn shard_of(&self, d: usize) -> Option<(&Shard, usize)> {
		let i = self.shards.partition_point(|s| s.first_doc <= d).checked_sub(1)?;
		let s = &self.shards[i];
		(d - s.first_doc < s.meta.docs.len()).then_some((s, d - s.first_doc))
	}

	/// The raw bytes of document `d` (what its content root commits to).
	pub fn raw(&self, d: usize) -> &[u8] {
		self.shard_of(d).map_or(&[], |(s, local)| s.raw(local))
	}

	/// The position of the document `(datanet, version, index)` in this index.
	pub fn position(&self, datanet: u32, version: u32, index: u32) -> Option<usize> {
		self.positions.get(&(datanet, version, index)).copied()
	}

	/// Bytes on disk per corpus token (text and suffix array; raw bytes not counted).
	pub fn bytes_per_token(&self) -> f64 {
		let bytes: usize = self.shards.iter().map(|s| s.tokens.len() + s.sa.len() + s.docs.len()).sum();
		bytes as f64 / self.meta.tokens.max(1) as f64
	}

	/// Occurrences of `q` in the corpus (never across documents).
	pub fn count(&self, q: &[u32]) -> u64 {
		self.shards.iter().map(|s| s.range(q)).map(|(a, b)| (b - a) as u64).sum()
	}

	/// Whether `q` occurs in any shard.
	pub fn occurs(&self, q: &[u32]) -> bool {
		self.shards.iter().any(|s| s.occurs(q))
	}

	/// How often `q` occurs, and the documents of its first `max` occurrences (shard by shard,
	/// each in suffix-array order), sorted and distinct.
	fn occurrences(&self, q: &[u32], max: usize) -> (u64, Vec<usize>) {
		let mut count = 0u64;
		let mut docs = Vec::new();
		for s in &self.shards {
			let (a, b) = s.range(q);
			count += (b - a) as u64;
			let take = max.saturating_sub(docs.len()).min(b - a);
			docs.extend((a..a + take).map(|k| s.first_doc + s.doc_of(s.sa_at(k))));
		}
		docs.sort_unstable();
		docs.dedup();
		(count, docs)
	}

	/// The longest suffix of `prompt` that occurs in the corpus (the ∞-gram context length),
	/// by binary search on the length: occurrence is monotone (a suffix of an occurring span
	/// occurs).
	pub fn longest_suffix(&self, prompt: &[u32]) -> usize {
		let (mut lo, mut hi) = (0, prompt.len()); // lo occurs, answer in [lo, hi]
		while lo < hi {
			let mid = (lo + hi + 1) / 2;
			if self.occurs(&prompt[prompt.len() - mid..]) {
				lo = mid;
			} else {
				hi = mid - 1;
			}
		}
		lo
	}

	/// For each position `i`, the length of the longest span ending at `i` that occurs in the
	/// corpus. Uses `L(i) ≤ L(i−1) + 1`, so the number of lookups is linear in the answer. A
	/// sharded index is searched shard by shard in parallel: the corpus's `L(i)` is the largest of
	/// the shards' (a span occurs in the corpus iff it occurs in some shard).
	pub fn longest_matches(&self, answer: &[u32]) -> Vec<usize> {
		use rayon::prelude::*;
		let one = |occurs: &dyn Fn(&[u32]) -> bool| {
			let mut out = Vec::with_capacity(answer.len());
			let mut prev = 0usize;
			for i in 0..answer.len() {
				let mut len = prev + 1;
				while len > 0 && !occurs(&answer[i + 1 - len..=i]) {
					len -= 1;
				}
				out.push(len);
				prev = len;
			}
			out
		};
		if self.shards.len() < 2 {
			return one(&|q| self.occurs(q));
		}
		self.shards
			.par_iter()
			.map(|s| one(&|q| s.occurs(q)))
			.reduce(|| vec![0; answer.len()], |a, b| a.into_iter().zip(b).map(|(x, y)| x.max(y)).collect())
	}

	/// Attributes `answer` to the corpus documents (see the module docs for the scoring).
	pub fn attribute(&self, answer: &[u32], p: &AttributionParams) -> Attribution {
		self.attribute_ranked(answer, p, None)
	}

	/// [`Self::attribute`], with the weight of a span held by several documents split by their
	/// relevance to the whole answer (`rank`: BM25 scores of candidate positions, e.g.
	/// [`super::retrieval::RetrievalIndex::relevance`]) instead of equally: document `d` gets a
	/// part in proportion to `RANK_FLOOR + rel(d) / max rel`, so the holder that shares the
	/// answer's other (paraphrased) words earns most and none earns nothing. When no holder
	/// shares a term with the answer, the split is equal.
	pub fn attribute_ranked(&self, answer: &[u32], p: &AttributionParams, rank: Option<Relevance<'_>>) -> Attribution {
		let l = self.longest_matches(answer);
		let n_tokens = self.meta.tokens.max(1) as f64;
		let mut spans = Vec::new();
		let mut held: Vec<Vec<usize>> = Vec::new();
		let mut covered = vec![false; answer.len()];
		for i in 0..answer.len() {
			let len = l[i];
			let maximal = i + 1 == answer.len() || l[i + 1] <= len;
			if len < p.min_len || !maximal {
				continue;
			}
			let start = i + 1 - len;
			let q = &answer[start..=i];
			let (count, mut docs) = self.occurrences(q, p.max_occurrences);
			// A near-copy shares no credit for a span its original holds too: the original alone
			// earns it (the copy still earns for text of its own).
			let holders = docs.clone();
			docs.retain(|&d| self.copies.original(d).is_none_or(|o| holders.binary_search(&o).is_err()));
			let weight = len as f64 * (1.0 + (n_tokens / count as f64).log2());
			covered[start..=i].iter_mut().for_each(|c| *c = true);
			spans.push(Span { start, end: i + 1, count, weight, docs: docs.iter().map(|d| self.meta.docs[*d]).collect() });
			held.push(docs);
		}
		// Relevance of the documents that share a span with others (only those need a split).
		let relevance = match rank {
			Some(rank) => {
				let mut shared: Vec<usize> = held.iter().filter(|d| d.len() > 1).flatten().copied().collect();
				shared.sort_unstable();
				shared.dedup();
				rank(&shared)
			},
			None => Default::default(),
		};
		let mut credit: std::collections::BTreeMap<usize, f64> = Default::default();
		for (s, docs) in spans.iter().zip(&held) {
			let max = docs.iter().filter_map(|d| relevance.get(d)).fold(0.0f32, |m, r| m.max(*r)) as f64;
			let part = |d: &usize| if max > 0.0 { RANK_FLOOR + relevance.get(d).copied().unwrap_or(0.0).max(0.0) as f64 / max } else { 1.0 };
			let total: f64 = docs.iter().map(part).sum();
			for d in docs {
				*credit.entry(*d).or_default() += s.weight * part(d) / total;
			}
		}
		let mut ranked: Vec<(usize, f64)> = credit.into_iter().collect();
		ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
		let all_ranked = ranked.iter().map(|(d, c)| (*d, *c)).collect();
		ranked.truncate(p.top_k);
		let coverage = if answer.is_empty() { 0.0 } else { covered.iter().filter(|c| **c).count() as f64 / answer.len() as f64 };
		let total: f64 = ranked.iter().map(|r| r.1).sum();
		let shares = ranked
			.iter()
			.map(|(d, c)| (self.meta.docs[*d], ((c / total) * coverage * 1e9).floor() as u32))
			.filter(|(_, s)| *s > 0)
			.collect();
		Attribution { spans, shares, coverage, claims: Vec::new(), ranked: all_ranked }
	}

	/// [`Self::attribute`], then the byte-level claims that back it and the shares capped by
	/// what those claims cover (see the module docs). `text` is the answer `answer` decodes to;
	/// `decode` detokenizes (the served model's tokenizer).
	/// Only documents `allowed` (the served model's lineage) are credited.
	pub fn attribute_claimed(
		&self,
		answer: &[u32],
		text: &str,
		decode: &dyn Fn(&[u32]) -> Option<String>,
		allowed: &dyn Fn(&DocRef) -> bool,
		p: &AttributionParams,
		rank: Option<Relevance<'_>>,
	) -> Attribution {
		use openledger_primitives::evidence::{covered_bytes, pick_covering, share_cap, MAX_EVIDENCE_SPANS, MAX_SPAN_BYTES, MIN_SPAN_BYTES};
		let mut a = self.attribute_ranked(answer, p, rank);
		let out = text.as_bytes();
		// Per document: candidate claims (output start, output end, offset in the document).
		let mut found: std::collections::BTreeMap<usize, Vec<(u64, u64, u64)>> = Default::default();
		// Each span's answer bytes and the documents it is in.
		let mut span_bytes: Vec<(usize, usize, Vec<usize>)> = Vec::new();
		for s in &a.spans {
			let Some(piece) = decode(&answer[s.start..s.end]) else { continue };
			let piece = piece.trim_matches('\u{FFFD}');
			if piece.is_empty() {
				continue;
			}
			// Every place of the answer holding the span's text (any of them is a true claim; a
			// repeated copy is claimed too).
			for (bs, _) in text.match_indices(piece).take(MAX_REPEATS) {
				let be = bs + piece.len();
				span_bytes.push((bs, be, s.docs.iter().filter(|d| allowed(d)).filter_map(|d| self.position(d.datanet, d.version, d.index)).collect()));
				for d in s.docs.iter().filter(|d| allowed(d)) {
					let Some(pos) = self.position(d.datanet, d.version, d.index) else { continue };
					let raw = self.raw(pos);
					// The span's bytes as they are; else its pieces between bytes a record's syntax
					// escapes (quotes, backslashes, control bytes: JSON text), each found alone.
					let finder = memchr::memmem::Finder::new(&out[bs..be]);
					let mut pieces = vec![(bs, be)];
					if finder.find(raw).is_none() {
						pieces.clear();
						let mut from = bs;
						for k in bs..=be {
							// (JSON escapes quotes, backslashes and control bytes, and may escape
						// `/` and anything non-ASCII as `\\uXXXX`.)
						if k == be || matches!(out[k], b'"' | b'\\' | b'/') || out[k] < 0x20 || out[k] >= 0x80 {
								if k - from >= 4 {
									pieces.push((from, k));
								}
								from = k + 1;
							}
						}
					}
					for (bs, be) in pieces {
						// Each occurrence (the first 64) extended byte by byte as far as both agree; the
						// longest kept. Short token spans grow into the verbatim copy they are part of.
						let mut best: Option<(usize, usize, usize)> = None;
						for off in memchr::memmem::find_iter(raw, &out[bs..be]).take(64) {
							let (mut a0, mut b0, mut o0) = (bs, be, off);
							while a0 > 0 && o0 > 0 && out[a0 - 1] == raw[o0 - 1] {
								a0 -= 1;
								o0 -= 1;
							}
							while b0 < out.len() && o0 + (b0 - a0) < raw.len() && out[b0] == raw[o0 + (b0 - a0)] {
								b0 += 1;
							}
							if best.is_none_or(|(a, b, _)| b0 - a0 > b - a) {
								best = Some((a0, b0, o0));
							}
						}
						let Some((a0, b0, o0)) = best else { continue };
						if b0 - a0 < MIN_SPAN_BYTES as usize {
							continue;
						}
						// Cut into even pieces of at most MAX_SPAN_BYTES (so none is short).
						let len = (b0 - a0) as u64;
						let pieces = len.div_ceil(MAX_SPAN_BYTES as u64);
						let size = len.div_ceil(pieces);
						let mut at = 0u64;
						while at < len {
							let n = size.min(len - at);
							if n >= MIN_SPAN_BYTES as u64 {
								found.entry(pos).or_default().push((a0 as u64 + at, a0 as u64 + at + n, o0 as u64 + at));
							}
							at += n;
						}
					}
				}
			}
		}
		// The credited documents: first, for each span (longest first), a document holding it
		// with a claim over it, unless a chosen one covers it already — so that while there is
		// room no provable span is left unattributed; then the rest by credit. Only documents
		// with claims can be credited (the chain allows no share its spans do not justify).
		let credit: std::collections::HashMap<usize, f64> = a.ranked.iter().copied().collect();
		let overlaps = |pos: usize, bs: usize, be: usize| {
			found.get(&pos).is_some_and(|cs| cs.iter().any(|c| (c.0 as usize) < be && (c.1 as usize) > bs))
		};
		let mut chosen: Vec<usize> = Vec::new();
		span_bytes.sort_by_key(|(bs, be, _)| std::cmp::Reverse(be - bs));
		for (bs, be, docs) in &span_bytes {
			if chosen.len() >= p.top_k || chosen.iter().any(|&d| overlaps(d, *bs, *be)) {
				continue;
			}
			let best = docs.iter().copied().filter(|&d| overlaps(d, *bs, *be)).max_by(|x, y| {
				credit.get(x).unwrap_or(&0.0).total_cmp(credit.get(y).unwrap_or(&0.0)).then(y.cmp(x))
			});
			if let Some(d) = best {
				chosen.push(d);
			}
		}
		for (d, _) in &a.ranked {
			if chosen.len() >= p.top_k {
				break;
			}
			if !chosen.contains(d) && found.contains_key(d) && allowed(&self.meta.docs[*d]) {
				chosen.push(*d);
			}
		}
		let total: f64 = chosen.iter().map(|d| credit.get(d).unwrap_or(&0.0)).sum();
		let mut claims = Vec::new();
		let mut shares = Vec::new();
		for d in chosen {
			let doc = self.meta.docs[d];
			let parts = if total > 0.0 { ((credit.get(&d).unwrap_or(&0.0) / total) * a.coverage * 1e9).floor() as u32 } else { 0 };
			let mut cands = found.remove(&d).unwrap_or_default();
			cands.sort_by(|x, y| (y.1 - y.0).cmp(&(x.1 - x.0)).then(x.cmp(y)));
			cands.dedup();
			// Every claim of a credited document is committed (an omission is refuted by any of
			// them), the longest first when there are too many, in output order.
			cands.truncate(MAX_CLAIMS_PER_DOC);
			cands.sort();
			// The share is capped by what MAX_EVIDENCE_SPANS of them cover, picked exactly as the
			// worker's answer to a dispute of this share will pick them.
			let ranges: Vec<(u64, u64)> = cands.iter().map(|k| (k.0, k.1)).collect();
			let best = pick_covering(&ranges, MAX_EVIDENCE_SPANS as usize).into_iter().map(|i| ranges[i]).collect();
			let capped = parts.min(share_cap(covered_bytes(best), out.len() as u32).deconstruct());
			if capped == 0 {
				continue;
			}
			let contribution = openledger_primitives::receipt::ContributionRef { datanet: doc.datanet, version: doc.version, index: doc.index };
			claims.extend(cands.iter().map(|k| openledger_primitives::evidence::SpanClaim {
				output_start: k.0 as u32,
				len: (k.1 - k.0) as u32,
				contribution,
				offset: k.2,
			}));
			shares.push((doc, capped));
		}
		a.shares = shares;
		a.claims = claims;
		a
	}
}

/// BM25 relevance of candidate documents (positions) to an answer; absent: none.
pub type Relevance<'a> = &'a dyn Fn(&[usize]) -> std::collections::HashMap<usize, f32>;

/// The part of a span's weight a holder with no relevance to the answer still gets, beside 1 for
/// the most relevant holder ([`SpanIndex::attribute_ranked`]).
pub const RANK_FLOOR: f64 = 0.1;

/// Most claims committed per credited document.
pub const MAX_CLAIMS_PER_DOC: usize = 64;

/// Most places of the answer a span's text is claimed at.
const MAX_REPEATS: usize = 8;

#[derive(Clone, Debug)]
pub struct AttributionParams {
	/// Shortest span (tokens) that earns credit.
	pub min_len: usize,
	/// Occurrences of a span looked at for its documents (in suffix-array order).
	pub max_occurrences: usize,
	/// Documents credited at most (receipts carry up to 32 shares).
	pub top_k: usize,
}

impl Default for AttributionParams {
	fn default() -> Self {
		Self { min_len: 4, max_occurrences: 256, top_k: 32 }
	}
}

#[derive(Clone, Debug, Serialize)]
pub struct Span {
	/// Token range `[start, end)` of the answer.
	pub start: usize,
	pub end: usize,
	/// Occurrences of the span in the corpus.
	pub count: u64,
	pub weight: f64,
	pub docs: Vec<DocRef>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Attribution {
	pub spans: Vec<Span>,
	/// Documents with their share in parts per billion (`Perbill`); the sum is at most
	/// `coverage` × 10⁹.
	pub shares: Vec<(DocRef, u32)>,
	/// Fraction of answer tokens inside credited spans.
	pub coverage: f64,
	/// The byte-level claims behind the shares ([`SpanIndex::attribute_claimed`]; empty from
	/// [`SpanIndex::attribute`]), ordered by document then output position.
	pub claims: Vec<openledger_primitives::evidence::SpanClaim>,
	/// Every document with credit (index in the corpus, credit), highest first.
	#[serde(skip)]
	pub ranked: Vec<(usize, f64)>,
}

#[cfg(test)]
mod tests {
	use super::*;

	fn doc(i: u32) -> DocRef {
		DocRef { datanet: 1, version: 2, index: i, content_hash: [i as u8; 32] }
	}

	/// Naive counting over the documents, the reference for the index.
	fn naive_count(docs: &[Vec<u32>], q: &[u32]) -> u64 {
		docs.iter().map(|d| if q.len() > d.len() { 0 } else { d.windows(q.len()).filter(|w| *w == q).count() as u64 }).sum()
	}

	#[test]
	fn ranking_splits_a_shared_span_by_relevance_to_the_answer() {
		// Documents 0 and 1 both hold the span 10..16; the answer holds nothing else.
		let docs: Vec<Vec<u32>> = vec![vec![1, 2, 10, 11, 12, 13, 14, 15, 3], vec![4, 10, 11, 12, 13, 14, 15, 5, 6], vec![7, 8, 9]];
		let dir = tempfile::tempdir().unwrap();
		build_index(dir.path(), docs.iter().enumerate().map(|(i, d)| (doc(i as u32), d.as_slice(), &b""[..]))).unwrap();
		let idx = SpanIndex::open(dir.path()).unwrap();
		let answer = [10, 11, 12, 13, 14, 15];
		let p = AttributionParams::default();
		let share = |a: &Attribution, i: u32| a.shares.iter().find(|s| s.0.index == i).map_or(0, |s| s.1);
		let equal = idx.attribute(&answer, &p);
		assert_eq!(share(&equal, 0), share(&equal, 1));
		let asked = std::cell::RefCell::new(Vec::new());
		let rank = |c: &[usize]| {
			asked.borrow_mut().push(c.to_vec());
			[(1usize, 2.0f32)].into_iter().collect::<std::collections::HashMap<_, _>>()
		};
		let ranked = idx.attribute_ranked(&answer, &p, Some(&rank));
		assert_eq!(*asked.borrow(), vec![vec![0, 1]], "only the holders of a shared span are ranked");
		let (s0, s1) = (share(&ranked, 0) as f64, share(&ranked, 1) as f64);
		assert!((s1 / s0 - (1.0 + RANK_FLOOR) / RANK_FLOOR).abs() < 1e-3, "{s0} {s1}");
		let (sum_ranked, sum_equal) = (share(&ranked, 0) + share(&ranked, 1), share(&equal, 0) + share(&equal, 1));
		assert!(sum_ranked.abs_diff(sum_equal) <= 2 && sum_ranked <= 1_000_000_000, "ranking moves credit, it adds none (floors aside)");
		// No holder relevant: the equal split.
		let none = |_: &[usize]| std::collections::HashMap::new();
		assert_eq!(format!("{:?}", idx.attribute_ranked(&answer, &p, Some(&none)).shares), format!("{:?}", equal.shares));
	}

	#[test]
	fn counts_and_longest_matches_equal_a_naive_scan() {
		use rand::{Rng, SeedableRng};
		let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
		let docs: Vec<Vec<u32>> = (0..40).map(|_| (0..rng.gen_range(1..60)).map(|_| rng.gen_range(0..12)).collect()).collect();
		let dir = tempfile::tempdir().unwrap();
		build_index(dir.path(), docs.iter().enumerate().map(|(i, d)| (doc(i as u32), d.as_slice(), &b""[..]))).unwrap();
		let idx = SpanIndex::open(dir.path()).unwrap();
		assert_eq!(idx.meta.tokens, docs.iter().map(|d| d.len() as u64).sum::<u64>());
		assert!((idx.bytes_per_token() - 6.0).abs() < 1.0);
		for _ in 0..2000 {
			let q: Vec<u32> = (0..rng.gen_range(1..6)).map(|_| rng.gen_range(0..13)).collect();
			assert_eq!(idx.count(&q), naive_count(&docs, &q), "{q:?}");
		}
		for _ in 0..200 {
			let a: Vec<u32> = (0..rng.gen_range(1..30)).map(|_| rng.gen_range(0..12)).collect();
			let got = idx.longest_matches(&a);
			for i in 0..a.len() {
				let want = (0..=i + 1).rev().find(|&l| l == 0 || naive_count(&docs, &a[i + 1 - l..=i]) > 0).unwrap();
				assert_eq!(got[i], want, "answer {a:?} position {i}");
				assert_eq!(idx.longest_suffix(&a[..=i]), want);
			}
		}
		// A match never crosses a document boundary.
		let joined: Vec<u32> = [docs[0].as_slice(), docs[1].as_slice()].concat();
		let l = idx.longest_matches(&joined);
		assert!(l.iter().all(|&x| x <= joined.len()));
	}

	/// A random corpus with ids below `vocab`, and queries over it.
	fn random_corpus(seed: u64, vocab: u32) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
		use rand::{Rng, SeedableRng};
		let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
		// Few distinct ids (so spans repeat), spread over the whole vocabulary.
		let alphabet: Vec<u32> = (0..12).map(|_| rng.gen_range(0..vocab)).collect();
		let pick = |rng: &mut rand_chacha::ChaCha8Rng| alphabet[rng.gen_range(0..alphabet.len())];
		let docs = (0..30).map(|_| (0..rng.gen_range(1..50)).map(|_| pick(&mut rng)).collect()).collect();
		let queries = (0..400).map(|_| (0..rng.gen_range(1..8)).map(|_| pick(&mut rng)).collect()).collect();
		(docs, queries)
	}

	/// Every width (2- or 4-byte ids, 4- or 5-byte suffix-array entries) answers exactly as a
	/// naive scan, with the file sizes the widths say.
	#[test]
	fn every_width_answers_like_a_naive_scan() {
		let (docs, queries) = random_corpus(7, 60_000);
		let n: u64 = docs.iter().map(|d| d.len() as u64).sum();
		let mut attributions = Vec::new();
		for (wide_tokens, wide_entries) in [(false, false), (true, false), (false, true), (true, true)] {
			let dir = tempfile::tempdir().unwrap();
			let opts = BuildOptions { wide_tokens, wide_entries, ..Default::default() };
			let meta = build_index_with(dir.path(), docs.iter().enumerate().map(|(i, d)| (doc(i as u32), d.as_slice(), &b""[..])), opts).unwrap();
			let (tb, eb) = (if wide_tokens { 4 } else { 2 }, if wide_entries { 5 } else { 4 });
			assert_eq!((meta.token_bytes, meta.entry_bytes), (tb, eb));
			let size = |f: &str| std::fs::metadata(dir.path().join(f)).unwrap().len();
			assert_eq!(size("tokens.bin"), tb as u64 * (n + docs.len() as u64));
			assert_eq!(size("sa.bin"), eb as u64 * n);
			let idx = SpanIndex::open(dir.path()).unwrap();
			for q in &queries {
				assert_eq!(idx.count(q), naive_count(&docs, q), "{q:?} at widths {tb}/{eb}");
			}
			let answer: Vec<u32> = queries.iter().take(20).flatten().copied().collect();
			let got = idx.longest_matches(&answer);
			for i in 0..answer.len() {
				let want = (0..=i + 1).rev().find(|&l| l == 0 || naive_count(&docs, &answer[i + 1 - l..=i]) > 0).unwrap();
				assert_eq!(got[i], want, "position {i} at widths {tb}/{eb}");
			}
			let a = idx.attribute(&answer, &AttributionParams::default());
			attributions.push((a.shares, a.spans.iter().map(|s| (s.start, s.end, s.count)).collect::<Vec<_>>()));
		}
		assert!(!attributions[0].0.is_empty(), "the answer earns credit");
		assert!(attributions.iter().all(|a| *a == attributions[0]), "the same attribution at every width");
	}

	/// A Qwen2-sized vocabulary (151,936 ids) gets 4-byte ids by itself; an id beyond what the
	/// suffix sorter takes is refused, and one a 2-byte index cannot hold is never found in it.
	#[test]
	fn large_vocabularies_get_wide_token_ids() {
		let (docs, queries) = random_corpus(11, 151_936);
		assert!(docs.iter().flatten().any(|&t| t >= SEPARATOR as u32), "ids past u16 in the corpus");
		let dir = tempfile::tempdir().unwrap();
		let meta = build_index(dir.path(), docs.iter().enumerate().map(|(i, d)| (doc(i as u32), d.as_slice(), &b""[..]))).unwrap();
		assert_eq!((meta.token_bytes, meta.entry_bytes), (4, 4));
		let idx = SpanIndex::open(dir.path()).unwrap();
		assert!((idx.bytes_per_token() - 8.0).abs() < 1.0);
		for q in &queries {
			assert_eq!(idx.count(q), naive_count(&docs, q), "{q:?}");
		}
		let too_big = vec![MAX_TOKEN_ID + 1];
		let err = build_index(tempfile::tempdir().unwrap().path(), [(doc(0), too_big.as_slice(), &b""[..])]).unwrap_err();
		assert!(err.to_string().contains("above the largest an index takes"), "{err}");
		// A narrow index never matches an id it cannot hold (not even the separator's value).
		let (small, _) = random_corpus(3, 1_000);
		let dir = tempfile::tempdir().unwrap();
		build_index(dir.path(), small.iter().enumerate().map(|(i, d)| (doc(i as u32), d.as_slice(), &b""[..]))).unwrap();
		let idx = SpanIndex::open(dir.path()).unwrap();
		assert_eq!(idx.meta.token_bytes, 2);
		assert_eq!(idx.count(&[SEPARATOR as u32]), 0);
		assert_eq!(idx.count(&[small[0][0] + 65_536]), 0);
		assert!(idx.count(&[small[0][0]]) > 0);
	}

	/// A corpus split into shards (built one at a time within a token budget) answers counts,
	/// longest matches, attribution and raw bytes exactly as one index does.
	#[test]
	fn shards_answer_as_one_index() {
		let (docs, queries) = random_corpus(13, 151_936);
		let raws: Vec<Vec<u8>> = (0..docs.len()).map(|i| format!("document {i}").into_bytes()).collect();
		let build = |dir: &Path, opts: BuildOptions| {
			build_index_with(dir, docs.iter().enumerate().map(|(i, d)| (doc(i as u32), d.as_slice(), raws[i].as_slice())), opts).unwrap()
		};
		let one_dir = tempfile::tempdir().unwrap();
		build(one_dir.path(), BuildOptions::default());
		let one = SpanIndex::open(one_dir.path()).unwrap();
		let dir = tempfile::tempdir().unwrap();
		let meta = build(dir.path(), BuildOptions { shard_tokens: Some(100), ..Default::default() });
		let sharded = SpanIndex::open(dir.path()).unwrap();
		assert!(sharded.shards() >= 5, "{} shards", sharded.shards());
		assert_eq!(sharded.meta.docs, one.meta.docs);
		assert_eq!((sharded.meta.tokens, meta.tokens), (one.meta.tokens, one.meta.tokens));
		// Each shard kept within its budget, or holds a single longer document.
		for i in 0..sharded.shards() {
			let m: Meta = serde_json::from_slice(&std::fs::read(dir.path().join(format!("shard-{i:04}/meta.json"))).unwrap()).unwrap();
			assert!(m.tokens <= 100 || m.docs.len() == 1, "shard {i}: {} tokens in {} documents", m.tokens, m.docs.len());
		}
		for q in &queries {
			assert_eq!(sharded.count(q), naive_count(&docs, q), "{q:?}");
		}
		let answer: Vec<u32> = queries.iter().take(30).flatten().copied().collect();
		assert_eq!(sharded.longest_matches(&answer), one.longest_matches(&answer));
		let (a, b) = (sharded.attribute(&answer, &AttributionParams::default()), one.attribute(&answer, &AttributionParams::default()));
		assert!(!b.shares.is_empty());
		assert_eq!(a.shares, b.shares);
		// Past `max_occurrences`, a sharded index reads the earlier shards' documents first: the
		// documents of a frequent token's first two occurrences are all in the earliest shard
		// holding it.
		let q = [docs[0][0]];
		let (count, first) = sharded.occurrences(&q, 2);
		assert_eq!(count, naive_count(&docs, &q));
		assert!(count > 2 && !first.is_empty() && first.len() <= 2);
		let earliest = docs.iter().position(|d| d.contains(&q[0])).unwrap();
		let (shard, _) = sharded.shard_of(earliest).unwrap();
		assert!(
			first.iter().all(|&d| d >= shard.first_doc && d < shard.first_doc + shard.meta.docs.len()),
			"{first:?} outside the shard of document {earliest}"
		);
		for (i, d) in one.meta.docs.iter().enumerate() {
			let pos = sharded.position(d.datanet, d.version, d.index).unwrap();
			assert_eq!(sharded.raw(pos), raws[i].as_slice());
		}
		// Rebuilt as one shard in the same place: the old shard list no longer applies.
		build(dir.path(), BuildOptions::default());
		assert_eq!(SpanIndex::open(dir.path()).unwrap().shards(), 1);
		// A shard list naming a path outside the index is refused.
		std::fs::write(dir.path().join("shards.json"), br#"{"format":3,"shards":["../x"]}"#).unwrap();
		assert!(SpanIndex::open(dir.path()).is_err());
	}

	/// 5-byte entries hold positions past 2³² (a 40-bit round trip through the writer and reader).
	#[test]
	fn forty_bit_entries_round_trip() {
		for v in [0u64, 1, u32::MAX as u64, (1 << 32) + 7, (1 << 39) + 12_345, (1 << 40) - 1] {
			let mut buf = Vec::new();
			write_le(&mut buf, v, 5).unwrap();
			assert_eq!(buf.len(), 5);
			assert_eq!(read_le(&buf), v);
		}
		let mut buf = Vec::new();
		write_le(&mut buf, 0xAABB_CCDD, 4).unwrap();
		assert_eq!(read_le(&buf), 0xAABB_CCDD);
	}

	/// Documents whose starts do not sit after separators (a hostile or corrupt `docs.u64`)
	/// are refused at open.
	#[test]
	fn document_starts_must_match_the_separators() {
		let (docs, _) = random_corpus(17, 500);
		let dir = tempfile::tempdir().unwrap();
		build_index(dir.path(), docs.iter().enumerate().map(|(i, d)| (doc(i as u32), d.as_slice(), &b""[..]))).unwrap();
		let path = dir.path().join("docs.u64");
		let good = std::fs::read(&path).unwrap();
		let mut bad = good.clone();
		let last = bad.len() - 8;
		bad[last..].copy_from_slice(&u64::MAX.to_le_bytes());
		std::fs::write(&path, &bad).unwrap();
		assert!(SpanIndex::open(dir.path()).is_err(), "a start past the text");
		let mut shifted = good.clone();
		let second = u64::from_le_bytes(good[8..16].try_into().unwrap());
		shifted[8..16].copy_from_slice(&(second + 1).to_le_bytes());
		std::fs::write(&path, &shifted).unwrap();
		assert!(SpanIndex::open(dir.path()).is_err(), "a start not after a separator");
		std::fs::write(&path, &good).unwrap();
		assert!(SpanIndex::open(dir.path()).is_ok());
	}

	/// A copier's edited copy of an earlier contribution earns nothing for the text it took (the
	/// original does), and still earns for a sentence of its own.
	#[test]
	fn a_near_copy_never_takes_the_originals_credit() {
		use rand::{Rng, SeedableRng};
		let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
		let mut docs: Vec<Vec<u32>> = (0..6).map(|_| (0..200).map(|_| rng.gen_range(0..30_000)).collect()).collect();
		let own: Vec<u32> = (0..30).map(|_| rng.gen_range(30_000..32_000)).collect();
		let mut copy = docs[1].clone();
		copy[50] = 31_999;
		copy.extend_from_slice(&own);
		docs.push(copy); // document 6 copies document 1
		let dir = tempfile::tempdir().unwrap();
		build_index(dir.path(), docs.iter().enumerate().map(|(i, d)| (doc(i as u32), d.as_slice(), &b""[..]))).unwrap();
		let idx = SpanIndex::open(dir.path()).unwrap();
		assert_eq!(idx.copies().original(6), Some(1));
		// Repeating the original's text: only the original is credited, though the copy holds it.
		let taken: Vec<u32> = docs[1][100..140].to_vec();
		assert_eq!(idx.count(&taken), 2);
		let a = idx.attribute(&taken, &AttributionParams::default());
		assert_eq!(a.shares.iter().map(|s| s.0).collect::<Vec<_>>(), vec![doc(1)]);
		// The copy's own sentence earns the copy.
		let a = idx.attribute(&own, &AttributionParams::default());
		assert_eq!(a.shares.iter().map(|s| s.0).collect::<Vec<_>>(), vec![doc(6)]);
		// A copy list found over another corpus is refused, not applied.
		let path = dir.path().join("copies.json");
		let good = std::fs::read_to_string(&path).unwrap();
		std::fs::write(&path, good.replace("\"docs\":7", "\"docs\":8")).unwrap();
		assert!(SpanIndex::open(dir.path()).is_err());
		// Without copies.json (an index from before), both share the taken text.
		std::fs::remove_file(&path).unwrap();
		let idx = SpanIndex::open(dir.path()).unwrap();
		let a = idx.attribute(&taken, &AttributionParams::default());
		assert_eq!(a.shares.iter().map(|s| s.0).collect::<Vec<_>>(), vec![doc(1), doc(6)]);
		// By age (contribution ids): the copy sits before its original in the index (accepted
		// first) but is younger; the index opens and still credits only the original.
		let mut aged: Vec<Vec<u32>> = docs.clone();
		aged.swap(1, 6); // position 1: the copy; position 6: the original
		let ages: Vec<u64> = (0..7).map(|i| match i {
			1 => 100,
			6 => 2,
			i => 10 + i as u64,
		}).collect();
		let dir = tempfile::tempdir().unwrap();
		build_index_aged(dir.path(), aged.iter().enumerate().map(|(i, d)| (doc(i as u32), d.as_slice(), &b""[..])), Some(&ages), BuildOptions::default()).unwrap();
		let idx = SpanIndex::open(dir.path()).unwrap();
		assert_eq!((idx.copies().original(1), idx.copies().original(6)), (Some(6), None));
		let a = idx.attribute(&taken, &AttributionParams::default());
		assert_eq!(a.shares.iter().map(|s| s.0).collect::<Vec<_>>(), vec![doc(6)]);
	}

	/// An index whose meta names widths it does not have is refused, not misread.
	#[test]
	fn mismatched_widths_are_refused() {
		let (docs, _) = random_corpus(5, 500);
		let dir = tempfile::tempdir().unwrap();
		build_index(dir.path(), docs.iter().enumerate().map(|(i, d)| (doc(i as u32), d.as_slice(), &b""[..]))).unwrap();
		let path = dir.path().join("meta.json");
		let good = std::fs::read_to_string(&path).unwrap();
		for (from, to) in [("\"token_bytes\":2", "\"token_bytes\":4"), ("\"entry_bytes\":4", "\"entry_bytes\":5"), ("\"token_bytes\":2", "\"token_bytes\":3")] {
			assert!(good.contains(from), "{good}");
			std::fs::write(&path, good.replace(from, to)).unwrap();
			assert!(SpanIndex::open(dir.path()).is_err(), "{to} accepted");
		}
		std::fs::write(&path, good).unwrap();
		assert!(SpanIndex::open(dir.path()).is_ok());
	}

	#[test]
	fn attribution_credits_the_documents_a_copied_answer_came_from() {
		let docs: Vec<Vec<u32>> = vec![
			(100..140).collect(),
			(200..240).collect(),
			(300..340).collect(),
			[&(100..110).collect::<Vec<u32>>()[..], &[999, 998]].concat(), // shares a span with doc 0
		];
		let dir = tempfile::tempdir().unwrap();
		build_index(dir.path(), docs.iter().enumerate().map(|(i, d)| (doc(i as u32), d.as_slice(), &b""[..]))).unwrap();
		let idx = SpanIndex::open(dir.path()).unwrap();
		// 20 tokens of doc 1, 2 unknown tokens, 8 tokens of doc 0 that doc 3 also has.
		let answer: Vec<u32> = [(210..230).collect::<Vec<u32>>(), vec![5000, 5001], (100..108).collect()].concat();
		let a = idx.attribute(&answer, &AttributionParams::default());
		assert_eq!(a.spans.len(), 2);
		assert_eq!((a.spans[0].start, a.spans[0].end, a.spans[0].count), (0, 20, 1));
		assert_eq!(a.spans[1].docs, vec![doc(0), doc(3)]);
		assert!((a.coverage - 28.0 / 30.0).abs() < 1e-9);
		assert_eq!(a.shares[0].0, doc(1), "the long, unique span weighs most");
		let total: u64 = a.shares.iter().map(|s| s.1 as u64).sum();
		assert!(total <= (a.coverage * 1e9) as u64 && total > (a.coverage * 1e9) as u64 - 10);
		// Deterministic.
		assert_eq!(format!("{:?}", idx.attribute(&answer, &AttributionParams::default())), format!("{a:?}"));
		// Nothing credited below the minimum length.
		let short = idx.attribute(&[210, 211, 212], &AttributionParams::default());
		assert!(short.shares.is_empty() && short.spans.is_empty());
	}

	/// Claims from a real byte-level BPE tokenizer: every claim proves against the answer's and
	/// its document's content roots, every share obeys the on-chain rule, the copy of a
	/// multi-byte text is found byte for byte, and text escaped inside a JSON record earns
	/// nothing (its bytes are not in the record verbatim).
	#[test]
	fn claims_prove_on_chain_and_shares_obey_the_rule() {
		use openledger_primitives::evidence as ev;
		let plain = "The court held that the contract was void because the seller had lied about the goods.";
		let accents = "Les élèves étudièrent la théorie des nœuds pendant tout l'été à Genève.";
		let quoted = "She said \"the bridge tolls doubled in winter\" and then the river froze solid.";
		let json = serde_json::json!({ "text": quoted }).to_string();
		let corpus = [plain, accents, quoted, "Unrelated filler text about gardens and weather."].join("\n");
		let dir = tempfile::tempdir().unwrap();
		let tk = crate::model::synthetic::train_tokenizer(&corpus.repeat(3), 400, dir.path()).unwrap();
		tk.save(dir.path().join("tokenizer.json"), false).unwrap();
		let tk = crate::tokenizer::TextTokenizer::load(dir.path()).unwrap();
		let raws: Vec<Vec<u8>> = vec![plain.as_bytes().to_vec(), accents.as_bytes().to_vec(), json.into_bytes()];
		let texts = [plain, accents, quoted];
		let ids: Vec<Vec<u32>> = texts.iter().map(|t| tk.encode(t).unwrap()).collect();
		let idx_dir = tempfile::tempdir().unwrap();
		let refs: Vec<DocRef> = (0..3).map(|i| DocRef { content_hash: ev::content_root(&raws[i as usize]).0, ..doc(i) }).collect();
		build_index(idx_dir.path(), (0..3).map(|i| (refs[i], ids[i].as_slice(), raws[i].as_slice()))).unwrap();
		let idx = SpanIndex::open(idx_dir.path()).unwrap();
		assert_eq!(idx.raw(2), raws[2].as_slice());
		assert_eq!(idx.position(1, 2, 1), Some(1));
		let answer_text = format!("In short: {plain} Also, {accents} Finally: {quoted} Done.");
		let answer = tk.encode(&answer_text).unwrap();
		let text = tk.decode(&answer).unwrap();
		assert_eq!(text, answer_text, "byte-level BPE decodes exactly");
		let a = idx.attribute_claimed(&answer, &text, &|ids| tk.decode(ids).ok(), &|_| true, &AttributionParams::default(), None);
		let out = text.as_bytes();
		let (out_tree, out_root) = (ev::content_tree(out), ev::content_root(out));
		assert!(!a.claims.is_empty());
		for c in &a.claims {
			let raw = &raws[c.contribution.index as usize];
			let proof = ev::SpanProof {
				claim: *c,
				output: ev::range_proof(&out_tree, out, c.output_start as u64, c.len).unwrap(),
				content: ev::range_proof(&ev::content_tree(raw), raw, c.offset, c.len).unwrap(),
			};
			assert_eq!(ev::verify_span(&proof, &out_root, out.len() as u32, &ev::content_root(raw)), Ok(()), "{c:?}");
		}
		let credited: Vec<u32> = a.shares.iter().map(|(d, _)| d.index).collect();
		assert!(credited.contains(&0) && credited.contains(&1), "{credited:?}");
		// The JSON record holds the quoted text escaped: its verbatim pieces are claimed, and
		// together they leave no run of MIN_SPAN_BYTES of the copy uncovered.
		let json_claims: Vec<_> = a.claims.iter().filter(|c| c.contribution.index == 2).collect();
		assert!(credited.contains(&2) && json_claims.len() >= 2, "{json_claims:?}");
		for c in &json_claims {
			let bytes = &out[c.output_start as usize..][..c.len as usize];
			assert!(quoted.contains(std::str::from_utf8(bytes).unwrap()), "{c:?}");
		}
		let at = text.find(quoted).unwrap() as u64;
		let ranges = json_claims.iter().map(|c| c.output_range()).collect();
		assert!(ev::longest_uncovered(ranges, at, at + quoted.len() as u64) < ev::MIN_SPAN_BYTES as u64);
		for (d, parts) in &a.shares {
			let ranges = a.claims.iter().filter(|c| c.contribution.index == d.index).map(|c| c.output_range()).collect();
			assert!(ev::share_justified(sp_runtime::Perbill::from_parts(*parts), ev::covered_bytes(ranges), out.len() as u32));
		}
		// The plain copy is claimed whole (extended byte by byte to the sentence's ends).
		let whole = a.claims.iter().find(|c| c.contribution.index == 0).unwrap();
		assert_eq!(&out[whole.output_start as usize..][..whole.len as usize], plain.as_bytes());
	}

	/// While there is room, no provable span is left unattributed: with two slots, a span held
	/// by two documents and another held by a third are both credited, though the duplicate
	/// holds more credit than the third.
	#[test]
	fn spans_get_a_credited_document_before_duplicates_do() {
		let a_text = "The court held that the contract was void because the seller had lied about the goods he sold, \
			and it ordered the buyer repaid in full with interest from the day of the sale until the day of payment.";
		let b_text = "Rivers freeze early up north.";
		let dup = format!("{a_text} Quoted.");
		let corpus = [a_text, b_text, dup.as_str(), "Filler about gardens."].join("\n");
		let dir = tempfile::tempdir().unwrap();
		let tk = crate::model::synthetic::train_tokenizer(&corpus.repeat(3), 400, dir.path()).unwrap();
		tk.save(dir.path().join("tokenizer.json"), false).unwrap();
		let tk = crate::tokenizer::TextTokenizer::load(dir.path()).unwrap();
		let texts = [a_text, dup.as_str(), b_text];
		let ids: Vec<Vec<u32>> = texts.iter().map(|t| tk.encode(t).unwrap()).collect();
		let idx_dir = tempfile::tempdir().unwrap();
		build_index(idx_dir.path(), (0..3).map(|i| (doc(i as u32), ids[i].as_slice(), texts[i].as_bytes()))).unwrap();
		// This test is about claims, not copies: the duplicate is a near-copy of the first
		// document, which copy detection would drop from their shared span, so the index is read
		// without its copy list.
		assert_eq!(SpanIndex::open(idx_dir.path()).unwrap().copies().original(1), Some(0));
		std::fs::remove_file(idx_dir.path().join("copies.json")).unwrap();
		let idx = SpanIndex::open(idx_dir.path()).unwrap();
		let text = format!("{a_text} And: {b_text}");
		let answer = tk.encode(&text).unwrap();
		let p = AttributionParams { top_k: 2, ..Default::default() };
		let plain = idx.attribute(&answer, &p);
		let by_credit: Vec<u32> = plain.shares.iter().map(|(d, _)| d.index).collect();
		assert_eq!(by_credit.len(), 2);
		assert!(by_credit.contains(&0) && by_credit.contains(&1), "credit alone picks the duplicates: {by_credit:?}");
		let a = idx.attribute_claimed(&answer, &text, &|x| tk.decode(x).ok(), &|_| true, &p, None);
		// Only the lineage is credited: without the third document's Datanet, the duplicates.
		let lineage_only = idx.attribute_claimed(&answer, &text, &|x| tk.decode(x).ok(), &|d| d.index != 2, &p, None);
		assert!(lineage_only.shares.iter().all(|(d, _)| d.index != 2) && lineage_only.claims.iter().all(|c| c.contribution.index != 2));
		let credited: Vec<u32> = a.shares.iter().map(|(d, _)| d.index).collect();
		assert_eq!(credited.len(), 2);
		assert!(credited.contains(&2), "the third document's span is credited: {credited:?}");
		let out = text.as_bytes();
		let at = text.find(b_text).unwrap() as u64;
		let ranges = a.claims.iter().map(|c| c.output_range()).collect();
		assert!(openledger_primitives::evidence::longest_uncovered(ranges, at, at + b_text.len() as u64) < 24, "{:?}", a.claims);
		assert!(out.len() > 0);
	}
}
