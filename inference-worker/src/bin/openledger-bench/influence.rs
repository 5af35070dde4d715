//! `openledger-bench bench-influence`: DataInf against the exact influence (same Hessian model,
//! solved exactly) and LiSSA on a tiny model, in one run.
//!
//! A seeded base model is pretrained briefly on the bundled corpus; a LoRA adapter is fine-tuned
//! on `--examples` of its sentences by the factory (which caches the training gradients). Each
//! query is another sentence (half from the training set, half unseen), scored against
//! every training window by the three estimators; the table gives the time per query and the
//! agreement with the exact scores (Pearson, Spearman, top-5 overlap), averaged over queries.

use openledger_worker::factory::data::{corpus_docs, SnapshotRef};
use openledger_worker::attribution::influence::Attributor;
use openledger_worker::factory::influence::{pearson, spearman, Method};
use openledger_worker::factory::train::{OptimArgs, Schedule};
use openledger_worker::factory::{finetune, pretrain, FinetuneSpec, LoraArgs};
use openledger_worker::model::synthetic::{write_base_model, BaseSpec, CORPUS};
use openledger_worker::model::lora::LoraAdapter;
use openledger_worker::tokenizer::TextTokenizer;
use std::time::Instant;

#[derive(clap::Parser)]
pub struct BenchInfluenceArgs {
	/// Training documents of the adapter.
	#[arg(long, default_value_t = 48)]
	examples: usize,
	/// Query outputs scored.
	#[arg(long, default_value_t = 16)]
	queries: usize,
	#[arg(long, default_value_t = 8)]
	rank: usize,
	#[arg(long, default_value_t = 64)]
	hidden: usize,
	/// Tokens per training window (shorter windows: more training examples from the same text).
	#[arg(long, default_value_t = 64)]
	window: usize,
	#[arg(long, default_value_t = 7)]
	seed: u64,
}

fn top5(s: &[f64]) -> Vec<usize> {
	let mut i: Vec<usize> = (0..s.len()).collect();
	i.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
	i.truncate(5);
	i
}

pub fn run(a: BenchInfluenceArgs) -> anyhow::Result<()> {
	let dir = tempfile::tempdir()?;
	let base = dir.path().join("base");
	let spec = BaseSpec { hidden: a.hidden, intermediate: a.hidden * 2, layers: 2, heads: 4, kv_heads: 2, vocab: 512, max_positions: 256, seed: a.seed, ..Default::default() };
	write_base_model(&base, &spec, 1)?;
	// Sentences of the bundled corpus as documents.
	let sentences: Vec<String> =
		CORPUS.split(['.', '?', '!']).map(|s| s.split_whitespace().collect::<Vec<_>>().join(" ")).filter(|s| s.len() > 30).map(|s| s + ".").collect();
	let docs = corpus_docs(&sentences.join("\n\n"));
	anyhow::ensure!(docs.len() >= a.examples + a.queries / 2, "the corpus has {} sentences", docs.len());
	let optim = |steps: usize, lr: f64| OptimArgs {
		lr, schedule: Schedule::Cosine, warmup: 0.05, weight_decay: 0.0, beta1: 0.9, beta2: 0.999, max_grad_norm: 1.0,
		epochs: 1, max_steps: Some(steps), batch_size: 8, max_seq_len: 64, eval_fraction: 0.0, seed: a.seed,
	};
	pretrain(&base, &docs, &optim(60, 3e-3), &candle_core::Device::Cpu)?;
	let train_docs = &docs[..a.examples];
	let adapters = dir.path().join("adapters");
	std::fs::create_dir_all(&adapters)?;
	let lora = LoraArgs { rank: a.rank, alpha: (2 * a.rank) as u16, dropout: 0.0, target_modules: vec!["q_proj".into(), "v_proj".into()] };
	let o = OptimArgs { max_seq_len: a.window, ..optim(60, 5e-3) };
	let snaps = [SnapshotRef { datanet: 1, version: 1, weight: 1.0 }];
	let t = Instant::now();
	let report = finetune(&FinetuneSpec {
		base_dir: &base, base_hash: openledger_worker::factory::model_weights_hash(&base)?, base_model: None, snapshots: &snaps, docs: train_docs, adapters_dir: &adapters, name: "bench",
		lora: &lora, optim: &o, device: &candle_core::Device::Cpu, progress: &|_, _, _| {},
	})?;
	let finetune_s = t.elapsed().as_secs_f64();
	let model_cfg = openledger_worker::factory::load_weights(&base, &candle_core::Device::Cpu)?.0;
	let adapter = LoraAdapter::load(&adapters.join("bench"), "bench", &model_cfg, &candle_core::Device::Cpu)?;
	let tk = TextTokenizer::load(&base)?;
	let att = Attributor::new(&base, &adapters, usize::MAX, 1)?;
	let methods = [Method::Exact, Method::DataInf, Method::Lissa];
	let (mut grad_s, mut secs, mut pear, mut spear, mut overlap) = (0.0, [0.0; 3], [0.0; 3], [0.0; 3], [0.0; 3]);
	let queries: Vec<&str> = (0..a.queries)
		.map(|q| if q % 2 == 0 { docs[q / 2].text.as_str() } else { docs[a.examples + q / 2].text.as_str() })
		.collect();
	for text in &queries {
		let ids = tk.encode(text)?;
		let ids = &ids[..ids.len().min(64)];
		let (g, scores) = att.raw_scores(&adapter, &ids[..1], &ids[1..], &methods)?.expect("the factory cached the gradients");
		grad_s += g;
		let exact = &scores[0].0;
		for (m, (s, t)) in scores.iter().enumerate() {
			secs[m] += t;
			pear[m] += pearson(exact, s);
			spear[m] += spearman(exact, s);
			let (e5, s5) = (top5(exact), top5(s));
			overlap[m] += s5.iter().filter(|i| e5.contains(i)).count() as f64 / 5.0;
		}
	}
	let q = queries.len() as f64;
	println!(
		"adapter: rank {}, q_proj+v_proj, {} trainable parameters, {} training windows; fine-tune {:.1}s incl. gradient cache",
		a.rank, report.run.trainable_parameters, report.influence_examples, finetune_s
	);
	println!("answer gradient (shared by all estimators): {:.2} ms/query\n", grad_s / q * 1e3);
	println!("| estimator | ms/query | × exact time | Pearson vs exact | Spearman vs exact | top-5 overlap |");
	println!("|---|---:|---:|---:|---:|---:|");
	for (m, name) in ["exact (Woodbury + Cholesky)", "DataInf (closed form)", "LiSSA (200 × batch 8)"].iter().enumerate() {
		println!(
			"| {name} | {:.3} | {:.2} | {:.3} | {:.3} | {:.2} |",
			secs[m] / q * 1e3,
			secs[m] / secs[0],
			pear[m] / q,
			spear[m] / q,
			overlap[m] / q
		);
	}
	Ok(())
}
