//! The decoder again, written for training: whole padded batches `[B, T]` at once, no KV cache,
//! every operation one that candle can differentiate (norms, rotary embeddings and softmax from
//! primitive ops rather than the fused inference kernels). The same weights give the same
//! logits as [`crate::model::llama::Llama`] (a test checks it), so what is trained here is what
//! the worker serves.
//!
//! Parameters are plain tensors; whichever of them are [`Var`]s get gradients. Fine-tuning makes
//! only the LoRA pairs variables; pretraining makes every base weight one.

use crate::model::config::{LlamaConfig, PROJECTIONS};
use anyhow::{anyhow, Context, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// HF name of a projection weight.
pub fn projection_name(layer: usize, proj: usize) -> String {
	let group = if proj < 4 { "self_attn" } else { "mlp" };
	format!("model.layers.{layer}.{group}.{}.weight", PROJECTIONS[proj])
}

/// Trainable LoRA pairs: `A [r, in]` (Kaiming-uniform like PEFT) and `B [out, r]` (zeros, so
/// training starts from the base model exactly).
pub struct LoraParams {
	pub rank: usize,
	pub scale: f64,
	pub dropout: f32,
	/// Per layer, per projection.
	pub pairs: Vec<[Option<(Var, Var)>; 7]>,
}

impl LoraParams {
	pub fn init(cfg: &LlamaConfig, rank: usize, scale: f64, dropout: f32, targets: &[usize], seed: u64, device: &Device) -> Result<Self> {
		let mut rng = ChaCha8Rng::seed_from_u64(seed);
		let mut pairs: Vec<[Option<(Var, Var)>; 7]> = (0..cfg.num_hidden_layers).map(|_| Default::default()).collect();
		for layer in pairs.iter_mut() {
			for &p in targets {
				let (out_dim, in_dim) = cfg.projection_shape(PROJECTIONS[p]).context("projection")?;
				// PEFT: kaiming_uniform_(a=√5) → U(-1/√in, 1/√in).
				let bound = 1.0 / (in_dim as f32).sqrt();
				let a: Vec<f32> = (0..rank * in_dim).map(|_| rng.gen_range(-bound..bound)).collect();
				let a = Var::from_tensor(&Tensor::from_vec(a, (rank, in_dim), device)?)?;
				let b = Var::zeros((out_dim, rank), DType::F32, device)?;
				layer[p] = Some((a, b));
			}
		}
		Ok(Self { rank, scale, dropout, pairs })
	}

	pub fn vars(&self) -> Vec<Var> {
		self.pairs.iter().flatten().flatten().flat_map(|(a, b)| [a.clone(), b.clone()]).collect()
	}

	/// Number of trainable parameters.
	pub fn count(&self) -> usize {
		self.vars().iter().map(|v| v.elem_count()).sum()
	}

	/// The tensors in PEFT's naming.
	pub fn peft_tensors(&self) -> HashMap<String, Tensor> {
		let mut out = HashMap::new();
		for (l, layer) in self.pairs.iter().enumerate() {
			for (p, pair) in layer.iter().enumerate() {
				if let Some((a, b)) = pair {
					let prefix = format!("base_model.model.{}", projection_name(l, p).trim_end_matches(".weight"));
					out.insert(format!("{prefix}.lora_A.weight"), a.as_tensor().clone());
					out.insert(format!("{prefix}.lora_B.weight"), b.as_tensor().clone());
				}
			}
		}
		out
	}
}

/// Dropout masks drawn from a seeded generator (candle's own dropout draws from an unseeded
/// one, which would make training irreproducible).
pub struct Dropout {
	rng: ChaCha8Rng,
}

impl Dropout {
	pub fn new(seed: u64) -> Self {
		Self { rng: ChaCha8Rng::seed_from_u64(seed) }
	}

	fn apply(&mut self, x: &Tensor, p: f32) -> Result<Tensor> {
		if p <= 0.0 {
			return Ok(x.clone());
		}
		let keep = 1.0 / (1.0 - p);
		let mask: Vec<f32> = (0..x.elem_count()).map(|_| if self.rng.gen::<f32>() < p { 0.0 } else { keep }).collect();
		Ok((x * Tensor::from_vec(mask, x.shape(), x.device())?)?)
	}
}

/// A differentiable view of a model: its weights (by HF name) and optional LoRA pairs.
pub struct Net<'a> {
	pub cfg: &'a LlamaConfig,
	pub weights: &'a HashMap<String, Tensor>,
	pub lora: Option<&'a LoraParams>,
	cos: Tensor,
	sin: Tensor,
}

impl<'a> Net<'a> {
	pub fn new(cfg: &'a LlamaConfig, weights: &'a HashMap<String, Tensor>, lora: Option<&'a LoraParams>, max_len: usize, device: &Device) -> Result<Self> {
		let hd = cfg.head_dim();
		let inv: Vec<f32> = (0..hd / 2).map(|i| 1.0 / (cfg.rope_theta as f32).powf(2.0 * i as f32 / hd as f32)).collect();
		let inv = Tensor::from_vec(inv, (1, hd / 2), device)?;
		let pos = Tensor::arange(0u32, max_len as u32, device)?.to_dtype(DType::F32)?.reshape((max_len, 1))?;
		let freqs = pos.matmul(&inv)?;
		// Full-width tables [T, hd] for the rotate-half form.
		let freqs = Tensor::cat(&[&freqs, &freqs], 1)?;
		Ok(Self { cfg, weights, lora, cos: freqs.cos()?, sin: freqs.sin()? })
	}

	fn w(&self, name: &str) -> Result<&Tensor> {
		self.weights.get(name).ok_or_else(|| anyhow!("the model has no tensor {name}"))
	}

	fn rms_norm(&self, x: &Tensor, name: &str) -> Result<Tensor> {
		let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
		let x = x.broadcast_div(&(ms + self.cfg.rms_norm_eps)?.sqrt()?)?;
		Ok(x.broadcast_mul(self.w(name)?)?)
	}

	/// `x Wᵀ (+ bias) + scale · drop(x) Aᵀ Bᵀ` for projection `proj` of `layer`; `x` is `[N, in]`.
	fn project(&self, layer: usize, proj: usize, x: &Tensor, drop: &mut Option<&mut Dropout>) -> Result<Tensor> {
		let name = projection_name(layer, proj);
		let mut y = x.matmul(&self.w(&name)?.t()?)?;
		if let Some(b) = self.weights.get(&name.replace(".weight", ".bias")) {
			y = y.broadcast_add(b)?;
		}
		if let Some(lora) = self.lora {
			if let Some((a, b)) = &lora.pairs[layer][proj] {
				let xd = match drop {
					Some(d) => d.apply(x, lora.dropout)?,
					None => x.clone(),
				};
				y = (y + (xd.matmul(&a.as_tensor().t()?)?.matmul(&b.as_tensor().t()?)? * lora.scale)?)?;
			}
		}
		Ok(y)
	}

	/// `x` is `[B, H, T, hd]`.
	fn rope(&self, x: &Tensor, t: usize) -> Result<Tensor> {
		let hd = self.cfg.head_dim();
		let cos = self.cos.narrow(0, 0, t)?;
		let sin = self.sin.narrow(0, 0, t)?;
		let x1 = x.narrow(D::Minus1, 0, hd / 2)?;
		let x2 = x.narrow(D::Minus1, hd / 2, hd / 2)?;
		let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
		Ok((x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?)
	}

	/// Logits `[B·T, vocab]` of a right-padded batch `ids [B, T]` (causal attention means padding
	/// after a sequence never affects its tokens). `drop` enables LoRA dropout (training).
	pub fn forward(&self, ids: &Tensor, mut drop: Option<&mut Dropout>) -> Result<Tensor> {
		let (b, t) = ids.dims2()?;
		let cfg = self.cfg;
		let (nh, kvh, hd) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim());
		let n = b * t;
		let mut x = self.w("model.embed_tokens.weight")?.index_select(&ids.flatten_all()?, 0)?; // [N, h]
		let mask: Vec<f32> = (0..t).flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 })).collect();
		let mask = Tensor::from_vec(mask, (t, t), ids.device())?;
		for l in 0..cfg.num_hidden_layers {
			let xn = self.rms_norm(&x, &format!("model.layers.{l}.input_layernorm.weight"))?;
			let q = self.project(l, 0, &xn, &mut drop)?.reshape((b, t, nh, hd))?.transpose(1, 2)?;
			let k = self.project(l, 1, &xn, &mut drop)?.reshape((b, t, kvh, hd))?.transpose(1, 2)?;
			let v = self.project(l, 2, &xn, &mut drop)?.reshape((b, t, kvh, hd))?.transpose(1, 2)?;
			let q = (self.rope(&q.contiguous()?, t)? / (hd as f64).sqrt())?;
			let k = self.rope(&k.contiguous()?, t)?;
			// Grouped-query attention: each kv head serves `rep` query heads.
			let rep = nh / kvh;
			let repeat = |x: Tensor| -> Result<Tensor> {
				Ok(x.unsqueeze(2)?.broadcast_as((b, kvh, rep, t, hd))?.contiguous()?.reshape((b, nh, t, hd))?)
			};
			let (k, v) = (repeat(k)?, repeat(v.contiguous()?)?);
			let scores = q.matmul(&k.t()?.contiguous()?)?.broadcast_add(&mask)?;
			let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
			let o = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((n, nh * hd))?;
			x = (x + self.project(l, 3, &o, &mut drop)?)?;
			let xn = self.rms_norm(&x, &format!("model.layers.{l}.post_attention_layernorm.weight"))?;
			let gate = self.project(l, 4, &xn, &mut drop)?;
			let up = self.project(l, 5, &xn, &mut drop)?;
			let act = (gate.silu()? * up)?;
			x = (x + self.project(l, 6, &act, &mut drop)?)?;
		}
		let x = self.rms_norm(&x, "model.norm.weight")?;
		let head = match self.weights.get("lm_head.weight") {
			Some(w) if !cfg.tie_word_embeddings => w,
			_ => self.w("model.embed_tokens.weight")?,
		};
		Ok(x.matmul(&head.t()?)?)
	}
}

/// Mean next-token cross-entropy over the positions where `mask` is 1. `logits` is
/// `[B·T, V]` for inputs `[B, T]`; `targets` and `mask` are `[B·T]`.
pub fn masked_nll(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
	let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
	let picked = logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
	let total = mask.sum_all()?;
	Ok(((picked * mask)?.sum_all()?.neg()? / total)?)
}

/// Sum of masked NLL and the token count, for evaluation (no graph kept).
pub fn nll_sum(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<(f64, f64)> {
	let logp = candle_nn::ops::log_softmax(&logits.detach(), D::Minus1)?;
	let picked = logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
	let nll = (picked * mask)?.sum_all()?.neg()?.to_scalar::<f32>()? as f64;
	Ok((nll, mask.sum_all()?.to_scalar::<f32>()? as f64))
}
