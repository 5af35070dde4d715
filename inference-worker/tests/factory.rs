//! ModelFactory: the training network computes what the serving model computes, fine-tuning
//! lowers the held-out loss, is reproducible with a seed, and writes a PEFT adapter the worker
//! loads and that has learnt its data; pretraining lowers a base model's loss.

mod common;

use candle_core::{DType, Device, Tensor};
use common::max_abs_diff;
use openledger_worker::factory::data::{corpus_docs, Doc, SnapshotRef};
use openledger_worker::attribution::influence::Attributor;
use openledger_worker::factory::influence::Method;
use openledger_worker::factory::net::{LoraParams, Net};
use openledger_worker::factory::train::{OptimArgs, Schedule};
use openledger_worker::factory::{finetune, load_weights, model_weights_hash, pretrain, FinetuneSpec, LoraArgs};
use openledger_worker::model::synthetic::{write_base_model, BaseSpec};
use openledger_worker::model::llama::{KvCache, Llama, Row};
use openledger_worker::model::lora::LoraAdapter;
use openledger_worker::tokenizer::TextTokenizer;
use rand::{Rng, SeedableRng};
use std::path::Path;

fn base(dir: &Path) {
	let spec = BaseSpec { hidden: 48, intermediate: 96, layers: 2, heads: 4, kv_heads: 2, vocab: 400, max_positions: 128, seed: 5, ..Default::default() };
	write_base_model(dir, &spec, 1).unwrap();
}

fn optim(max_steps: usize, lr: f64) -> OptimArgs {
	OptimArgs {
		lr, schedule: Schedule::Cosine, warmup: 0.05, weight_decay: 0.0, beta1: 0.9, beta2: 0.999, max_grad_norm: 1.0,
		epochs: 1, max_steps: Some(max_steps), batch_size: 4, max_seq_len: 48, eval_fraction: 0.2, seed: 11,
	}
}

fn lora(dropout: f32) -> LoraArgs {
	LoraArgs { rank: 8, alpha: 16, dropout, target_modules: vec!["all-linear".into()] }
}

const DOCS: [&str; 5] = [
	"The court held that the contract was void for duress.",
	"A tenant may withhold rent when the landlord fails to repair.",
	"Patients with a fever should rest and drink water.",
	"The appeal was dismissed because it was filed too late.",
	"Consideration is required for a promise to be enforceable.",
];

fn docs() -> Vec<Doc> {
	DOCS.iter()
		.enumerate()
		.map(|(i, t)| Doc { source: 0, leaf: i as u32, contribution: Some(i as u64), content_hash: sp_core::hashing::blake2_256(t.as_bytes()), text: t.to_string() })
		.collect()
}

#[test]
fn training_network_matches_the_serving_model_with_the_written_adapter() {
	let dir = tempfile::tempdir().unwrap();
	base(dir.path());
	let device = Device::Cpu;
	let (cfg, weights) = load_weights(dir.path(), &device).unwrap();
	let mut lora = LoraParams::init(&cfg, 4, 2.0, 0.0, &[0, 2, 3, 6], 1, &device).unwrap();
	// Non-zero B so that the adapter changes the output.
	let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
	for (_, b) in lora.pairs.iter_mut().flatten().flatten() {
		let v: Vec<f32> = (0..b.elem_count()).map(|_| rng.gen_range(-0.3..0.3)).collect();
		b.set(&Tensor::from_vec(v, b.shape(), &device).unwrap()).unwrap();
	}
	let ids: Vec<u32> = (0..20).map(|i| (i * 37 + 5) % cfg.vocab_size as u32).collect();
	let net = Net::new(&cfg, &weights, Some(&lora), 64, &device).unwrap();
	let ours = net.forward(&Tensor::new(&ids[..], &device).unwrap().unsqueeze(0).unwrap(), None).unwrap();
	let ours_last: Vec<f32> = ours.get(ids.len() - 1).unwrap().to_vec1().unwrap();

	let config = serde_json::to_vec(&serde_json::json!({
		"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj", "o_proj", "down_proj"],
	}))
	.unwrap();
	let tensors = lora.peft_tensors();
	let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), None).unwrap();
	let adapter = LoraAdapter::from_bytes(&config, &bytes, "x", &cfg, &device).unwrap();
	let model = Llama::load_dir(dir.path(), DType::F32, &device).unwrap();
	let mut cache = KvCache::default();
	let served = model.forward(&mut [Row { tokens: &ids, cache: &mut cache, adapter: Some(&adapter) }]).unwrap();
	let served: Vec<f32> = served.to_vec2().unwrap().remove(0);
	let mut plain = KvCache::default();
	let base_only: Vec<f32> =
		model.forward(&mut [Row { tokens: &ids, cache: &mut plain, adapter: None }]).unwrap().to_vec2().unwrap().remove(0);
	assert!(max_abs_diff(&served, &base_only) > 1e-2, "the adapter matters");
	assert!(max_abs_diff(&ours_last, &served) < 1e-4, "training and serving logits differ by {}", max_abs_diff(&ours_last, &served));
}

fn greedy(model: &Llama, adapter: &LoraAdapter, prompt: &[u32], n: usize) -> Vec<u32> {
	let mut cache = KvCache::default();
	let mut out = vec![];
	let mut feed = prompt.to_vec();
	for _ in 0..n {
		let l = model.forward(&mut [Row { tokens: &feed, cache: &mut cache, adapter: Some(adapter) }]).unwrap();
		let next = openledger_worker::model::llama::argmax_row(&l, 0).unwrap();
		out.push(next);
		feed = vec![next];
	}
	out
}

#[test]
fn finetune_lowers_held_out_loss_is_reproducible_and_serves_what_it_learnt() {
	let dir = tempfile::tempdir().unwrap();
	let model_dir = dir.path().join("base");
	base(&model_dir);
	let store = dir.path().join("adapters");
	std::fs::create_dir_all(&store).unwrap();
	let docs = docs();
	let snaps = [SnapshotRef { datanet: 1, version: 1, weight: 1.0 }];
	let (l, o) = (lora(0.0), optim(80, 1e-2));
	let base_hash = model_weights_hash(&model_dir).unwrap();
	let spec = |name: &'static str| FinetuneSpec {
		base_dir: &model_dir, base_hash, base_model: Some(1), snapshots: &snaps, docs: &docs, adapters_dir: &store, name,
		lora: &l, optim: &o, device: &Device::Cpu, progress: &|_, _, _| {},
	};
	let a = finetune(&spec("a")).unwrap();
	assert_eq!(a.run.steps, 80);
	assert_eq!(a.eval_documents.len(), 1, "one of five documents held out");
	assert!(a.run.eval_after.loss < a.run.eval_before.loss, "held-out loss {:?} → {:?}", a.run.eval_before, a.run.eval_after);
	let first = a.run.loss_curve[..5].iter().map(|x| x.1).sum::<f64>();
	let last = a.run.loss_curve[75..].iter().map(|x| x.1).sum::<f64>();
	assert!(last < first * 0.5, "training loss {first} → {last}");
	assert_eq!(a.lineage_perbill, vec![1_000_000_000]);
	assert!(store.join("a").join("training_report.json").exists());

	// Same data, config and seed: the same adapter id.
	let b = finetune(&spec("b")).unwrap();
	assert_eq!(a.adapter_id, b.adapter_id);
	assert_eq!(a.training_config_hash, b.training_config_hash);
	assert!(finetune(&spec("a")).unwrap_err().to_string().contains("exists already"));
	let o2 = OptimArgs { seed: 12, ..o.clone() };
	let c = finetune(&FinetuneSpec { optim: &o2, name: "c", ..spec("c") }).unwrap();
	assert_ne!(a.adapter_id, c.adapter_id, "another seed, another adapter");
	assert_ne!(a.training_config_hash, c.training_config_hash);

	// The worker loads it (PEFT layout, id over its files) and it continues a training document.
	let model = Llama::load_dir(&model_dir, DType::F32, &Device::Cpu).unwrap();
	let adapter = LoraAdapter::load(&store.join("a"), "a", &model.cfg, &Device::Cpu).unwrap();
	assert_eq!(adapter.id_hex(), a.adapter_id);
	let tk = TextTokenizer::load(&model_dir).unwrap();
	let held_out = a.eval_documents[0].1 as usize;
	let trained = (0..DOCS.len()).find(|&i| i != held_out).unwrap();
	let ids = tk.encode(DOCS[trained]).unwrap();
	let bos = tk.inner.token_to_id("<s>").unwrap();
	let prompt: Vec<u32> = std::iter::once(bos).chain(ids[..4].iter().copied()).collect();
	let out = greedy(&model, &adapter, &prompt, ids.len() - 4);
	assert_eq!(tk.decode(&out).unwrap(), tk.decode(&ids[4..]).unwrap(), "the adapter learnt its training text");

	// Influence: the training gradients were cached with the adapter; an answer that repeats a
	// training text credits that text most (DataInf). With four examples the exact inverse
	// nearly whitens their gradients (scores close to uniform): bench-influence compares the
	// estimators where there are enough examples for that comparison to mean something.
	assert_eq!(a.influence_examples, 4);
	let att = Attributor::new(&model_dir, &store, 1 << 30, 1).unwrap();
	assert!(att.suits(&adapter));
	let r = att.attribute(&adapter, &prompt, &out, Method::DataInf).unwrap().unwrap();
	assert_eq!(r.examples, 4);
	assert_eq!(r.shares[0].0, (1, 1, trained as u32), "{:?}", r.shares);
	assert_eq!(r.shares.iter().map(|s| s.1 as u64).sum::<u64>(), 1_000_000_000);
	let exact = att.attribute(&adapter, &prompt, &out, Method::Exact).unwrap().unwrap();
	assert_eq!(exact.shares.iter().map(|s| s.1 as u64).sum::<u64>(), 1_000_000_000);
	let plain = LoraAdapter::load(&store.join("a"), "a", &model.cfg, &Device::Cpu).unwrap();
	std::fs::remove_file(store.join("a").join("influence.json")).unwrap();
	let fresh = Attributor::new(&model_dir, &store, 1 << 30, 1).unwrap();
	assert!(fresh.attribute(&plain, &prompt, &out, Method::DataInf).unwrap().is_none(), "no cache, no influence");
}

#[test]
fn pretraining_lowers_the_base_models_loss_and_changes_its_hash() {
	let dir = tempfile::tempdir().unwrap();
	base(dir.path());
	let before = model_weights_hash(dir.path()).unwrap();
	let docs = corpus_docs(openledger_worker::model::synthetic::CORPUS);
	assert!(docs.len() > 10);
	let o = OptimArgs { max_steps: Some(30), lr: 3e-3, ..optim(30, 3e-3) };
	let r = pretrain(dir.path(), &docs, &o, &Device::Cpu).unwrap();
	assert!(r.run.eval_after.loss < r.run.eval_before.loss - 0.5, "{:?} → {:?}", r.run.eval_before, r.run.eval_after);
	assert_ne!(model_weights_hash(dir.path()).unwrap(), before);
	assert_eq!(format!("0x{}", hex::encode(model_weights_hash(dir.path()).unwrap())), r.weights_hash);
	// Still a loadable Hugging Face folder.
	Llama::load_dir(dir.path(), DType::F32, &Device::Cpu).unwrap();
}
