//! Seeded model folders in the Hugging Face layout (nothing can be downloaded on our machines):
//! a Llama-style base model (`config.json`, `model.safetensors` or shards + index,
//! `tokenizer.json` trained with `tokenizers` on the bundled corpus, `tokenizer_config.json` with
//! a chat template) and PEFT LoRA adapters. The worker loads them through the same code as a
//! downloaded model.

use crate::model::config::{LlamaConfig, TokenIds, PROJECTIONS};
use crate::model::lora::{CONFIG_FILE, WEIGHTS_FILE};
use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;

/// The bundled corpus (CC0 + public domain), for the tokenizer and the demo.
pub const CORPUS: &str = include_str!("../../assets/corpus.txt");

pub const BOS: &str = "<s>";
pub const EOS: &str = "</s>";
pub const IM_START: &str = "<|im_start|>";
pub const IM_END: &str = "<|im_end|>";
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// The layout a generated base model imitates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Family {
	/// Llama: untied output matrix, no attention biases, BOS/EOS at the start of the vocabulary.
	#[default]
	Llama,
	/// Qwen2 (0.5B–72B share it): a 151,936-row vocabulary with the trained tokens spread in
	/// order over 0‥151,642 (so the later merges sit above 65,535), `<|endoftext|>`,
	/// `<|im_start|>`, `<|im_end|>` at 151,643‥151,645, unused rows zero and listed in
	/// `generation_config.json`'s `suppress_tokens` (never sampled); biases on q/k/v; embeddings
	/// tied to the output.
	Qwen2,
}

/// Qwen2's vocabulary: rows of the embedding, and the first special token's id.
pub const QWEN2_VOCAB_ROWS: usize = 151_936;
pub const QWEN2_FIRST_SPECIAL: u32 = 151_643;
pub const QWEN2_EOT: &str = "<|endoftext|>";

/// Shape of a generated base model.
#[derive(Clone, Debug)]
pub struct BaseSpec {
	pub hidden: usize,
	pub intermediate: usize,
	pub layers: usize,
	pub heads: usize,
	pub kv_heads: usize,
	pub vocab: usize,
	pub max_positions: usize,
	pub seed: u64,
	pub family: Family,
	/// Embedding rows past the tokenizer (llama family; padding as many checkpoints have).
	pub vocab_rows: Option<usize>,
}

impl Default for BaseSpec {
	fn default() -> Self {
		Self {
			hidden: 64,
			intermediate: 176,
			layers: 2,
			heads: 4,
			kv_heads: 2,
			vocab: 512,
			max_positions: 512,
			seed: 42,
			family: Family::Llama,
			vocab_rows: None,
		}
	}
}

impl BaseSpec {
	pub fn config(&self, bos: u32, eos: Vec<u32>) -> LlamaConfig {
		let mut cfg = LlamaConfig {
			model_type: "llama".into(),
			hidden_size: self.hidden,
			intermediate_size: self.intermediate,
			num_hidden_layers: self.layers,
			num_attention_heads: self.heads,
			num_key_value_heads: Some(self.kv_heads),
			head_dim: None,
			vocab_size: self.vocab,
			rms_norm_eps: 1e-5,
			rope_theta: 10_000.0,
			max_position_embeddings: self.max_positions,
			tie_word_embeddings: false,
			attention_bias: Some(false),
			bos_token_id: Some(TokenIds::One(bos)),
			eos_token_id: Some(TokenIds::Many(eos)),
			torch_dtype: Some("float32".into()),
			architectures: vec!["LlamaForCausalLM".into()],
			rope_scaling: None,
			sliding_window: None,
			use_sliding_window: None,
		};
		if self.family == Family::Qwen2 {
			cfg.model_type = "qwen2".into();
			cfg.architectures = vec!["Qwen2ForCausalLM".into()];
			cfg.attention_bias = None;
			cfg.tie_word_embeddings = true;
			cfg.rope_theta = 1_000_000.0;
			cfg.rms_norm_eps = 1e-6;
			cfg.sliding_window = Some(self.max_positions);
			cfg.use_sliding_window = Some(false);
		}
		cfg
	}
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, bound: f32) -> Vec<f32> {
	(0..n).map(|_| rng.gen_range(-bound..bound)).collect()
}

/// Seeded weights for `cfg` with HF names (uniform, scaled by fan-in like the usual inits).
pub fn base_tensors(cfg: &LlamaConfig, seed: u64, device: &Device) -> anyhow::Result<HashMap<String, Tensor>> {
	let mut rng = ChaCha8Rng::seed_from_u64(seed);
	let mut t = HashMap::new();
	let h = cfg.hidden_size;
	let put = |t: &mut HashMap<String, Tensor>, name: String, shape: (usize, usize), rng: &mut ChaCha8Rng| -> anyhow::Result<()> {
		let bound = (3.0 / shape.1 as f32).sqrt();
		t.insert(name, Tensor::from_vec(uniform(rng, shape.0 * shape.1, bound), shape, device)?);
		Ok(())
	};
	put(&mut t, "model.embed_tokens.weight".into(), (cfg.vocab_size, h), &mut rng)?;
	for l in 0..cfg.num_hidden_layers {
		for (i, p) in PROJECTIONS.iter().enumerate() {
			let group = if i < 4 { "self_attn" } else { "mlp" };
			let shape = cfg.projection_shape(p).expect("PROJECTIONS; qed");
			put(&mut t, format!("model.layers.{l}.{group}.{p}.weight"), shape, &mut rng)?;
			if i < 3 && cfg.qkv_bias() {
				let bound = (1.0 / shape.1 as f32).sqrt();
				t.insert(format!("model.layers.{l}.{group}.{p}.bias"), Tensor::from_vec(uniform(&mut rng, shape.0, bound), shape.0, device)?);
			}
		}
		for n in ["input_layernorm", "post_attention_layernorm"] {
			t.insert(format!("model.layers.{l}.{n}.weight"), Tensor::ones(h, DType::F32, device)?);
		}
	}
	t.insert("model.norm.weight".into(), Tensor::ones(h, DType::F32, device)?);
	if !cfg.tie_word_embeddings {
		put(&mut t, "lm_head.weight".into(), (cfg.vocab_size, h), &mut rng)?;
	}
	Ok(t)
}

/// Trains a byte-level BPE tokenizer on `corpus` with the chat special tokens.
pub fn train_tokenizer(corpus: &str, vocab: usize, dir: &Path) -> anyhow::Result<tokenizers::Tokenizer> {
	train_bpe(corpus, vocab, &[BOS, EOS, IM_START, IM_END], dir)
}

fn train_bpe(corpus: &str, vocab: usize, specials: &[&str], dir: &Path) -> anyhow::Result<tokenizers::Tokenizer> {
	use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
	use tokenizers::pre_tokenizers::byte_level::ByteLevel;
	use tokenizers::{AddedToken, Tokenizer};
	let specials: Vec<AddedToken> = specials.iter().map(|s| AddedToken::from(*s, true)).collect();
	let mut trainer: tokenizers::models::TrainerWrapper = BpeTrainerBuilder::new()
		.vocab_size(vocab)
		.min_frequency(2)
		.show_progress(false)
		.special_tokens(specials.clone())
		.initial_alphabet(ByteLevel::alphabet().into_iter().collect())
		.build()
		.into();
	let mut tk = Tokenizer::new(BPE::default());
	tk.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
	tk.with_decoder(Some(ByteLevel::default()));
	let corpus_file = dir.join(".corpus.txt");
	std::fs::write(&corpus_file, corpus)?;
	tk.train_from_files(&mut trainer, vec![corpus_file.to_string_lossy().into_owned()])
		.map_err(|e| anyhow::anyhow!("training the tokenizer: {e}"))?;
	std::fs::remove_file(&corpus_file)?;
	tk.add_special_tokens(specials).map_err(|e| anyhow::anyhow!("adding special tokens: {e}"))?;
	Ok(tk)
}

/// A tokenizer with Qwen2's id layout: `vocab` tokens trained on `corpus`, spread in order over
/// 0‥151,642 (the byte alphabet first, the later merges above 65,535), every other id below
/// 151,643 a reserved token no merge produces, then the three special tokens. Returns the
/// tokenizer and, per embedding row, whether a trained or special token uses it.
pub fn qwen2_tokenizer(corpus: &str, vocab: usize, dir: &Path) -> anyhow::Result<(tokenizers::Tokenizer, Vec<bool>)> {
	let specials = [QWEN2_EOT, IM_START, IM_END];
	let trained = train_bpe(corpus, vocab, &specials, dir)?;
	let mut json: serde_json::Value =
		serde_json::from_str(&trained.to_string(false).map_err(|e| anyhow::anyhow!("serializing the tokenizer: {e}"))?)?;
	let old = json["model"]["vocab"].as_object().context("a BPE vocabulary")?;
	let mut regular: Vec<(&String, u64)> =
		old.iter().filter(|(t, _)| !specials.contains(&t.as_str())).map(|(t, id)| (t, id.as_u64().unwrap_or(u64::MAX))).collect();
	regular.sort_by_key(|(_, id)| *id);
	let first = QWEN2_FIRST_SPECIAL as u64;
	anyhow::ensure!(!regular.is_empty() && regular.len() as u64 <= first, "{} trained tokens (1‥{first})", regular.len());
	let n = regular.len() as u64;
	let mut used = vec![false; QWEN2_VOCAB_ROWS];
	let mut by_id: Vec<Option<String>> = vec![None; first as usize];
	for (k, (token, _)) in regular.iter().enumerate() {
		// k·first/n is strictly increasing in k because n ≤ first.
		let id = k as u64 * first / n;
		by_id[id as usize] = Some((*token).clone());
		used[id as usize] = true;
	}
	let mut vocab = serde_json::Map::new();
	for (id, token) in by_id.into_iter().enumerate() {
		vocab.insert(token.unwrap_or_else(|| format!("<|reserved_{id}|>")), id.into());
	}
	for (j, s) in specials.iter().enumerate() {
		let id = QWEN2_FIRST_SPECIAL as usize + j;
		vocab.insert((*s).into(), id.into());
		used[id] = true;
	}
	json["model"]["vocab"] = vocab.into();
	for added in json["added_tokens"].as_array_mut().context("added_tokens")? {
		let pos = specials.iter().position(|s| added["content"] == *s).context("an added token that is not special")?;
		added["id"] = (QWEN2_FIRST_SPECIAL as usize + pos).into();
	}
	let tk: tokenizers::Tokenizer =
		json.to_string().parse().map_err(|e| anyhow::anyhow!("loading the Qwen2-layout tokenizer: {e}"))?;
	Ok((tk, used))
}

/// Writes a complete base model folder. `shards > 1` writes `model-0000i-of-0000n.safetensors`
/// and `model.safetensors.index.json` like large checkpoints do.
pub fn write_base_model(dir: &Path, spec: &BaseSpec, shards: usize) -> anyhow::Result<LlamaConfig> {
	std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
	let mut spec = spec.clone();
	let (tk, used) = match spec.family {
		Family::Llama => (train_tokenizer(CORPUS, spec.vocab, dir)?, None),
		Family::Qwen2 => {
			let (tk, used) = qwen2_tokenizer(CORPUS, spec.vocab, dir)?;
			(tk, Some(used))
		},
	};
	let id = |s: &str| tk.token_to_id(s).ok_or_else(|| anyhow::anyhow!("{s} missing from the vocabulary"));
	let (cfg, tk_cfg) = match spec.family {
		Family::Llama => {
			spec.vocab = tk.get_vocab_size(true);
			if let Some(rows) = spec.vocab_rows {
				anyhow::ensure!(rows >= spec.vocab, "--vocab-rows {rows} is below the tokenizer's {} tokens", spec.vocab);
				spec.vocab = rows;
			}
			let cfg = spec.config(id(BOS)?, vec![id(EOS)?, id(IM_END)?]);
			(cfg, serde_json::json!({ "bos_token": BOS, "eos_token": IM_END, "tokenizer_class": "PreTrainedTokenizerFast" }))
		},
		Family::Qwen2 => {
			spec.vocab = QWEN2_VOCAB_ROWS;
			let cfg = spec.config(id(QWEN2_EOT)?, vec![id(IM_END)?, id(QWEN2_EOT)?]);
			(cfg, serde_json::json!({ "bos_token": null, "eos_token": IM_END, "pad_token": QWEN2_EOT, "tokenizer_class": "Qwen2TokenizerFast" }))
		},
	};
	let mut tk_cfg = tk_cfg;
	tk_cfg["model_max_length"] = spec.max_positions.into();
	tk_cfg["chat_template"] = CHATML_TEMPLATE.into();
	tk.save(dir.join("tokenizer.json"), false).map_err(|e| anyhow::anyhow!("saving tokenizer.json: {e}"))?;
	std::fs::write(dir.join("tokenizer_config.json"), serde_json::to_vec_pretty(&tk_cfg)?)?;
	std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&cfg)?)?;
	let mut tensors = base_tensors(&cfg, spec.seed, &Device::Cpu)?;
	if let Some(used) = &used {
		// The reserved tokens are never generated (as untrained reserved rows must not be):
		// Hugging Face's `suppress_tokens`, which the engine honours; the padding rows past the
		// tokenizer have no text and are never sampled anyway.
		let suppress: Vec<usize> = (0..QWEN2_FIRST_SPECIAL as usize).filter(|&i| !used[i]).collect();
		let generation = serde_json::json!({
			"bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id, "suppress_tokens": suppress,
		});
		std::fs::write(dir.join("generation_config.json"), serde_json::to_vec(&generation)?)?;
	}
	if let Some(used) = used {
		let rows = used.len();
		let mask: Vec<f32> = used.into_iter().map(|u| if u { 1.0 } else { 0.0 }).collect();
		let mask = Tensor::from_vec(mask, (rows, 1), &Device::Cpu)?;
		let name = "model.embed_tokens.weight";
		let masked = tensors[name].broadcast_mul(&mask)?;
		tensors.insert(name.into(), masked);
	}
	write_tensors(dir, &tensors, shards)?;
	Ok(cfg)
}

/// Writes tensors as `model.safetensors`, or as `shards` files plus the HF index.
pub fn write_tensors(dir: &Path, tensors: &HashMap<String, Tensor>, shards: usize) -> anyhow::Result<()> {
	if shards <= 1 {
		candle_core::safetensors::save(tensors, dir.join("model.safetensors"))?;
		return Ok(());
	}
	let mut names: Vec<&String> = tensors.keys().collect();
	names.sort();
	let per = names.len().div_ceil(shards);
	let mut weight_map = serde_json::Map::new();
	let mut total = 0usize;
	for (i, chunk) in names.chunks(per).enumerate() {
		let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, shards);
		let part: HashMap<String, Tensor> = chunk.iter().map(|n| ((*n).clone(), tensors[*n].clone())).collect();
		for (n, t) in &part {
			total += t.elem_count() * t.dtype().size_in_bytes();
			weight_map.insert(n.clone(), serde_json::Value::String(file.clone()));
		}
		candle_core::safetensors::save(&part, dir.join(&file))?;
	}
	let index = serde_json::json!({ "metadata": { "total_size": total }, "weight_map": weight_map });
	std::fs::write(dir.join("model.safetensors.index.json"), serde_json::to_vec_pretty(&index)?)?;
	Ok(())
}

/// A seeded PEFT LoRA adapter for `cfg`: (adapter_config.json bytes, tensors).
pub fn adapter_tensors(
	cfg: &LlamaConfig,
	rank: usize,
	alpha: f64,
	targets: &[&str],
	seed: u64,
	device: &Device,
) -> anyhow::Result<(Vec<u8>, HashMap<String, Tensor>)> {
	let mut rng = ChaCha8Rng::seed_from_u64(seed);
	let mut t = HashMap::new();
	for l in 0..cfg.num_hidden_layers {
		for p in targets {
			let (out_dim, in_dim) =
				cfg.projection_shape(p).ok_or_else(|| anyhow::anyhow!("unknown target module {p:?}"))?;
			let group = if ["q_proj", "k_proj", "v_proj", "o_proj"].contains(p) { "self_attn" } else { "mlp" };
			let prefix = format!("base_model.model.model.layers.{l}.{group}.{p}");
			let a = uniform(&mut rng, rank * in_dim, (3.0 / in_dim as f32).sqrt());
			// PEFT starts B at zero; a served adapter has trained, non-zero B.
			let b = uniform(&mut rng, out_dim * rank, 0.5 / (rank as f32).sqrt());
			t.insert(format!("{prefix}.lora_A.weight"), Tensor::from_vec(a, (rank, in_dim), device)?);
			t.insert(format!("{prefix}.lora_B.weight"), Tensor::from_vec(b, (out_dim, rank), device)?);
		}
	}
	let config = serde_json::json!({
		"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": alpha,
		"lora_dropout": 0.0, "target_modules": targets, "bias": "none", "fan_in_fan_out": false,
		"use_rslora": false, "base_model_name_or_path": null,
	});
	Ok((serde_json::to_vec_pretty(&config)?, t))
}

/// Writes a seeded PEFT adapter folder.
pub fn write_adapter(
	dir: &Path,
	cfg: &LlamaConfig,
	rank: usize,
	alpha: f64,
	targets: &[&str],
	seed: u64,
) -> anyhow::Result<()> {
	std::fs::create_dir_all(dir)?;
	let (config, tensors) = adapter_tensors(cfg, rank, alpha, targets, seed, &Device::Cpu)?;
	std::fs::write(dir.join(CONFIG_FILE), config)?;
	candle_core::safetensors::save(&tensors, dir.join(WEIGHTS_FILE))?;
	Ok(())
}
