//! Tiny seeded models and adapters for the tests.
#![allow(dead_code)]

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use openledger_worker::model::synthetic::{adapter_tensors, base_tensors, BaseSpec};
use openledger_worker::model::config::LlamaConfig;
use openledger_worker::model::llama::Llama;
use openledger_worker::model::lora::LoraAdapter;

pub fn tiny_config() -> LlamaConfig {
	BaseSpec { hidden: 64, intermediate: 96, layers: 2, heads: 4, kv_heads: 2, vocab: 97, max_positions: 128, seed: 3, ..Default::default() }
		.config(1, vec![2])
}

pub fn tiny_model(dtype: DType) -> Llama {
	let cfg = tiny_config();
	let t = base_tensors(&cfg, 3, &Device::Cpu).unwrap();
	Llama::load(VarBuilder::from_tensors(t, dtype, &Device::Cpu), cfg).unwrap()
}

/// (adapter_config.json, adapter_model.safetensors) bytes of a seeded adapter.
pub fn adapter_files(cfg: &LlamaConfig, rank: usize, targets: &[&str], seed: u64) -> (Vec<u8>, Vec<u8>) {
	let (config, tensors) = adapter_tensors(cfg, rank, 2.0 * rank as f64, targets, seed, &Device::Cpu).unwrap();
	let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), None).unwrap();
	(config, bytes)
}

pub fn adapter(cfg: &LlamaConfig, rank: usize, targets: &[&str], seed: u64) -> LoraAdapter {
	let (c, w) = adapter_files(cfg, rank, targets, seed);
	LoraAdapter::from_bytes(&c, &w, &format!("ad{seed}"), cfg, &Device::Cpu).unwrap()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
	assert_eq!(a.len(), b.len());
	a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
