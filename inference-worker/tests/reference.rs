//! Our ragged-batch decoder against an independent implementation: candle-transformers' Llama,
//! on the same Hugging Face folder. Same logits for the prompt and every decode step, alone or
//! batched with other rows.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama as reference;
use openledger_worker::model::synthetic::{write_base_model, BaseSpec};
use openledger_worker::model::llama::{safetensors_files, KvCache, Llama, Row};

/// A prompt then three decode steps: `theirs(tokens, position)` gives the reference's logits of
/// the last position; ours runs the same tokens with an unrelated row (other length, other
/// position) in the same batch. Same logits at every step.
fn compare_steps(ours: &Llama, theirs: impl FnMut(&Tensor, usize) -> Vec<f32>) {
	compare_steps_of(ours, vec![vec![5, 17, 42, 99, 3, 250, 7], vec![11], vec![12], vec![13]], theirs)
}

fn compare_steps_of(ours: &Llama, steps: Vec<Vec<u32>>, mut theirs: impl FnMut(&Tensor, usize) -> Vec<f32>) {
	let dev = Device::Cpu;
	// Ours twice: projections repacked for the panel kernel (where the CPU has AVX-512) and as
	// loaded (the path of CPUs without it).
	let plain = ours.with_plain_weights().unwrap();
	assert_eq!(ours.repacked_projections() > 0, openledger_worker::model::gemm::available());
	assert_eq!(plain.repacked_projections(), 0);
	let models = [("repacked", ours), ("plain", &plain)];
	let mut caches: Vec<(KvCache, KvCache)> = models.iter().map(|_| (KvCache::default(), KvCache::default())).collect();
	let mut pos = 0;
	for (i, tokens) in steps.iter().enumerate() {
		let x = Tensor::new(tokens.as_slice(), &dev).unwrap().unsqueeze(0).unwrap();
		let want = theirs(&x, pos);
		pos += tokens.len();
		let other = [1u32, 2, 3];
		for ((name, model), (our_cache, other_cache)) in models.iter().zip(caches.iter_mut()) {
			let got = model
				.forward(&mut [
					Row { tokens: &other[..if i == 0 { 3 } else { 1 }], cache: other_cache, adapter: None },
					Row { tokens, cache: our_cache, adapter: None },
				])
				.unwrap()
				.to_vec2::<f32>()
				.unwrap()
				.remove(1);
			assert_eq!(want.len(), got.len());
			let d = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
			assert!(d < 1e-3, "step {i}, {name} weights: max |Δlogit| = {d}");
		}
	}
}

#[test]
fn logits_match_candle_transformers_llama() {
	let dir = tempfile::tempdir().unwrap();
	let spec = BaseSpec { vocab: 300, hidden: 64, intermediate: 112, layers: 3, heads: 4, kv_heads: 2, max_positions: 128, seed: 9, ..Default::default() };
	write_base_model(dir.path(), &spec, 2).unwrap();
	let (ours, mut theirs) = both_llamas(dir.path());
	compare_steps(&ours, |x, pos| theirs(x, pos));
}

/// Our model and candle-transformers' Llama (a closure: tokens, position → last logits, with
/// its own cache) on the same folder, f32 on the CPU.
fn both_llamas(dir: &std::path::Path) -> (Llama, impl FnMut(&Tensor, usize) -> Vec<f32>) {
	let dev = Device::Cpu;
	let cfg: reference::LlamaConfig = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
	let cfg = cfg.into_config(false);
	let vb = unsafe { VarBuilder::from_mmaped_safetensors(&safetensors_files(dir).unwrap(), DType::F32, &dev).unwrap() };
	let theirs = reference::Llama::load(vb, &cfg).unwrap();
	let mut cache = reference::Cache::new(true, DType::F32, &cfg, &dev).unwrap();
	let ours = Llama::load_dir(dir, DType::F32, &dev).unwrap();
	(ours, move |x: &Tensor, pos: usize| theirs.forward(x, pos, &mut cache).unwrap().squeeze(0).unwrap().to_vec1().unwrap())
}

/// A prompt longer than the attention's query block (600 positions: three blocks, the last
/// partial), prefilled at once, then decode steps: the same logits as candle-transformers'
/// Llama, and as feeding the same prompt in uneven chunks.
#[test]
fn long_prompts_attend_in_query_blocks_like_the_reference() {
	let dir = tempfile::tempdir().unwrap();
	let spec = BaseSpec { vocab: 300, hidden: 32, intermediate: 48, layers: 2, heads: 4, kv_heads: 2, max_positions: 700, seed: 12, ..Default::default() };
	write_base_model(dir.path(), &spec, 1).unwrap();
	let (ours, theirs) = both_llamas(dir.path());
	let prompt: Vec<u32> = (0..600u32).map(|i| (i * 37 + 11) % 290 + 5).collect();
	compare_steps_of(&ours, vec![prompt.clone(), vec![11], vec![12]], theirs);
	// The same prompt in chunks of 7, 300 and 293 positions: the last chunk's logits agree.
	let mut cache = KvCache::default();
	let mut last = vec![];
	for chunk in [&prompt[..7], &prompt[7..307], &prompt[307..]] {
		last = ours.forward(&mut [Row { tokens: chunk, cache: &mut cache, adapter: None }]).unwrap().to_vec2::<f32>().unwrap().remove(0);
	}
	let whole = ours.forward(&mut [Row { tokens: &prompt, cache: &mut KvCache::default(), adapter: None }]).unwrap().to_vec2::<f32>().unwrap().remove(0);
	let d = last.iter().zip(&whole).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
	assert!(d < 1e-3, "chunked vs whole: max |Δlogit| = {d}");
}

/// Qwen2's layout as `gen-model --family qwen2` writes it (151,936 rows, biases on q/k/v,
/// embeddings tied to the output, rope θ 10⁶) against candle-transformers' Qwen2 on that very
/// folder: a prompt of real tokens (ids past 65,535, a chat token) and decode steps, our row
/// batched beside another.
#[test]
fn logits_match_candle_transformers_qwen2() {
	use candle_transformers::models::qwen2 as qwen;
	use openledger_worker::model::synthetic::Family;
	let dir = tempfile::tempdir().unwrap();
	let dev = Device::Cpu;
	let spec = BaseSpec { vocab: 300, hidden: 64, intermediate: 112, layers: 2, heads: 4, kv_heads: 2, max_positions: 128, seed: 4, family: Family::Qwen2, vocab_rows: None };
	let cfg = write_base_model(dir.path(), &spec, 1).unwrap();
	assert_eq!((cfg.vocab_size, cfg.rope_theta), (151_936, 1e6));
	let names: Vec<String> = candle_core::safetensors::load(dir.path().join("model.safetensors"), &dev).unwrap().into_keys().collect();
	assert!(!names.iter().any(|n| n == "lm_head.weight"), "tied: no separate output matrix");
	assert!(names.iter().any(|n| n == "model.layers.1.self_attn.k_proj.bias"), "q/k/v biases");
	let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
	json["hidden_act"] = "silu".into();
	json["max_window_layers"] = 2.into();
	let their_cfg: qwen::Config = serde_json::from_value(json).unwrap();
	let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[dir.path().join("model.safetensors")], DType::F32, &dev).unwrap() };
	let mut theirs = qwen::ModelForCausalLM::new(&their_cfg, vb).unwrap();
	let ours = Llama::load_dir(dir.path(), DType::F32, &dev).unwrap();
	assert!(ours.cfg.qkv_bias() && ours.cfg.tie_word_embeddings);
	let tk = openledger_worker::tokenizer::TextTokenizer::load(dir.path()).unwrap();
	let prompt = [vec![151_644], tk.encode("The river runs to the sea").unwrap()].concat();
	assert!(prompt.iter().filter(|&&i| i > 65_535).count() >= 2, "{prompt:?}");
	let next = tk.encode(" and back again").unwrap();
	let steps = vec![prompt, vec![next[0]], vec![next[1]], vec![151_645]];
	compare_steps_of(&ours, steps, |x, pos| theirs.forward(x, pos).unwrap().flatten_all().unwrap().to_vec1().unwrap());
}

/// The KV cache is written in place: a reserved cache keeps its buffers (same bytes, same
/// capacity) while it fills, and a clone is a deep copy: what one appends never shows in the
/// other. Both give the logits of a fresh run over the same tokens.
#[test]
fn reserved_caches_stay_put_and_clones_are_independent() {
	let dir = tempfile::tempdir().unwrap();
	let spec = BaseSpec { vocab: 300, hidden: 32, intermediate: 48, max_positions: 64, ..Default::default() };
	write_base_model(dir.path(), &spec, 1).unwrap();
	let model = Llama::load_dir(dir.path(), DType::F32, &Device::Cpu).unwrap();
	let run = |cache: &mut KvCache, tokens: &[u32]| -> Vec<f32> {
		model.forward(&mut [Row { tokens, cache, adapter: None }]).unwrap().to_vec2::<f32>().unwrap().remove(0)
	};
	let mut a = KvCache::with_capacity(16);
	run(&mut a, &[5, 17, 42]);
	let (cap, bytes, allocs) = (a.capacity(), a.bytes(), a.allocations());
	assert_eq!((cap, allocs), (16, 2), "one buffer per layer");
	let mut b = a.clone();
	run(&mut a, &[7]);
	run(&mut b, &[9]);
	let (la, lb) = (run(&mut a, &[11]), run(&mut b, &[11]));
	assert_eq!((a.len(), a.capacity(), a.bytes(), a.allocations()), (5, cap, bytes, allocs), "no reallocation within the reservation");
	let fresh = |tokens: &[u32]| run(&mut KvCache::default(), tokens);
	let close = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max) < 1e-4;
	assert!(close(&la, &fresh(&[5, 17, 42, 7, 11])));
	assert!(close(&lb, &fresh(&[5, 17, 42, 9, 11])));
	assert!(!close(&la, &lb), "the two continuations differ, so the check above can fail");
	// Past the reservation the buffers grow (doubling) and keep what was written.
	let mut c = KvCache::with_capacity(2);
	run(&mut c, &[5, 17]);
	run(&mut c, &[42]);
	assert!(c.capacity() >= 4 && c.allocations() == 4, "grown once per layer: {}", c.allocations());
	assert!(close(&run(&mut c, &[7]), &fresh(&[5, 17, 42, 7])));
}
