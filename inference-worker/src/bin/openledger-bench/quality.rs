//! `openledger-bench bench-attribution-quality`: does attribution credit the data that really
//! shaped an answer? A ground truth built in the same run, seeded.
//!
//! **Corpus.** `--facts` contributions over `--datanets` Datanets, each one planted fact with a
//! unique made-up name: "{Name} is a {kind} in {Place}. It was founded in {year} by {Person}.
//! {Name} is known for its {product}." People, places and products are drawn from small pools,
//! so each appears in several contributions and only the combination identifies one; half the
//! records end with the same boilerplate sentence (long spans that many documents share).
//!
//! **Span and retrieval attribution** (the worker's own paths: `attribute_claimed` with its
//! byte-level claims and share caps, the BM25 index), one query per fact:
//! - *verbatim*: the answer repeats the fact's first two sentences;
//! - *shared quote*: "{Person}'s {kind} in {Place} dates from {year} and is known for its
//!   {product}." — the one verbatim piece long enough to be claimed (" is known for its
//!   {product}.") is in every record of that product; the rest is paraphrase;
//! - *paraphrase*: "Founded by {Person} in {year}, this {kind} of {Place} is famous for its
//!   {product}." — no piece of the record as long as a claim (24 bytes), its unique name absent;
//! - *retrieval*: the question "Which {kind} in {Place} was founded by {Person}?" (no year, no
//!   name: only the combination identifies the fact), and the paraphrase above as a query.
//!
//! Precision@1 (the top-credited contribution is the fact's), recall@5 (it is among the top 5)
//! and the share mass on it (its share over all shares given), for spans split equally and
//! ranked by BM25 relevance to the answer.
//!
//! **Influence** (a seeded tiny Llama, pretrained briefly, a LoRA adapter fine-tuned by the
//! factory on `--train` facts): for each query (a paraphrase of a trained fact) the training
//! documents are scored by exact influence, DataInf and LiSSA. Besides precision@1 etc.:
//! - the **linear datamodeling score** (TRAK's LDS): `--subsets` adapters are retrained, same
//!   settings and seed, each on a random half of the training facts; per query, the Spearman
//!   correlation between the influence predicted for each subset (the sum of its documents'
//!   scores) and the query's actual loss under that subset's adapter (negated: helpful data
//!   lowers it), averaged over queries, with a 95 % bootstrap interval over queries;
//! - **leave-one-out**: `--loo` adapters retrained without one fact each; per query, Spearman
//!   between the facts' scores and the loss increase their removal causes, averaged over queries
//!   (95 % bootstrap interval over queries).
//!
//! A query whose correlation is undefined (constant scores or losses) is left out of the mean;
//! the JSON output counts the queries used.

use openledger_worker::attribution::retrieval::{self, RetrievalIndex};
use openledger_worker::attribution::span::{build_index, AttributionParams, DocRef, Relevance, SpanIndex};
use openledger_worker::factory::data::{corpus_docs, Doc, SnapshotRef};
use openledger_worker::attribution::influence::Attributor;
use openledger_worker::factory::influence::{spearman, Method};
use openledger_worker::factory::train::{OptimArgs, Schedule};
use openledger_worker::factory::{finetune, pretrain, FinetuneSpec, LoraArgs};
use openledger_worker::model::synthetic::{write_base_model, BaseSpec, CORPUS};
use openledger_worker::model::lora::LoraAdapter;
use openledger_worker::tokenizer::TextTokenizer;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

#[derive(clap::Parser)]
pub struct BenchQualityArgs {
	/// Smaller corpus and fewer retrainings (the CI run): ~1 min on 2 cores.
	#[arg(long)]
	quick: bool,
	/// Contributions (one planted fact each); default 400, 120 with --quick.
	#[arg(long)]
	facts: Option<usize>,
	#[arg(long, default_value_t = 4)]
	datanets: u32,
	/// Facts the influence adapter is trained on; default 32, 24 with --quick.
	#[arg(long)]
	train: Option<usize>,
	/// Retrainings on random halves for the LDS; default 40, 12 with --quick.
	#[arg(long)]
	subsets: Option<usize>,
	/// Leave-one-out retrainings; default 16, 6 with --quick.
	#[arg(long)]
	loo: Option<usize>,
	#[arg(long, default_value_t = 11)]
	seed: u64,
	/// Also write the results as JSON here.
	#[arg(long)]
	json: Option<std::path::PathBuf>,
}

struct Fact {
	name: String,
	kind: &'static str,
	place: String,
	year: u32,
	person: String,
	product: String,
}

const KINDS: &[&str] = &["museum", "bakery", "observatory", "library", "foundry", "school", "harbor", "theater", "brewery", "clinic"];
const GOODS: &[&str] = &["lanterns", "bells", "maps", "clocks", "rugs", "kites", "ink", "glass", "cheese", "violins", "tiles", "honey"];
const STYLES: &[&str] = &["blue", "copper", "painted", "silent", "tiny", "ancient", "woven", "golden", "spiced", "northern"];
const BOILERPLATE: &str = " This record was verified by the regional survey office and checked against the municipal archive.";

fn word(rng: &mut ChaCha8Rng) -> String {
	const C: &[&str] = &["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "th", "br", "kr", "st"];
	const V: &[&str] = &["a", "e", "i", "o", "u", "ae", "io", "ou"];
	let n = rng.gen_range(2..4);
	let mut w: String = (0..n).map(|_| format!("{}{}", C[rng.gen_range(0..C.len())], V[rng.gen_range(0..V.len())])).collect();
	if rng.gen_bool(0.5) {
		w.push_str(C[rng.gen_range(0..C.len())]);
	}
	let mut c = w.chars();
	c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

fn facts(n: usize, seed: u64) -> Vec<Fact> {
	let mut rng = ChaCha8Rng::seed_from_u64(seed);
	let persons: Vec<String> = (0..(n / 3).max(2)).map(|_| format!("{} {}", word(&mut rng), word(&mut rng))).collect();
	let places: Vec<String> = (0..(n / 10).max(2)).map(|_| word(&mut rng)).collect();
	let products: Vec<String> = (0..(n / 5).max(2)).map(|i| format!("{} {}", STYLES[i % STYLES.len()], GOODS[(i / STYLES.len() + i) % GOODS.len()])).collect();
	let mut names = std::collections::HashSet::new();
	(0..n)
		.map(|_| {
			let name = loop {
				let w = word(&mut rng) + &word(&mut rng).to_lowercase();
				if names.insert(w.clone()) {
					break w;
				}
			};
			Fact {
				name,
				kind: KINDS[rng.gen_range(0..KINDS.len())],
				place: places[rng.gen_range(0..places.len())].clone(),
				year: rng.gen_range(1400..2000),
				person: persons[rng.gen_range(0..persons.len())].clone(),
				product: products[rng.gen_range(0..products.len())].clone(),
			}
		})
		.collect()
}

fn record(f: &Fact, i: usize) -> String {
	let mut s = format!(
		"{} is a {} in {}. It was founded in {} by {}. {} is known for its {}.",
		f.name, f.kind, f.place, f.year, f.person, f.name, f.product
	);
	if i % 2 == 0 {
		s.push_str(BOILERPLATE);
	}
	s
}

fn verbatim(f: &Fact) -> String {
	format!("{} is a {} in {}. It was founded in {} by {}.", f.name, f.kind, f.place, f.year, f.person)
}

fn paraphrase(f: &Fact) -> String {
	format!("Founded by {} in {}, this {} of {} is famous for its {}.", f.person, f.year, f.kind, f.place, f.product)
}

fn quote(f: &Fact) -> String {
	format!("{}'s {} in {} dates from {} and is known for its {}.", f.person, f.kind, f.place, f.year, f.product)
}

fn question(f: &Fact) -> String {
	format!("Which {} in {} was founded by {}?", f.kind, f.place, f.person)
}

/// Precision@1, recall@5 and share mass on the truth, summed over queries.
#[derive(Default, Clone, Copy, serde::Serialize)]
struct Quality {
	queries: usize,
	p_at_1: f64,
	recall_at_5: f64,
	mass: f64,
}

impl Quality {
	/// `ranked`: (document, credit), highest first.
	fn add(&mut self, ranked: &[(usize, f64)], truth: usize) {
		self.queries += 1;
		if ranked.first().is_some_and(|r| r.0 == truth) {
			self.p_at_1 += 1.0;
		}
		if ranked.iter().take(5).any(|r| r.0 == truth) {
			self.recall_at_5 += 1.0;
		}
		let total: f64 = ranked.iter().map(|r| r.1.max(0.0)).sum();
		if total > 0.0 {
			self.mass += ranked.iter().filter(|r| r.0 == truth).map(|r| r.1.max(0.0)).sum::<f64>() / total;
		}
	}

	fn mean(self) -> Self {
		let n = self.queries.max(1) as f64;
		Self { queries: self.queries, p_at_1: self.p_at_1 / n, recall_at_5: self.recall_at_5 / n, mass: self.mass / n }
	}
}

fn sorted(mut v: Vec<(usize, f64)>) -> Vec<(usize, f64)> {
	v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
	v
}

/// Mean and 95 % bootstrap interval (1,000 resamples, seeded) of `xs`.
fn mean_ci(xs: &[f64], seed: u64) -> (f64, f64, f64) {
	let mean = xs.iter().sum::<f64>() / xs.len().max(1) as f64;
	if xs.len() < 2 {
		return (mean, mean, mean);
	}
	let mut rng = ChaCha8Rng::seed_from_u64(seed);
	let mut means: Vec<f64> = (0..1000).map(|_| (0..xs.len()).map(|_| xs[rng.gen_range(0..xs.len())]).sum::<f64>() / xs.len() as f64).collect();
	means.sort_by(f64::total_cmp);
	(mean, means[25], means[974])
}

#[derive(serde::Serialize)]
struct InfluenceRow {
	method: &'static str,
	quality: Quality,
	lds: (f64, f64, f64),
	lds_queries: usize,
	loo: (f64, f64, f64),
	loo_queries: usize,
}

pub fn run(a: BenchQualityArgs) -> anyhow::Result<()> {
	let t0 = Instant::now();
	let n = a.facts.unwrap_or(if a.quick { 120 } else { 400 });
	let n_train = a.train.unwrap_or(if a.quick { 24 } else { 32 }).min(n);
	let n_subsets = a.subsets.unwrap_or(if a.quick { 12 } else { 40 });
	let n_loo = a.loo.unwrap_or(if a.quick { 6 } else { 16 }).min(n_train);
	anyhow::ensure!(n >= 10 && a.datanets >= 1 && n_train >= 4 && n_subsets >= 3, "too small a benchmark");
	let dir = tempfile::tempdir()?;
	let base = dir.path().join("base");
	let spec = BaseSpec { hidden: 64, intermediate: 128, layers: 2, heads: 4, kv_heads: 2, vocab: 512, max_positions: 256, seed: a.seed, ..Default::default() };
	write_base_model(&base, &spec, 1)?;
	let tk = TextTokenizer::load(&base)?;
	let facts = facts(n, a.seed);
	let texts: Vec<String> = facts.iter().enumerate().map(|(i, f)| record(f, i)).collect();

	// Span and retrieval indexes over the contributions.
	let spans_dir = dir.path().join("spans");
	let refs: Vec<DocRef> = (0..n)
		.map(|i| DocRef {
			datanet: i as u32 % a.datanets,
			version: 1,
			index: i as u32 / a.datanets,
			content_hash: openledger_primitives::evidence::content_root(texts[i].as_bytes()).0,
		})
		.collect();
	let toks: Vec<Vec<u32>> = texts.iter().map(|t| tk.encode(t)).collect::<anyhow::Result<_>>()?;
	build_index(&spans_dir, (0..n).map(|i| (refs[i], toks[i].as_slice(), texts[i].as_bytes())))?;
	let idx = SpanIndex::open(&spans_dir)?;
	retrieval::build(&spans_dir, &idx)?;
	let bm25 = RetrievalIndex::open(&spans_dir, &idx)?.expect("just built");
	let tokens = idx.meta.tokens;

	let params = AttributionParams::default();
	let span_ranked = |answer: &str, ranked: bool| -> anyhow::Result<Vec<(usize, f64)>> {
		let ids = tk.encode(answer)?;
		let rank = |c: &[usize]| bm25.relevance(answer, c).unwrap_or_default();
		let rank: Option<Relevance<'_>> = ranked.then_some(&rank);
		let at = idx.attribute_claimed(&ids, answer, &|x| tk.decode(x).ok(), &|_| true, &params, rank);
		Ok(sorted(a_pos(&idx, &at.shares)))
	};
	let mut rows: Vec<(&str, &str, Quality)> = Vec::new();
	let t_span = Instant::now();
	for (kind, make) in [("verbatim", verbatim as fn(&Fact) -> String), ("shared quote", quote), ("paraphrase", paraphrase)] {
		let (mut equal, mut ranked) = (Quality::default(), Quality::default());
		for (i, f) in facts.iter().enumerate() {
			let answer = make(f);
			equal.add(&span_ranked(&answer, false)?, i);
			ranked.add(&span_ranked(&answer, true)?, i);
		}
		rows.push(("span (equal split)", kind, equal.mean()));
		rows.push(("span + BM25 ranking", kind, ranked.mean()));
	}
	let span_s = t_span.elapsed().as_secs_f64();
	let mut retr = Quality::default();
	let mut retr_para = Quality::default();
	for (i, f) in facts.iter().enumerate() {
		let hits = |q: &str| -> anyhow::Result<Vec<(usize, f64)>> {
			Ok(bm25.search(&idx, q, 5, None)?.iter().map(|p| (p.pos, p.score as f64)).collect())
		};
		retr.add(&hits(&question(f))?, i);
		retr_para.add(&hits(&paraphrase(f))?, i);
	}
	rows.push(("retrieval (BM25, top 5)", "question", retr.mean()));
	rows.push(("retrieval (BM25, top 5)", "paraphrase", retr_para.mean()));

	// Influence on a tiny model.
	let t_inf = Instant::now();
	let optim = |steps: usize, lr: f64, len: usize| OptimArgs {
		lr, schedule: Schedule::Cosine, warmup: 0.05, weight_decay: 0.0, beta1: 0.9, beta2: 0.999, max_grad_norm: 1.0,
		epochs: 1, max_steps: Some(steps), batch_size: 8, max_seq_len: len, eval_fraction: 0.0, seed: a.seed,
	};
	pretrain(&base, &corpus_docs(CORPUS), &optim(60, 3e-3, 64), &candle_core::Device::Cpu)?;
	let doc = |i: usize| Doc { source: 0, leaf: i as u32, contribution: None, content_hash: refs[i].content_hash, text: texts[i].clone() };
	let train: Vec<Doc> = (0..n_train).map(doc).collect();
	let adapters = dir.path().join("adapters");
	std::fs::create_dir_all(&adapters)?;
	let lora = LoraArgs { rank: 8, alpha: 16, dropout: 0.0, target_modules: vec!["q_proj".into(), "v_proj".into()] };
	let o = optim(60, 5e-3, 64);
	let base_hash = openledger_worker::factory::model_weights_hash(&base)?;
	let snaps = [SnapshotRef { datanet: 0, version: 1, weight: 1.0 }];
	let model_cfg = openledger_worker::factory::load_weights(&base, &candle_core::Device::Cpu)?.0;
	let train_adapter = |name: &str, docs: &[Doc]| -> anyhow::Result<LoraAdapter> {
		finetune(&FinetuneSpec {
			base_dir: &base, base_hash, base_model: None, snapshots: &snaps, docs, adapters_dir: &adapters, name,
			lora: &lora, optim: &o, device: &candle_core::Device::Cpu, progress: &|_, _, _| {},
		})?;
		LoraAdapter::load(&adapters.join(name), name, &model_cfg, &candle_core::Device::Cpu)
	};
	let full = train_adapter("full", &train)?;
	let att = Attributor::new(&base, &adapters, usize::MAX, 1)?;
	let methods = [Method::Exact, Method::DataInf, Method::Lissa];
	// Queries: paraphrases of the trained facts (first token as the prompt).
	let queries: Vec<(usize, Vec<u32>)> = (0..n_train).map(|i| Ok((i, tk.encode(&paraphrase(&facts[i]))?))).collect::<anyhow::Result<_>>()?;
	let split = |ids: &[u32]| (ids[..1].to_vec(), ids[1..].to_vec());
	// scores[q][m][i]: method m's score of training fact i for query q.
	let mut scores: Vec<Vec<Vec<f64>>> = Vec::new();
	let mut inf_quality = [Quality::default(); 3];
	for (truth, ids) in &queries {
		let (p, c) = split(ids);
		let by_doc = att.doc_scores(&full, &p, &c, &methods)?.expect("the factory cached the gradients");
		let per_method: Vec<Vec<f64>> = by_doc.iter().map(|m| (0..n_train).map(|i| m.get(&(0, i as u32)).copied().unwrap_or(0.0)).collect()).collect();
		for (m, s) in per_method.iter().enumerate() {
			inf_quality[m].add(&sorted(s.iter().copied().enumerate().filter(|x| x.1 > 0.0).collect()), *truth);
		}
		scores.push(per_method);
	}
	let loss = |adapter: &LoraAdapter| -> anyhow::Result<Vec<f64>> {
		queries.iter().map(|(_, ids)| {
			let (p, c) = split(ids);
			Ok(att.loss(adapter, &p, &c)?.expect("cached"))
		}).collect()
	};
	let full_loss = loss(&full)?;
	// LDS: random halves.
	let mut rng = ChaCha8Rng::seed_from_u64(a.seed ^ 0x5eed);
	let mut subsets: Vec<Vec<usize>> = Vec::new();
	let mut sub_loss: Vec<Vec<f64>> = Vec::new();
	for j in 0..n_subsets {
		let mut order: Vec<usize> = (0..n_train).collect();
		order.shuffle(&mut rng);
		order.truncate(n_train / 2);
		order.sort_unstable();
		let docs: Vec<Doc> = order.iter().map(|&i| train[i].clone()).collect();
		let ad = train_adapter(&format!("subset{j}"), &docs)?;
		sub_loss.push(loss(&ad)?);
		subsets.push(order);
	}
	// Leave one out.
	let mut loo_loss: Vec<Vec<f64>> = Vec::new();
	for k in 0..n_loo {
		let docs: Vec<Doc> = train.iter().filter(|d| d.leaf as usize != k).cloned().collect();
		loo_loss.push(loss(&train_adapter(&format!("loo{k}"), &docs)?)?);
	}
	let mut influence_rows = Vec::new();
	for (m, name) in ["exact", "DataInf", "LiSSA"].into_iter().enumerate() {
		let lds_q: Vec<f64> = (0..queries.len())
			.map(|q| {
				let predicted: Vec<f64> = subsets.iter().map(|s| s.iter().map(|&i| scores[q][m][i]).sum()).collect();
				let actual: Vec<f64> = sub_loss.iter().map(|l| -l[q]).collect();
				spearman(&predicted, &actual)
			})
			.filter(|x| x.is_finite())
			.collect();
		// LOO: per query, fact k's score against the loss its removal adds; pooled, bootstrapped
		// over queries.
		let loo_q: Vec<f64> = (0..queries.len())
			.map(|q| {
				let predicted: Vec<f64> = (0..n_loo).map(|k| scores[q][m][k]).collect();
				let actual: Vec<f64> = (0..n_loo).map(|k| loo_loss[k][q] - full_loss[q]).collect();
				spearman(&predicted, &actual)
			})
			.filter(|x| x.is_finite())
			.collect();
		influence_rows.push(InfluenceRow {
			method: name,
			quality: inf_quality[m].mean(),
			lds: mean_ci(&lds_q, a.seed),
			lds_queries: lds_q.len(),
			loo: mean_ci(&loo_q, a.seed + 1),
			loo_queries: loo_q.len(),
		});
	}
	let influence_s = t_inf.elapsed().as_secs_f64();

	println!(
		"corpus: {n} contributions over {} Datanets, {tokens} tokens; span attribution of {} answers (each twice) in {span_s:.1}s; influence: {n_train} training facts, {n_subsets} half-subset and {n_loo} leave-one-out retrainings in {influence_s:.0}s; total {:.0}s\n",
		a.datanets,
		3 * n,
		t0.elapsed().as_secs_f64()
	);
	println!("| method | queries | precision@1 | recall@5 | share mass on the true source |");
	println!("|---|---|---:|---:|---:|");
	for (m, kind, q) in &rows {
		println!("| {m} | {kind} ({}) | {:.3} | {:.3} | {:.3} |", q.queries, q.p_at_1, q.recall_at_5, q.mass);
	}
	for r in &influence_rows {
		println!("| influence: {} | paraphrase ({}) | {:.3} | {:.3} | {:.3} |", r.method, r.quality.queries, r.quality.p_at_1, r.quality.recall_at_5, r.quality.mass);
	}
	println!("\n| influence estimator | LDS (Spearman, {n_subsets} half-subsets) [95% CI] | leave-one-out Spearman ({n_loo} retrainings) [95% CI] |");
	println!("|---|---:|---:|");
	for r in &influence_rows {
		println!("| {} | {:.3} [{:.3}, {:.3}] | {:.3} [{:.3}, {:.3}] |", r.method, r.lds.0, r.lds.1, r.lds.2, r.loo.0, r.loo.1, r.loo.2);
	}
	if let Some(path) = a.json {
		let v = serde_json::json!({
			"facts": n, "datanets": a.datanets, "tokens": tokens, "seconds": t0.elapsed().as_secs_f64(),
			"rows": rows.iter().map(|(m, k, q)| serde_json::json!({ "method": m, "queries": k, "quality": q })).collect::<Vec<_>>(),
			"influence": influence_rows,
		});
		std::fs::write(path, serde_json::to_vec_pretty(&v)?)?;
	}
	Ok(())
}

/// Shares as (position in the index, share).
fn a_pos(idx: &SpanIndex, shares: &[(DocRef, u32)]) -> Vec<(usize, f64)> {
	shares.iter().filter_map(|(d, s)| Some((idx.position(d.datanet, d.version, d.index)?, *s as f64))).collect()
}
