//! Influence of an adapter's training examples on an output, DataInf-style (Kwon et al., 2023).
//!
//! For a LoRA adapter the parameters are the low-rank pairs, grouped per layer `l`. With `g_kl`
//! the gradient of training window `k`'s loss and `v_l` that of the output's loss (both with
//! respect to layer `l`'s LoRA parameters), the influence of `k` is
//!
//! ```text
//! score_k = Σ_l v_lᵀ (H_l + λ_l I)⁻¹ g_kl,     H_l = (1/n) Σ_i g_il g_ilᵀ
//! ```
//!
//! (positive: training on `k` made the output more likely; it is minus the classic
//! influence on the output's loss). `λ_l = 0.1 · mean_i ‖g_il‖² / d_l` as in DataInf.
//!
//! - [`Method::DataInf`] swaps the inverse of the average for the average of the rank-one
//!   inverses (Sherman–Morrison), a closed form:
//!   `score_k = Σ_l (1/λ_l) [v·g_k − (1/n) Σ_i (v·g_i)(g_i·g_k) / (λ_l + ‖g_i‖²)]`;
//!   with the Gram matrix `g_i·g_k` cached this costs `O(n·d + n²)` per layer and query.
//! - [`Method::Exact`] solves with the true inverse through Woodbury:
//!   `(λI + GᵀG/n)⁻¹ v = (1/λ)[v − Gᵀ (nλI + GGᵀ)⁻¹ G v]` (an `n × n` Cholesky solve).
//! - [`Method::Lissa`] is the stochastic Neumann-series iteration (Agarwal et al.) the
//!   influence literature uses when nothing else scales, for comparison.
//!
//! The training gradients are computed once, when the adapter is trained (its registration),
//! and stored next to it (`influence.safetensors` + `influence.json`).

use super::data::Window;
use super::net::{masked_nll, LoraParams, Net};
use super::train::collate;
use anyhow::{ensure, Context, Result};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

pub const GRADS_FILE: &str = "influence.safetensors";
pub const META_FILE: &str = "influence.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
	DataInf,
	Exact,
	Lissa,
}

/// Gradient of the loss of `windows` (mean over their tokens, or over the masked tokens) with
/// respect to each layer's LoRA parameters, flattened (A then B of each targeted projection).
pub fn layer_grads(net: &Net<'_>, lora: &LoraParams, ids: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Vec<Vec<f32>>> {
	let loss = masked_nll(&net.forward(ids, None)?, targets, mask)?;
	let grads = loss.backward()?;
	let mut out = Vec::with_capacity(lora.pairs.len());
	for layer in &lora.pairs {
		let mut g = Vec::new();
		for (a, b) in layer.iter().flatten() {
			for v in [a, b] {
				let t = grads.get(v.as_tensor()).context("a LoRA parameter got no gradient")?;
				g.extend(t.flatten_all()?.to_vec1::<f32>()?);
			}
		}
		out.push(g);
	}
	Ok(out)
}

/// One layer's cached training gradients.
pub struct LayerCache {
	/// `n × d`, row-major.
	pub grads: Vec<f32>,
	pub d: usize,
	/// `n × n` Gram matrix `g_i · g_k`.
	pub gram: Vec<f64>,
	pub lambda: f64,
}

/// What a window of the training data was.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExampleRef {
	/// Index of the snapshot in the adapter's lineage.
	pub source: usize,
	/// Leaf index of the contribution in that snapshot.
	pub leaf: u32,
}

#[derive(Serialize, Deserialize)]
struct Meta {
	examples: Vec<ExampleRef>,
	dims: Vec<usize>,
	lambdas: Vec<f64>,
}

impl Meta {
	fn bytes(&self) -> usize {
		let n = self.examples.len();
		self.dims
			.iter()
			.map(|d| n.saturating_mul(*d).saturating_mul(4).saturating_add(n.saturating_mul(n).saturating_mul(8)))
			.fold(0usize, usize::saturating_add)
	}
}

/// The training gradients of an adapter, per layer, with what each example was.
pub struct InfluenceCache {
	pub examples: Vec<ExampleRef>,
	pub layers: Vec<LayerCache>,
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
	a.iter().zip(b).map(|(x, y)| (*x as f64) * (*y as f64)).sum()
}

impl InfluenceCache {
	/// Per-window gradients of the training windows.
	pub fn build(net: &Net<'_>, lora: &LoraParams, windows: &[Window], examples: Vec<ExampleRef>, device: &Device) -> Result<Self> {
		ensure!(windows.len() == examples.len() && !windows.is_empty(), "one example reference per window");
		let mut per_layer: Vec<Vec<f32>> = vec![Vec::new(); lora.pairs.len()];
		let mut dims = vec![0; lora.pairs.len()];
		for w in windows {
			let (ids, targets, mask) = collate(&[w], device)?;
			for (l, g) in layer_grads(net, lora, &ids, &targets, &mask)?.into_iter().enumerate() {
				dims[l] = g.len();
				per_layer[l].extend(g);
			}
		}
		let layers = per_layer.into_iter().zip(dims).filter(|(_, d)| *d > 0).map(|(g, d)| Self::layer(g, d)).collect();
		Ok(Self { examples, layers })
	}

	fn layer(grads: Vec<f32>, d: usize) -> LayerCache {
		let n = grads.len() / d;
		let row = |i: usize| &grads[i * d..(i + 1) * d];
		let mut gram = vec![0f64; n * n];
		for i in 0..n {
			for k in i..n {
				let v = dot(row(i), row(k));
				gram[i * n + k] = v;
				gram[k * n + i] = v;
			}
		}
		let mean_sq = (0..n).map(|i| gram[i * n + i]).sum::<f64>() / n as f64;
		let lambda = (0.1 * mean_sq / d as f64).max(1e-12);
		LayerCache { grads, d, gram, lambda }
	}

	pub fn len(&self) -> usize {
		self.examples.len()
	}

	pub fn is_empty(&self) -> bool {
		self.examples.is_empty()
	}

	pub fn save(&self, dir: &Path) -> Result<()> {
		let mut tensors = HashMap::new();
		let n = self.len();
		for (l, c) in self.layers.iter().enumerate() {
			tensors.insert(format!("layer.{l}.grads"), Tensor::from_slice(&c.grads, (n, c.d), &Device::Cpu)?);
		}
		candle_core::safetensors::save(&tensors, dir.join(GRADS_FILE))?;
		let meta = Meta {
			examples: self.examples.clone(),
			dims: self.layers.iter().map(|c| c.d).collect(),
			lambdas: self.layers.iter().map(|c| c.lambda).collect(),
		};
		std::fs::write(dir.join(META_FILE), serde_json::to_vec(&meta)?)?;
		Ok(())
	}

	/// Bytes the cache in `dir` takes once loaded (gradients in f32, Gram matrices in f64),
	/// from its metadata alone; `None` when the adapter folder has no cache.
	pub fn loaded_bytes(dir: &Path) -> Result<Option<usize>> {
		if !dir.join(META_FILE).exists() {
			return Ok(None);
		}
		let meta: Meta = serde_json::from_slice(&std::fs::read(dir.join(META_FILE))?).context("influence.json")?;
		Ok(Some(meta.bytes()))
	}

	/// `None` when the adapter folder has no cache.
	pub fn load(dir: &Path) -> Result<Option<Self>> {
		if !dir.join(META_FILE).exists() {
			return Ok(None);
		}
		let meta: Meta = serde_json::from_slice(&std::fs::read(dir.join(META_FILE))?).context("influence.json")?;
		let tensors = candle_core::safetensors::load(dir.join(GRADS_FILE), &Device::Cpu)?;
		let mut layers = Vec::new();
		for (l, &d) in meta.dims.iter().enumerate() {
			let t = tensors.get(&format!("layer.{l}.grads")).with_context(|| format!("influence cache: layer {l}"))?;
			ensure!(t.dims() == [meta.examples.len(), d], "influence cache: layer {l} has shape {:?}", t.dims());
			layers.push(Self::layer(t.flatten_all()?.to_vec1()?, d));
		}
		Ok(Some(Self { examples: meta.examples, layers }))
	}

	/// Scores of every training example for an output whose per-layer gradient is `v`.
	pub fn scores(&self, v: &[Vec<f32>], method: Method) -> Result<Vec<f64>> {
		ensure!(v.len() == self.layers.len(), "gradient has {} layers, the cache {}", v.len(), self.layers.len());
		let n = self.len();
		let mut total = vec![0f64; n];
		for (c, v) in self.layers.iter().zip(v) {
			ensure!(v.len() == c.d, "layer gradient of {} values, the cache has {}", v.len(), c.d);
			let row = |i: usize| &c.grads[i * c.d..(i + 1) * c.d];
			let a: Vec<f64> = (0..n).map(|i| dot(v, row(i))).collect(); // v·g_i
			let s = match method {
				Method::DataInf => datainf(c, &a),
				Method::Exact => exact(c, &a)?,
				Method::Lissa => lissa(c, v, 0xC0FFEE)?,
			};
			total.iter_mut().zip(s).for_each(|(t, s)| *t += s);
		}
		Ok(total)
	}
}

fn datainf(c: &LayerCache, a: &[f64]) -> Vec<f64> {
	let n = a.len();
	let w: Vec<f64> = (0..n).map(|i| a[i] / (c.lambda + c.gram[i * n + i])).collect();
	(0..n)
		.map(|k| {
			let corr: f64 = (0..n).map(|i| w[i] * c.gram[i * n + k]).sum::<f64>() / n as f64;
			(a[k] - corr) / c.lambda
		})
		.collect()
}

/// `score_k = g_k · x`, `x = (λI + GᵀG/n)⁻¹ v` by Woodbury: with `y = (nλI + GGᵀ)⁻¹ (G v)`,
/// `g_k·x = (1/λ)(a_k − (GGᵀ y)_k)`.
fn exact(c: &LayerCache, a: &[f64]) -> Result<Vec<f64>> {
	let n = a.len();
	let mut m = c.gram.clone();
	for i in 0..n {
		m[i * n + i] += n as f64 * c.lambda;
	}
	let y = cholesky_solve(&mut m, n, a)?;
	Ok((0..n)
		.map(|k| {
			let gy: f64 = (0..n).map(|i| c.gram[k * n + i] * y[i]).sum();
			(a[k] - gy) / c.lambda
		})
		.collect())
}

/// LiSSA: `x_{t+1} = v + (I − (H_B + λI)/s) x_t` over random mini-batches `B` of the training
/// gradients; `x_T / s ≈ (H + λI)⁻¹ v`. `s` bounds the largest eigenvalue (trace bound).
pub const LISSA_DEPTH: usize = 200;
pub const LISSA_BATCH: usize = 8;

fn lissa(c: &LayerCache, v: &[f32], seed: u64) -> Result<Vec<f64>> {
	let n = c.gram.len().isqrt();
	let row = |i: usize| &c.grads[i * c.d..(i + 1) * c.d];
	let s = c.lambda + (0..n).map(|i| c.gram[i * n + i]).fold(0.0, f64::max) * 1.05;
	let v: Vec<f64> = v.iter().map(|x| *x as f64).collect();
	let mut x = v.clone();
	let mut rng = ChaCha8Rng::seed_from_u64(seed);
	let b = LISSA_BATCH.min(n);
	for _ in 0..LISSA_DEPTH {
		let mut hx = vec![0f64; c.d];
		for _ in 0..b {
			let i = rng.gen_range(0..n);
			let g = row(i);
			let gx: f64 = g.iter().zip(&x).map(|(g, x)| *g as f64 * x).sum();
			hx.iter_mut().zip(g).for_each(|(h, g)| *h += gx * *g as f64 / b as f64);
		}
		for j in 0..c.d {
			x[j] = v[j] + x[j] - (hx[j] + c.lambda * x[j]) / s;
		}
	}
	Ok((0..n).map(|k| row(k).iter().zip(&x).map(|(g, x)| *g as f64 * x).sum::<f64>() / s).collect())
}

/// Solves `M y = b` for symmetric positive definite `M` (`n × n`, overwritten by its factor).
fn cholesky_solve(m: &mut [f64], n: usize, b: &[f64]) -> Result<Vec<f64>> {
	for j in 0..n {
		let mut d = m[j * n + j];
		for k in 0..j {
			d -= m[j * n + k] * m[j * n + k];
		}
		ensure!(d > 0.0, "matrix is not positive definite");
		let d = d.sqrt();
		m[j * n + j] = d;
		for i in j + 1..n {
			let mut s = m[i * n + j];
			for k in 0..j {
				s -= m[i * n + k] * m[j * n + k];
			}
			m[i * n + j] = s / d;
		}
	}
	let mut y = b.to_vec();
	for i in 0..n {
		for k in 0..i {
			y[i] -= m[i * n + k] * y[k];
		}
		y[i] /= m[i * n + i];
	}
	for i in (0..n).rev() {
		for k in i + 1..n {
			y[i] -= m[k * n + i] * y[k];
		}
		y[i] /= m[i * n + i];
	}
	Ok(y)
}

/// Pearson correlation.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
	let n = a.len() as f64;
	let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
	let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
	let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
	let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
	cov / (va.sqrt() * vb.sqrt()).max(1e-300)
}

/// Spearman rank correlation (ties get their average rank).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
	fn ranks(x: &[f64]) -> Vec<f64> {
		let mut idx: Vec<usize> = (0..x.len()).collect();
		idx.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
		let mut r = vec![0.0; x.len()];
		let mut i = 0;
		while i < idx.len() {
			let mut j = i;
			while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
				j += 1;
			}
			for &k in &idx[i..=j] {
				r[k] = (i + j) as f64 / 2.0;
			}
			i = j + 1;
		}
		r
	}
	pearson(&ranks(a), &ranks(b))
}

#[cfg(test)]
mod tests {
	use super::*;

	fn cache(n: usize, d: usize, seed: u64) -> LayerCache {
		let mut rng = ChaCha8Rng::seed_from_u64(seed);
		InfluenceCache::layer((0..n * d).map(|_| rng.gen_range(-1.0..1.0)).collect(), d)
	}

	/// The Woodbury solve equals a dense solve of `(λI + GᵀG/n) x = v`.
	#[test]
	fn exact_matches_a_dense_inverse() {
		let (n, d) = (6, 5);
		let c = cache(n, d, 1);
		let v: Vec<f32> = (0..d).map(|i| i as f32 * 0.3 - 0.5).collect();
		let a: Vec<f64> = (0..n).map(|i| dot(&v, &c.grads[i * d..(i + 1) * d])).collect();
		let ours = exact(&c, &a).unwrap();
		let mut h = vec![0f64; d * d];
		for i in 0..n {
			let g = &c.grads[i * d..(i + 1) * d];
			for p in 0..d {
				for q in 0..d {
					h[p * d + q] += g[p] as f64 * g[q] as f64 / n as f64;
				}
			}
		}
		for p in 0..d {
			h[p * d + p] += c.lambda;
		}
		let x = cholesky_solve(&mut h, d, &v.iter().map(|x| *x as f64).collect::<Vec<_>>()).unwrap();
		for k in 0..n {
			let want: f64 = c.grads[k * d..(k + 1) * d].iter().zip(&x).map(|(g, x)| *g as f64 * x).sum();
			assert!((ours[k] - want).abs() < 1e-6 * want.abs().max(1.0), "{k}: {} vs {want}", ours[k]);
		}
	}

	/// High-dimensional, nearly orthogonal gradients (the LoRA regime): DataInf tracks exact;
	/// LiSSA converges to it.
	#[test]
	fn datainf_and_lissa_track_exact() {
		let (n, d) = (20, 400);
		let c = cache(n, d, 2);
		let mut rng = ChaCha8Rng::seed_from_u64(3);
		let v: Vec<f32> = (0..d).map(|_| rng.gen_range(-1.0..1.0)).collect();
		let a: Vec<f64> = (0..n).map(|i| dot(&v, &c.grads[i * d..(i + 1) * d])).collect();
		let e = exact(&c, &a).unwrap();
		let di = datainf(&c, &a);
		let li = lissa(&c, &v, 1).unwrap();
		assert!(pearson(&e, &di) > 0.9, "DataInf vs exact: {}", pearson(&e, &di));
		assert!(pearson(&e, &li) > 0.9, "LiSSA vs exact: {}", pearson(&e, &li));
	}

	#[test]
	fn correlations() {
		assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
		assert!((spearman(&[1.0, 2.0, 3.0], &[1.0, 10.0, 100.0]) - 1.0).abs() < 1e-12);
		assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
	}
}
