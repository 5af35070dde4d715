//! Attention of one query position straight over the block pool on the CPU: the keys and values
//! are read where their blocks lie (no gather into a contiguous copy first), each once for all
//! the query heads that share its kv head, with the scores and the softmax in f32.
//!
//! A decode row's attention reads every cached position once; gathering them first (what a
//! prefill chunk does, to use the general matmul over many queries) would read and write them
//! once more, which at 4,096 positions cost a fifth of the decode step.

use super::gemv::{dot, Values};
use candle_core::{CpuStorage, Device, Storage, Tensor};
use rayon::prelude::*;

/// `softmax(q Kᵀ) V` for one query position: `q` is `[heads · head_dim]` (rotated and scaled),
/// `k` and `v` are pool buffers `[kv_heads, slots, head_dim]` on the CPU, `slots` the row's
/// slots for positions `0‥len`. Query head `h · rep + r` uses kv head `h` (`rep = heads /
/// kv_heads`). Returns `[heads · head_dim]` in f32; `None` where this path does not apply
/// (another device, dtype or layout).
pub fn attend_one(q: &[f32], k: &Tensor, v: &Tensor, slots: &[u32], heads: usize) -> candle_core::Result<Option<Vec<f32>>> {
	let (kvh, total, hd) = k.dims3()?;
	if !matches!(k.device(), Device::Cpu) || v.dims3()? != (kvh, total, hd) || heads % kvh != 0 || q.len() != heads * hd || slots.is_empty() {
		return Ok(None);
	}
	let rep = heads / kvh;
	let (ks, kl) = k.storage_and_layout();
	let (vs, vl) = v.storage_and_layout();
	let (Storage::Cpu(kc), Storage::Cpu(vc)) = (&*ks, &*vs) else { return Ok(None) };
	let (Some((k0, k1)), Some((v0, v1))) = (kl.contiguous_offsets(), vl.contiguous_offsets()) else { return Ok(None) };
	let (kb, vb) = match (kc, vc) {
		(CpuStorage::F32(a), CpuStorage::F32(b)) => (Values::F32(&a[k0..k1]), Values::F32(&b[v0..v1])),
		(CpuStorage::F16(a), CpuStorage::F16(b)) => (Values::F16(&a[k0..k1]), Values::F16(&b[v0..v1])),
		(CpuStorage::BF16(a), CpuStorage::BF16(b)) => (Values::Bf16(&a[k0..k1]), Values::Bf16(&b[v0..v1])),
		_ => return Ok(None),
	};
	if slots.iter().any(|&s| s as usize >= total) {
		candle_core::bail!("a slot outside the pool of {total}");
	}
	let len = slots.len();
	let mut out = vec![0f32; heads * hd];
	out.par_chunks_mut(rep * hd).enumerate().for_each(|(h, o)| {
		let mut scratch = Vec::with_capacity(hd);
		let q = &q[h * rep * hd..(h + 1) * rep * hd];
		// Scores of every query head of this kv head, [rep, len].
		let mut scores = vec![0f32; rep * len];
		for (j, &s) in slots.iter().enumerate() {
			let i = h * total + s as usize;
			let key = kb.f32_range(i * hd..(i + 1) * hd, &mut scratch);
			for r in 0..rep {
				scores[r * len + j] = dot(&q[r * hd..(r + 1) * hd], key);
			}
		}
		for p in scores.chunks_mut(len) {
			let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
			let mut sum = 0f32;
			for x in p.iter_mut() {
				*x = (*x - max).exp();
				sum += *x;
			}
			let inv = 1.0 / sum;
			p.iter_mut().for_each(|x| *x *= inv);
		}
		for (j, &s) in slots.iter().enumerate() {
			let i = h * total + s as usize;
			let val = vb.f32_range(i * hd..(i + 1) * hd, &mut scratch);
			for r in 0..rep {
				let p = scores[r * len + j];
				for (y, x) in o[r * hd..(r + 1) * hd].iter_mut().zip(val) {
					*y += p * x;
				}
			}
		}
	});
	Ok(Some(out))
}

#[cfg(test)]
mod tests {
	use super::*;
	use candle_core::{DType, IndexOp};

	/// Against the plain formula over a gathered copy, in f32 and both half types, with two
	/// query heads per kv head and slots in no particular order.
	#[test]
	fn matches_softmax_attention_over_the_gathered_positions() {
		let dev = Device::Cpu;
		let (kvh, total, hd, heads) = (2, 40, 8, 4);
		let k = Tensor::randn(0f32, 1.0, (kvh, total, hd), &dev).unwrap();
		let v = Tensor::randn(0f32, 1.0, (kvh, total, hd), &dev).unwrap();
		let q = Tensor::randn(0f32, 0.5, (heads, hd), &dev).unwrap();
		let slots: Vec<u32> = vec![17, 3, 4, 5, 30, 31, 0, 12, 39];
		for dtype in [DType::F32, DType::F16, DType::BF16] {
			let (kd, vd) = (k.to_dtype(dtype).unwrap(), v.to_dtype(dtype).unwrap());
			let got = attend_one(&q.flatten_all().unwrap().to_vec1().unwrap(), &kd, &vd, &slots, heads).unwrap().expect("the CPU path");
			let idx = Tensor::new(slots.as_slice(), &dev).unwrap();
			let (kg, vg) = (kd.to_dtype(DType::F32).unwrap().index_select(&idx, 1).unwrap(), vd.to_dtype(DType::F32).unwrap().index_select(&idx, 1).unwrap());
			for n in 0..heads {
				let h = n / (heads / kvh);
				let s = q.i(n).unwrap().unsqueeze(0).unwrap().matmul(&kg.i(h).unwrap().t().unwrap()).unwrap();
				let p = candle_nn::ops::softmax_last_dim(&s).unwrap();
				let want: Vec<f32> = p.matmul(&vg.i(h).unwrap()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
				for (a, b) in got[n * hd..(n + 1) * hd].iter().zip(&want) {
					assert!((a - b).abs() < 1e-4, "{dtype:?} head {n}: {a} vs {b}");
				}
			}
		}
		assert!(attend_one(&[0.0; 32], &k, &v, &[40], heads).is_err(), "a slot past the pool");
		assert!(attend_one(&[0.0; 31], &k, &v, &[1], heads).unwrap().is_none(), "a query of the wrong size");
	}
}
