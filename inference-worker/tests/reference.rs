//! Our ragged-batch decoder against an independent implementation: candle-transformers' Llama,
//! on the same Hugging Face folder. Same logits for the prompt and every decode step, alone or
//! batched with other rows.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama as reference;
use openledger_worker::gen::{write_base_model, BaseSpec};
use openledger_worker::model::llama::{safetensors_files, KvCache, Llama, Row};

#[test]
fn logits_match_candle_transformers_llama() {
	let dir = tempfile::tempdir().unwrap();
	let spec = BaseSpec { vocab: 300, hidden: 64, intermediate: 112, layers: 3, heads: 4, kv_heads: 2, max_positions: 128, seed: 9 };
	write_base_model(dir.path(), &spec, 2).unwrap();
	let dev = Device::Cpu;

	let cfg: reference::LlamaConfig =
		serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
	let cfg = cfg.into_config(false);
	let files = safetensors_files(dir.path()).unwrap();
	let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &dev).unwrap() };
	let theirs = reference::Llama::load(vb, &cfg).unwrap();
	let mut their_cache = reference::Cache::new(true, DType::F32, &cfg, &dev).unwrap();

	let ours = Llama::load_dir(dir.path(), DType::F32, &dev).unwrap();
	let mut our_cache = KvCache::default();
	let mut other_cache = KvCache::default();

	let prompt: Vec<u32> = vec![5, 17, 42, 99, 3, 250, 7];
	let feed = [11u32, 12, 13];
	let mut steps: Vec<Vec<u32>> = vec![prompt.clone()];
	steps.extend(feed.iter().map(|t| vec![*t]));
	let mut pos = 0;
	for (i, tokens) in steps.iter().enumerate() {
		let x = Tensor::new(tokens.as_slice(), &dev).unwrap().unsqueeze(0).unwrap();
		let want: Vec<f32> = theirs.forward(&x, pos, &mut their_cache).unwrap().squeeze(0).unwrap().to_vec1().unwrap();
		pos += tokens.len();
		// Ours, with an unrelated row (other length, other position) in the same batch.
		let other = [1u32, 2, 3];
		let got = ours
			.forward(&mut [
				Row { tokens: &other[..if i == 0 { 3 } else { 1 }], cache: &mut other_cache, adapter: None },
				Row { tokens, cache: &mut our_cache, adapter: None },
			])
			.unwrap()
			.to_vec2::<f32>()
			.unwrap()
			.remove(1);
		let d = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
		assert!(d < 1e-3, "step {i}: max |Δlogit| = {d}");
	}
}
