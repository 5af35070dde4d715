//! `openledger-bench bench-attribution`: the cost of span attribution for a 256-token
//! completion against the time it takes to generate that completion, measured in the same run.
//!
//! Generation: a seeded base model of realistic CPU shape decodes `--completion` tokens greedily
//! after a `--prompt`-token prompt, alone (batch 1: the request's latency) and as one row of a
//! `--batch`-row batch (its amortized share of a loaded worker's time). Attribution: the
//! completion is attributed (longest match at every position, spans, credit, shares) against a
//! span index of `--corpus-tokens` synthetic tokens in which pieces of the completion were
//! planted, so long spans are found as they are for a model that repeats its training data.
//!
//! Evidence: the same attribution with its byte-level claims (`attribute_claimed`: spans mapped
//! to the answer's bytes, found verbatim in the documents' raw bytes, extended, capped by the
//! share rule) plus what a receipt then commits to (the answer's content root, the claims root),
//! timed in the same run against attribution alone. Each synthetic token id `t` is the text
//! `"t<t> "`, for the answer and the documents' raw bytes alike.

use openledger_worker::attribution::span::{build_index, AttributionParams, DocRef, SpanIndex};
use openledger_worker::model::llama::{KvCache, Llama, Row};
use rand::{Rng, SeedableRng};
use std::time::Instant;

#[derive(clap::Parser)]
pub struct BenchAttrArgs {
	#[command(flatten)]
	shape: crate::lora::ModelShape,
	#[arg(long, default_value_t = 32)]
	prompt: usize,
	#[arg(long, default_value_t = 256)]
	completion: usize,
	/// Rows of the loaded-worker batch.
	#[arg(long, default_value_t = 16)]
	batch: usize,
	#[arg(long, default_value_t = 10_000_000)]
	corpus_tokens: usize,
	/// Attribution repetitions (p50/p99 over them).
	#[arg(long, default_value_t = 50)]
	repeats: usize,
}

/// Greedy decode of `n` tokens for each of `prompts` in one batch; returns the first row's
/// completion and the seconds taken.
fn generate(model: &Llama, prompts: &[Vec<u32>], n: usize) -> anyhow::Result<(Vec<u32>, f64)> {
	let t = Instant::now();
	let mut caches = vec![KvCache::default(); prompts.len()];
	let mut next: Vec<Vec<u32>> = prompts.to_vec();
	let mut first = Vec::with_capacity(n);
	for _ in 0..n {
		let mut rows: Vec<Row<'_>> =
			caches.iter_mut().zip(&next).map(|(c, t)| Row { tokens: t, cache: c, adapter: None }).collect();
		let logits = model.forward(&mut rows)?;
		let ids: Vec<u32> = logits.argmax(candle_core::D::Minus1)?.to_vec1()?;
		first.push(ids[0]);
		next = ids.into_iter().map(|i| vec![i]).collect();
	}
	Ok((first, t.elapsed().as_secs_f64()))
}

pub fn run(a: BenchAttrArgs) -> anyhow::Result<()> {
	let (model, _, dtype) = a.shape.build()?;
	let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.shape.seed);
	let prompts: Vec<Vec<u32>> =
		(0..a.batch.max(1)).map(|_| (0..a.prompt).map(|_| rng.gen_range(3..a.shape.vocab as u32)).collect()).collect();
	let (completion, alone) = generate(&model, &prompts[..1], a.completion)?;
	eprintln!("batch 1: {} tokens in {alone:.2}s", a.completion);
	let (_, batched) = generate(&model, &prompts, a.completion)?;
	let share = batched / prompts.len() as f64;
	eprintln!("batch {}: {} tokens per row in {batched:.2}s ({share:.2}s per row)", prompts.len(), a.completion);

	// The corpus: documents of 500 tokens of fragments from a Zipf-like pool, with pieces of the
	// completion planted in some of them.
	let t = Instant::now();
	let pool: Vec<u32> = (0..2_000_000).map(|_| {
		let u: f64 = rng.gen_range(1e-9..1.0);
		((u.powf(-1.0 / 0.2) as u64) % (a.shape.vocab as u64 - 3)) as u32 + 3
	}).collect();
	let n_docs = (a.corpus_tokens / 500).max(1);
	let mut docs: Vec<Vec<u32>> = Vec::with_capacity(n_docs);
	for _ in 0..n_docs {
		let mut d = Vec::with_capacity(500);
		while d.len() < 500 {
			let len = rng.gen_range(3..21);
			let at = rng.gen_range(0..pool.len() - len);
			d.extend_from_slice(&pool[at..at + len]);
		}
		d.truncate(500);
		docs.push(d);
	}
	for (k, piece) in completion.chunks(32).enumerate() {
		for copy in 0..=k % 3 {
			let d = &mut docs[(k * 7919 + copy * 104_729) % n_docs];
			let at = rng.gen_range(0..500 - piece.len());
			d[at..at + piece.len()].copy_from_slice(piece);
		}
	}
	let dir = tempfile::tempdir()?;
	let refs = (0..n_docs as u32).map(|i| DocRef { datanet: 1, version: 1, index: i, content_hash: [0; 32] });
	// A token table, as a tokenizer's decoder has: decoding is lookups and a concatenation.
	let table: Vec<String> = (0..a.shape.vocab as u32).map(|t| format!("t{t} ")).collect();
	let decode = |ids: &[u32]| -> Option<String> {
		let mut s = String::with_capacity(ids.len() * 6);
		for t in ids {
			s.push_str(table.get(*t as usize)?);
		}
		Some(s)
	};
	let raws: Vec<Vec<u8>> = docs.iter().map(|d| decode(d).unwrap_or_default().into_bytes()).collect();
	build_index(dir.path(), refs.zip(docs.iter().zip(raws.iter())).map(|(r, (d, b))| (r, d.as_slice(), b.as_slice())))?;
	let idx = SpanIndex::open(dir.path())?;
	eprintln!("index of {} tokens built in {:.1}s", n_docs * 500, t.elapsed().as_secs_f64());

	let params = AttributionParams::default();
	let mut times = Vec::with_capacity(a.repeats);
	let mut found = None;
	for _ in 0..a.repeats.max(1) {
		let t = Instant::now();
		let r = idx.attribute(&completion, &params);
		let json = openledger_worker::http::attribution_json(&r);
		times.push(t.elapsed().as_secs_f64());
		found.get_or_insert((r.spans.len(), r.shares.len(), r.coverage, json.to_string().len()));
	}
	times.sort_by(f64::total_cmp);
	let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
	// With evidence, alternating with attribution alone so both see the same machine state.
	let text = decode(&completion).unwrap_or_default();
	let (mut plain, mut with_evidence) = (Vec::new(), Vec::new());
	let mut claimed = None;
	for _ in 0..a.repeats.max(1) {
		let t = Instant::now();
		std::hint::black_box(idx.attribute(&completion, &params));
		plain.push(t.elapsed().as_secs_f64());
		let t = Instant::now();
		let r = idx.attribute_claimed(&completion, &text, &decode, &|_| true, &params, None);
		let roots = (openledger_primitives::evidence::content_root(text.as_bytes()), openledger_primitives::evidence::claims_tree(&r.claims).root());
		std::hint::black_box(roots);
		with_evidence.push(t.elapsed().as_secs_f64());
		claimed.get_or_insert((r.claims.len(), r.shares.len()));
	}
	let median = |v: &mut Vec<f64>| {
		v.sort_by(f64::total_cmp);
		v[v.len() / 2]
	};
	let (plain_p50, evidence_p50) = (median(&mut plain), median(&mut with_evidence));
	let (claims, claimed_shares) = claimed.expect("at least one repeat; qed");
	let (spans, shares, coverage, _) = found.expect("at least one repeat; qed");
	println!();
	println!(
		"## Attribution overhead: {}-token completion, hidden {}, {} layers, vocab {}, {:?}; index of {} tokens",
		a.completion,
		a.shape.hidden,
		a.shape.layers,
		a.shape.vocab,
		dtype,
		n_docs * 500
	);
	println!("| | time (ms) | attribution p50 / generation | attribution p99 / generation |");
	println!("|---|---:|---:|---:|");
	println!("| generation, alone (batch 1) | {:.0} | {:.2} % | {:.2} % |", alone * 1e3, 100.0 * pct(0.5) / alone, 100.0 * pct(0.99) / alone);
	println!(
		"| generation, one row of a batch of {} (amortized) | {:.0} | {:.2} % | {:.2} % |",
		prompts.len(),
		share * 1e3,
		100.0 * pct(0.5) / share,
		100.0 * pct(0.99) / share
	);
	println!("| attribution p50 / p99 | {:.2} / {:.2} | | |", pct(0.5) * 1e3, pct(0.99) * 1e3);
	println!();
	println!("{spans} credited spans, {shares} contributions with shares, coverage {:.0} %; goal ≤ 10 % of generation time", coverage * 100.0);
	println!();
	println!("## Evidence building (claims, share rule, output and claims roots) against attribution alone");
	println!("| | p50 (ms) | vs attribution alone |");
	println!("|---|---:|---:|");
	println!("| attribution alone | {:.3} | 100.0 % |", plain_p50 * 1e3);
	println!("| attribution with evidence | {:.3} | {:.1} % |", evidence_p50 * 1e3, 100.0 * evidence_p50 / plain_p50);
	println!();
	println!("{claims} claims behind {claimed_shares} shares; goal: evidence adds ≤ 5 % to attribution time");
	Ok(())
}
