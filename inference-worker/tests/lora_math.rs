//! The LoRA math: a mixed batch (rows of different adapters, rows without one, prefill and
//! decode rows together) gives the logits each row gets alone on a model with its adapter merged.

mod common;

use candle_core::{DType, Device};
use common::*;
use openledger_worker::model::llama::{KvCache, Llama, Row};
use openledger_worker::model::lora::{adapter_id, parse_composition, LoraAdapter, LoraPath};

/// Runs `prompt` then `steps` greedy-fed decode tokens alone on `model`; returns every step's logits.
fn alone(model: &Llama, prompt: &[u32], feed: &[u32]) -> Vec<Vec<f32>> {
	let mut cache = KvCache::default();
	let mut out = vec![];
	let l = model.forward(&mut [Row { tokens: prompt, cache: &mut cache, adapter: None }]).unwrap();
	out.push(l.to_vec2::<f32>().unwrap().remove(0));
	for t in feed {
		let l = model.forward(&mut [Row { tokens: &[*t], cache: &mut cache, adapter: None }]).unwrap();
		out.push(l.to_vec2::<f32>().unwrap().remove(0));
	}
	out
}

fn mixed(model: &Llama, rows: &[(Vec<u32>, Option<&LoraAdapter>)], feed: &[u32], path: LoraPath) -> Vec<Vec<Vec<f32>>> {
	let mut caches = vec![KvCache::default(); rows.len()];
	let mut out = vec![vec![]; rows.len()];
	// Step 0: prefill every row in one ragged batch.
	let mut batch: Vec<Row<'_>> = rows
		.iter()
		.zip(caches.iter_mut())
		.map(|((p, a), c)| Row { tokens: p, cache: c, adapter: *a })
		.collect();
	let l = model.forward_opts(&mut batch, path).unwrap().to_vec2::<f32>().unwrap();
	for (i, r) in l.into_iter().enumerate() {
		out[i].push(r);
	}
	for t in feed {
		let tok = [*t];
		let mut batch: Vec<Row<'_>> =
			rows.iter().zip(caches.iter_mut()).map(|((_, a), c)| Row { tokens: &tok, cache: c, adapter: *a }).collect();
		let l = model.forward_opts(&mut batch, path).unwrap().to_vec2::<f32>().unwrap();
		for (i, r) in l.into_iter().enumerate() {
			out[i].push(r);
		}
	}
	out
}

/// Runs `rows` as one mixed batch on `path` and checks every row's logits at every step against
/// the row alone on the model with its adapter merged; returns the mixed batch's logits.
fn each_row_as_merged(model: &Llama, rows: &[(Vec<u32>, Option<&LoraAdapter>)], feed: &[u32], path: LoraPath) -> Vec<Vec<Vec<f32>>> {
	let got = mixed(model, rows, feed, path);
	for (i, (prompt, ad)) in rows.iter().enumerate() {
		let reference = match ad {
			Some(a) => alone(&model.merged(a).unwrap(), prompt, feed),
			None => alone(model, prompt, feed),
		};
		for (step, (g, r)) in got[i].iter().zip(&reference).enumerate() {
			let d = max_abs_diff(g, r);
			assert!(d < 1e-4, "row {i} step {step} ({path:?}): max |Δlogit| = {d}");
		}
	}
	got
}

#[test]
fn mixed_batch_equals_each_row_alone_with_its_adapter_merged() {
	let model = tiny_model(DType::F32);
	let cfg = model.cfg.clone();
	let a0 = adapter(&cfg, 4, &["q_proj", "v_proj"], 10);
	let a1 = adapter(&cfg, 8, &["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], 11);
	let a2 = adapter(&cfg, 2, &["down_proj"], 12);
	let rows: Vec<(Vec<u32>, Option<&LoraAdapter>)> = vec![
		(vec![5, 6, 7], Some(&a0)),
		(vec![8, 9], None),
		(vec![10, 11, 12, 13, 14], Some(&a1)),
		(vec![15], Some(&a0)),
		(vec![16, 17, 18, 19], Some(&a2)),
	];
	let feed = [20, 21, 22];
	// The CPU's BGMV, and the device paths (grouped, stacked) run here on the CPU device.
	for path in [LoraPath::Auto, LoraPath::Grouped, LoraPath::Stacked] {
		let got = each_row_as_merged(&model, &rows, &feed, path);
		// The adapters matter: an adapter row differs from the base model on the same prompt.
		let base = alone(&model, &rows[0].0, &feed);
		assert!(max_abs_diff(&got[0][0], &base[0]) > 1e-2);
	}
}

/// A composition of adapters (`a+b`) in a mixed batch gives the logits of the model with both
/// adapters merged, beside rows of either adapter alone and of none; weights scale each part.
#[test]
fn composed_adapters_apply_the_weighted_sum_of_their_deltas() {
	let model = tiny_model(DType::F32);
	let cfg = model.cfg.clone();
	let a0 = adapter(&cfg, 4, &["q_proj", "v_proj"], 10);
	let a1 = adapter(&cfg, 8, &["q_proj", "k_proj", "o_proj", "down_proj"], 11);
	let both = LoraAdapter::compose("ad10+ad11", &[(&a0, 1.0), (&a1, 1.0)], &Device::Cpu).unwrap();
	assert_eq!(both.parts.iter().map(|p| (p.0.as_str(), p.2)).collect::<Vec<_>>(), vec![("ad10", 1.0), ("ad11", 1.0)]);
	assert_ne!(both.id, a0.id);
	let rows: Vec<(Vec<u32>, Option<&LoraAdapter>)> =
		vec![(vec![5, 6, 7], Some(&both)), (vec![8, 9], Some(&a0)), (vec![10, 11, 12], None), (vec![13], Some(&a1))];
	let feed = [20, 21];
	let reference = alone(&model.merged(&a0).unwrap().merged(&a1).unwrap(), &rows[0].0, &feed);
	let only_a0 = alone(&model.merged(&a0).unwrap(), &rows[0].0, &feed);
	// The CPU's BGMV, and the device paths (grouped, stacked) run here on the CPU device.
	for path in [LoraPath::Auto, LoraPath::Grouped, LoraPath::Stacked] {
		let got = mixed(&model, &rows, &feed, path);
		for (step, (g, r)) in got[0].iter().zip(&reference).enumerate() {
			let d = max_abs_diff(g, r);
			assert!(d < 1e-4, "step {step} ({path:?}): max |Δlogit| = {d}");
		}
		assert!(max_abs_diff(&got[0][0], &only_a0[0]) > 1e-3, "the second adapter matters");
		let a0_row = alone(&model.merged(&a0).unwrap(), &rows[1].0, &feed);
		assert!(max_abs_diff(&got[1][0], &a0_row[0]) < 1e-4, "a row of one part beside the composition is unchanged");
	}
	// Weights: W + 0.5·ΔW₀ + 0.25·ΔW₁ for every projection.
	let weighted = LoraAdapter::compose("w", &[(&a0, 0.5), (&a1, 0.25)], &Device::Cpu).unwrap();
	assert_ne!(weighted.id, both.id, "the weights are part of the id");
	let w = candle_core::Tensor::randn(0f32, 1.0, (cfg.hidden_size, cfg.hidden_size), &Device::Cpu).unwrap();
	for proj in [0usize, 1, 2, 3] {
		let (out_dim, in_dim) = cfg.projection_shape(openledger_worker::model::config::PROJECTIONS[proj]).unwrap();
		let w = w.narrow(0, 0, out_dim).unwrap().narrow(1, 0, in_dim).unwrap().contiguous().unwrap();
		let d0 = (a0.merged_weight(0, proj, &w).unwrap() - &w).unwrap();
		let d1 = (a1.merged_weight(0, proj, &w).unwrap() - &w).unwrap();
		let want = ((&w + (d0 * 0.5).unwrap()).unwrap() + (d1 * 0.25).unwrap()).unwrap();
		let got = weighted.merged_weight(0, proj, &w).unwrap();
		let d = max_abs_diff(&got.flatten_all().unwrap().to_vec1().unwrap(), &want.flatten_all().unwrap().to_vec1().unwrap());
		assert!(d < 1e-5, "projection {proj}: {d}");
	}
}

/// Resident copies (what a device path reads: `Aᵀ` and `scale·Bᵀ` in the serving dtype, made
/// once at load) give the logits of the merged model on the grouped and stacked paths, here on
/// the CPU device; compositions of resident adapters are resident too; their bytes count in the
/// adapter's size, replaced (not added) when made again in another dtype.
#[test]
fn resident_copies_give_the_merged_logits_and_count_in_the_adapters_bytes() {
	let model = tiny_model(DType::F32);
	let cfg = model.cfg.clone();
	let mut a0 = adapter(&cfg, 4, &["q_proj", "v_proj"], 10);
	let mut a1 = adapter(&cfg, 8, &["q_proj", "k_proj", "down_proj"], 11);
	assert_eq!(a0.scale, 2.0, "a scale that is not 1, so that folding it in is checked");
	let host = |a: &LoraAdapter| a.layers.iter().flatten().flatten().map(|p| (p.a.len() + p.b.len()) * 4).sum::<usize>();
	let h0 = host(&a0);
	assert_eq!(a0.bytes, h0);
	a0.make_resident(&Device::Cpu, DType::F16).unwrap();
	assert_eq!(a0.bytes, h0 + h0 / 2, "f16 copies of every pair: half the f32 host bytes");
	a0.make_resident(&Device::Cpu, DType::F32).unwrap();
	assert_eq!(a0.bytes, 2 * h0, "made again in f32: the f16 copies are replaced, not added");
	a1.make_resident(&Device::Cpu, DType::F32).unwrap();
	let both = LoraAdapter::compose("ad10+ad11", &[(&a0, 1.0), (&a1, 0.5)], &Device::Cpu).unwrap();
	assert!(both.layers.iter().flatten().flatten().all(|p| p.device.is_some()), "a composition of resident adapters is resident");
	assert_eq!(both.bytes, 2 * host(&both));
	let rows: Vec<(Vec<u32>, Option<&LoraAdapter>)> =
		vec![(vec![5, 6, 7], Some(&a0)), (vec![8, 9], None), (vec![10, 11, 12], Some(&a1)), (vec![13, 14], Some(&both))];
	let feed = [20, 21];
	// The merged reference reads the host copies: an independent computation.
	for path in [LoraPath::Grouped, LoraPath::Stacked] {
		each_row_as_merged(&model, &rows, &feed, path);
	}
	// The device paths read the resident copies (not the host ones): with its resident scale·Bᵀ
	// zeroed, a0 leaves the base model's logits there, while the CPU's kernel (host copies) still
	// applies it.
	let mut hollow = adapter(&cfg, 4, &["q_proj", "v_proj"], 10);
	hollow.make_resident(&Device::Cpu, DType::F32).unwrap();
	for p in hollow.layers.iter_mut().flatten().flatten() {
		let (at, bt) = p.device.take().unwrap();
		p.device = Some((at, bt.zeros_like().unwrap()));
	}
	let one: Vec<(Vec<u32>, Option<&LoraAdapter>)> = vec![(vec![5, 6, 7], Some(&hollow))];
	let base = alone(&model, &one[0].0, &feed);
	for path in [LoraPath::Grouped, LoraPath::Stacked] {
		let got = mixed(&model, &one, &feed, path);
		assert!(max_abs_diff(&got[0][0], &base[0]) < 1e-5, "{path:?} reads the resident copies");
	}
	let cpu = mixed(&model, &one, &feed, LoraPath::Auto);
	assert!(max_abs_diff(&cpu[0][0], &base[0]) > 1e-2, "the CPU kernel reads the host copies");
	// In f16 (a half-precision serving dtype), close to the f32 merge, and different from the base.
	a0.make_resident(&Device::Cpu, DType::F16).unwrap();
	let rows: Vec<(Vec<u32>, Option<&LoraAdapter>)> = vec![(vec![5, 6, 7], Some(&a0)), (vec![8, 9], None)];
	let reference = alone(&model.merged(&a0).unwrap(), &rows[0].0, &feed);
	let base = alone(&model, &rows[0].0, &feed);
	for path in [LoraPath::Grouped, LoraPath::Stacked] {
		let got = mixed(&model, &rows, &feed, path);
		for (step, (g, r)) in got[0].iter().zip(&reference).enumerate() {
			let d = max_abs_diff(g, r);
			assert!(d < 2e-2, "f16 step {step} ({path:?}): max |Δlogit| = {d}");
		}
		assert!(max_abs_diff(&got[0][0], &base[0]) > 1e-2, "the f16 copies apply the adapter");
	}
}

#[test]
fn composition_names_are_parsed_strictly() {
	assert!(parse_composition("legal").is_none());
	assert_eq!(parse_composition("legal+medical").unwrap().unwrap(), vec![("legal".to_string(), 1.0), ("medical".to_string(), 1.0)]);
	assert_eq!(parse_composition("a:0.7+b:0.3").unwrap().unwrap(), vec![("a".to_string(), 0.7), ("b".to_string(), 0.3)]);
	for bad in ["a+", "+a", "a+a", "a+b+c+d+e", "a:0+b", "a:-1+b", "a:nan+b", "a:inf+b", "a:5+b", "a:1e30+b", "a:1e-45+b", "a:0.0009+b", "a:+b", "../x+b", "a:1:2+b", "é+b"] {
		assert!(parse_composition(bad).unwrap().is_err(), "{bad}");
	}
	assert!(parse_composition("a+b+c+d").unwrap().is_ok());
	assert!(parse_composition("a:0.001+b:4").unwrap().is_ok());
	let canon = |n: &str| openledger_worker::model::lora::canonical_composition(&parse_composition(n).unwrap().unwrap());
	assert_eq!(canon("a:0.70+b"), canon("a:0.7+b:1"));
	assert_ne!(canon("a+b"), canon("b+a"));
}

/// Ranks beyond the CPU kernel's stack buffer (256) are applied, not skipped: the receipt bills
/// the adapter, so the answer must be the adapter's.
#[test]
fn high_rank_adapters_are_applied_on_the_cpu_path() {
	let model = tiny_model(DType::F32);
	let cfg = model.cfg.clone();
	let big = adapter(&cfg, 300, &["q_proj", "v_proj", "down_proj"], 13);
	let rows: Vec<(Vec<u32>, Option<&LoraAdapter>)> = vec![(vec![5, 6, 7], Some(&big)), (vec![8, 9], None)];
	let feed = [20, 21];
	let reference = alone(&model.merged(&big).unwrap(), &rows[0].0, &feed);
	let base = alone(&model, &rows[0].0, &feed);
	// The CPU's BGMV, and the device paths (grouped, stacked) run here on the CPU device.
	for path in [LoraPath::Auto, LoraPath::Grouped, LoraPath::Stacked] {
		let got = mixed(&model, &rows, &feed, path);
		for (step, (g, r)) in got[0].iter().zip(&reference).enumerate() {
			let d = max_abs_diff(g, r);
			assert!(d < 1e-3, "step {step} ({path:?}): max |Δlogit| = {d}");
		}
		assert!(max_abs_diff(&got[0][0], &base[0]) > 1e-2, "the rank-300 adapter changes the logits");
	}
}

#[test]
fn half_precision_runs_close_to_f32() {
	let f32m = tiny_model(DType::F32);
	let a = adapter(&f32m.cfg, 4, &["q_proj", "v_proj"], 10);
	// A 70-token prompt: with weights as loaded (no AVX-512), past the decode kernels' row limit,
	// so the projections take the general matmul in the weights' dtype (the activations
	// narrowed to it and back); repacked, the panel kernel.
	let long: Vec<u32> = (0..70).map(|i| (i * 7 + 1) % 97).collect();
	let halves = [DType::BF16, DType::F16].map(tiny_model);
	for m in halves.iter().map(|m| m.with_plain_weights().unwrap()).chain(halves.iter().cloned()) {
		let dt = m.dtype;
		// Half weights and KV, f32 activations on the CPU.
		assert_eq!((m.dtype, m.act), (dt, DType::F32));
		let rows = vec![(vec![3, 4, 5, 6], Some(&a)), (vec![7, 8], None), (long.clone(), Some(&a))];
		let got = mixed(&m, &rows, &[9, 10], LoraPath::Auto);
		let mut cache = KvCache::default();
		m.forward(&mut [Row { tokens: &[1, 2, 3], cache: &mut cache, adapter: None }]).unwrap();
		assert_eq!(cache.bytes(), 2 * m.cfg.num_hidden_layers * m.cfg.kv_heads() * m.cfg.head_dim() * cache.capacity() * 2, "{dt:?}: the KV in half");
		let want = mixed(&f32m, &rows, &[9, 10], LoraPath::Auto);
		assert_eq!(got.iter().flatten().count(), 9);
		for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
			let scale = w.iter().fold(0f32, |m, x| m.max(x.abs()));
			assert!(max_abs_diff(g, w) < 0.05 * scale.max(1.0), "{dt:?} drifted too far");
		}
	}
}

#[test]
fn peft_folder_loads_and_its_id_ignores_layout_but_not_content() {
	let cfg = tiny_config();
	let (config, weights) = adapter_files(&cfg, 4, &["q_proj", "v_proj"], 5);
	let id = adapter_id(&config, &weights).unwrap();
	// Same content, other JSON formatting and tensor order in the file: same id.
	let v: serde_json::Value = serde_json::from_slice(&config).unwrap();
	let compact = serde_json::to_vec(&v).unwrap();
	let st = safetensors::SafeTensors::deserialize(&weights).unwrap();
	let mut named: Vec<(String, candle_core::Tensor)> = st
		.tensors()
		.into_iter()
		.map(|(n, _)| (n.clone(), candle_core::safetensors::load_buffer(&weights, &Device::Cpu).unwrap()[&n].clone()))
		.collect();
	named.reverse();
	let rewritten = safetensors::serialize(named.iter().map(|(k, v)| (k.as_str(), v)), None).unwrap();
	assert_eq!(adapter_id(&compact, &rewritten).unwrap(), id);
	// Other weights or another config: another id.
	let (_, other_w) = adapter_files(&cfg, 4, &["q_proj", "v_proj"], 6);
	assert_ne!(adapter_id(&config, &other_w).unwrap(), id);
	let mut v2 = v.clone();
	v2["lora_alpha"] = serde_json::json!(1.0);
	assert_ne!(adapter_id(&serde_json::to_vec(&v2).unwrap(), &weights).unwrap(), id);

	let dir = tempfile::tempdir().unwrap();
	std::fs::write(dir.path().join("adapter_config.json"), &config).unwrap();
	std::fs::write(dir.path().join("adapter_model.safetensors"), &weights).unwrap();
	let a = LoraAdapter::load(dir.path(), "x", &cfg, &Device::Cpu).unwrap();
	assert_eq!(a.id, id);
	assert_eq!(a.scale, 2.0);
	assert!(a.pair(0, 0).is_some() && a.pair(1, 2).is_some() && a.pair(0, 1).is_none());
	// Two layers × (q: A 4×64 + B 64×4, v: A 4×64 + B 32×4) f32 values.
	assert_eq!(a.bytes, 2 * (4 * 64 + 64 * 4 + 4 * 64 + 32 * 4) * 4);
}

#[test]
fn bad_adapters_are_refused_with_the_reason() {
	let cfg = tiny_config();
	let err = |config: &[u8], weights: &[u8]| {
		LoraAdapter::from_bytes(config, weights, "x", &cfg, &Device::Cpu).unwrap_err().to_string()
	};
	let (config, weights) = adapter_files(&cfg, 4, &["q_proj"], 1);
	// Rank in the config differs from the tensors.
	let mut v: serde_json::Value = serde_json::from_slice(&config).unwrap();
	v["r"] = serde_json::json!(8);
	assert!(err(&serde_json::to_vec(&v).unwrap(), &weights).contains("shape"));
	// A tensor for a module the config does not target.
	let mut v: serde_json::Value = serde_json::from_slice(&config).unwrap();
	v["target_modules"] = serde_json::json!(["v_proj"]);
	assert!(err(&serde_json::to_vec(&v).unwrap(), &weights).contains("target_modules"));
	// An adapter for a bigger model (more layers).
	let mut big = cfg.clone();
	big.num_hidden_layers = 4;
	let (_, w4) = adapter_files(&big, 4, &["q_proj"], 1);
	assert!(err(&config, &w4).contains("layers"));
	// Unsupported options and broken files.
	let mut v: serde_json::Value = serde_json::from_slice(&config).unwrap();
	v["fan_in_fan_out"] = serde_json::json!(true);
	assert!(err(&serde_json::to_vec(&v).unwrap(), &weights).contains("fan_in_fan_out"));
	assert!(err(b"{}", &weights).contains("adapter_config.json"));
	assert!(err(&config, b"not safetensors").contains("safetensors"));
}

#[test]
fn sharded_checkpoint_loads_like_a_single_file() {
	let dir = tempfile::tempdir().unwrap();
	let spec = openledger_worker::model::synthetic::BaseSpec { vocab: 300, hidden: 32, intermediate: 48, ..Default::default() };
	let one = dir.path().join("one");
	let three = dir.path().join("three");
	openledger_worker::model::synthetic::write_base_model(&one, &spec, 1).unwrap();
	openledger_worker::model::synthetic::write_base_model(&three, &spec, 3).unwrap();
	assert!(three.join("model.safetensors.index.json").exists() && three.join("model-00003-of-00003.safetensors").exists());
	let m1 = Llama::load_dir(&one, DType::F32, &Device::Cpu).unwrap();
	let m3 = Llama::load_dir(&three, DType::F32, &Device::Cpu).unwrap();
	let p = [1u32, 2, 3, 4];
	assert_eq!(alone(&m1, &p, &[5]), alone(&m3, &p, &[5]));
	// Same seed, same bytes: the generator is deterministic.
	let again = dir.path().join("again");
	openledger_worker::model::synthetic::write_base_model(&again, &spec, 1).unwrap();
	assert_eq!(std::fs::read(one.join("model.safetensors")).unwrap(), std::fs::read(again.join("model.safetensors")).unwrap());
}

/// On a model with biases on q/k/v (Qwen2's layout, fused q/k/v with a bias per part), an
/// adapter merged into the weights gives what the mixed batch computes with it unmerged — in
/// the panel layout and the as-loaded one — and the biases survive the merge (dropping them
/// changes the logits).
#[test]
fn merging_keeps_the_biases_of_a_qwen2_layout_model() {
	use openledger_worker::model::synthetic::{write_base_model, BaseSpec, Family};
	let dir = tempfile::tempdir().unwrap();
	let spec = BaseSpec { vocab: 300, hidden: 64, intermediate: 112, layers: 2, heads: 4, kv_heads: 2, max_positions: 128, seed: 9, family: Family::Qwen2, vocab_rows: None };
	write_base_model(dir.path(), &spec, 1).unwrap();
	let model = Llama::load_dir(dir.path(), DType::F32, &Device::Cpu).unwrap();
	assert!(model.cfg.qkv_bias());
	let cfg = model.cfg.clone();
	// Adapters on some of q/k/v only (a merged part beside unmerged biased ones), and on all.
	let a0 = adapter(&cfg, 4, &["k_proj", "down_proj"], 21);
	let a1 = adapter(&cfg, 8, &["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], 22);
	let rows: Vec<(Vec<u32>, Option<&LoraAdapter>)> = vec![(vec![5, 6, 7], Some(&a0)), (vec![8, 9, 10, 11], Some(&a1)), (vec![12, 13], None)];
	let feed = [14, 15];
	for m in [model.clone(), model.with_plain_weights().unwrap()] {
		each_row_as_merged(&m, &rows, &feed, LoraPath::Auto);
	}
	// The biases are there to keep: the same model without them answers differently.
	let mut zeroed = std::collections::HashMap::new();
	for (name, t) in candle_core::safetensors::load(dir.path().join("model.safetensors"), &Device::Cpu).unwrap() {
		let t = if name.ends_with(".bias") { t.zeros_like().unwrap() } else { t };
		zeroed.insert(name, t);
	}
	let unbiased = Llama::load(candle_nn::VarBuilder::from_tensors(zeroed, DType::F32, &Device::Cpu), cfg).unwrap();
	let d = max_abs_diff(&alone(&model.merged(&a1).unwrap(), &rows[1].0, &feed)[0], &alone(&unbiased.merged(&a1).unwrap(), &rows[1].0, &feed)[0]);
	assert!(d > 1e-3, "the biases change nothing: {d}");
}
