//! Attention of one query position per row straight over the block pool on the CPU: the keys and values
//! are read where their blocks lie (no gather into a contiguous copy first), each once for all
//! the query heads that share its kv head, with the scores and the softmax in f32.
//!
//! A decode row's attention reads every cached position once; gathering them first (what a
//! prefill chunk does, to use the general matmul over many queries) would read and write them
//! once more, which at 4,096 positions cost a fifth of the decode step.

use super::gemv::{lanes_dot, Values};
use candle_core::{CpuStorage, Device, Storage, Tensor};
use rayon::prelude::*;

/// `softmax(q Kᵀ) V` for one query position of each of several rows, all at once (one parallel
/// pass over every row's every kv head): `q` is `rows × [heads · head_dim]` (rotated and
/// scaled), `k` and `v` are pool buffers `[kv_heads, slots, head_dim]` on the CPU, `slots[r]`
/// row `r`'s slots for its positions `0‥len`. Query head `h · rep + i` uses kv head `h` (`rep
/// = heads / kv_heads`). Returns `rows × [heads · head_dim]` in f32; `None` where this path does
/// not apply (another device, dtype or layout).
pub fn attend_decode(q: &[f32], k: &Tensor, v: &Tensor, slots: &[&[u32]], heads: usize) -> candle_core::Result<Option<Vec<f32>>> {
	let (kvh, total, hd) = k.dims3()?;
	if !matches!(k.device(), Device::Cpu) ||
		v.dims3()? != (kvh, total, hd) ||
		heads % kvh != 0 ||
		q.len() != slots.len() * heads * hd ||
		slots.iter().any(|s| s.is_empty())
	{
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
	if slots.iter().flat_map(|s| s.iter()).any(|&s| s as usize >= total) {
		candle_core::bail!("a slot outside the pool of {total}");
	}
	let mut out = vec![0f32; q.len()];
	// One task per (row, kv head): its `rep` query heads' outputs.
	out.par_chunks_mut(rep * hd).zip(q.par_chunks(rep * hd)).enumerate().for_each(|(c, (o, q))| {
		let (row, h) = (c / kvh, c % kvh);
		let head = Head { q, k: &kb, v: &vb, slots: slots[row], base: h * total, hd, rep };
		#[cfg(target_arch = "x86_64")]
		if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
			// Safety: the features were detected at run time.
			return unsafe { head.attend_avx2(o) };
		}
		head.attend(o)
	});
	Ok(Some(out))
}

/// One kv head of one row: its query heads, the pool's keys and values, the row's slots.
struct Head<'a> {
	/// `rep` query heads, `hd` each.
	q: &'a [f32],
	k: &'a Values<'a>,
	v: &'a Values<'a>,
	slots: &'a [u32],
	/// Slot 0 of this kv head in the pool buffers (in positions).
	base: usize,
	hd: usize,
	rep: usize,
}

impl Head<'_> {
	/// [`Self::attend`] compiled for AVX2 + FMA (its plain loops vectorize to them).
	#[cfg(target_arch = "x86_64")]
	#[target_feature(enable = "avx2,fma")]
	unsafe fn attend_avx2(&self, o: &mut [f32]) {
		self.attend(o)
	}

	/// Scores and softmax in f32, then the probability-weighted sum of values into `o`
	/// (`[rep · hd]`, zeroed). Keys and values are read where they lie, each once for the `rep`
	/// query heads, a run of up to [`RUN`] consecutive slots at a time: half-precision ones are
	/// widened a run at a time (into a scratch that stays in L1), not a position at a time.
	#[inline(always)]
	fn attend(&self, o: &mut [f32]) {
		let (hd, rep, len) = (self.hd, self.rep, self.slots.len());
		let mut scratch = Vec::new();
		let mut scores = vec![0f32; rep * len];
		for (j0, run) in runs(self.slots) {
			let i = self.base + self.slots[j0] as usize;
			let keys = self.k.f32_range(i * hd..(i + run) * hd, &mut scratch);
			for (jj, key) in keys.chunks_exact(hd).enumerate() {
				for r in 0..rep {
					scores[r * len + j0 + jj] = lanes_dot(&self.q[r * hd..(r + 1) * hd], key);
				}
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
		for (j0, run) in runs(self.slots) {
			let i = self.base + self.slots[j0] as usize;
			let vals = self.v.f32_range(i * hd..(i + run) * hd, &mut scratch);
			for (jj, val) in vals.chunks_exact(hd).enumerate() {
				for r in 0..rep {
					let p = scores[r * len + j0 + jj];
					for (y, x) in o[r * hd..(r + 1) * hd].iter_mut().zip(val) {
						*y += p * x;
					}
				}
			}
		}
	}
}

/// Most positions of one run (64 × a 128-wide head in f32: 32 KiB).
const RUN: usize = 64;

/// `(first index, length)` of each run of consecutive values in `slots`, at most [`RUN`] long.
fn runs(slots: &[u32]) -> impl Iterator<Item = (usize, usize)> + '_ {
	let mut j = 0;
	std::iter::from_fn(move || {
		if j >= slots.len() {
			return None;
		}
		let j0 = j;
		j += 1;
		while j < slots.len() && j - j0 < RUN && slots[j - 1].checked_add(1) == Some(slots[j]) {
			j += 1;
		}
		Some((j0, j - j0))
	})
}

#[cfg(test)]
mod tests {
	use super::*;
	use candle_core::{DType, IndexOp};

	#[test]
	fn runs_split_at_gaps_and_at_the_cap() {
		let long: Vec<u32> = (10..10 + RUN as u32 + 5).collect();
		assert_eq!(runs(&long).collect::<Vec<_>>(), vec![(0, RUN), (RUN, 5)]);
		assert_eq!(runs(&[3, 4, 9, u32::MAX, 0, 1]).collect::<Vec<_>>(), vec![(0, 2), (2, 1), (3, 1), (4, 2)]);
		assert_eq!(runs(&[]).count(), 0);
	}

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
			// Three rows: the slots above, a prefix of them, one position; each row's query a
			// multiple of the first.
			let rows: [&[u32]; 3] = [&slots, &slots[..4], &slots[8..]];
			let qs: Vec<f32> = [1.0f32, -2.0, 0.5].iter().flat_map(|m| q.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(move |x| x * m)).collect();
			let all = attend_decode(&qs, &kd, &vd, &rows, heads).unwrap().expect("the CPU path");
			assert_eq!(all.len(), 3 * heads * hd);
			for (r, (row, m)) in rows.iter().zip([1.0f32, -2.0, 0.5]).enumerate() {
				let got = &all[r * heads * hd..(r + 1) * heads * hd];
				let idx = Tensor::new(*row, &dev).unwrap();
				let (kg, vg) = (kd.to_dtype(DType::F32).unwrap().index_select(&idx, 1).unwrap(), vd.to_dtype(DType::F32).unwrap().index_select(&idx, 1).unwrap());
				for n in 0..heads {
					let h = n / (heads / kvh);
					let s = (q.i(n).unwrap().unsqueeze(0).unwrap() * m as f64).unwrap().matmul(&kg.i(h).unwrap().t().unwrap()).unwrap();
					let p = candle_nn::ops::softmax_last_dim(&s).unwrap();
					let want: Vec<f32> = p.matmul(&vg.i(h).unwrap()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
					for (a, b) in got[n * hd..(n + 1) * hd].iter().zip(&want) {
						assert!((a - b).abs() < 1e-4, "{dtype:?} row {r} head {n}: {a} vs {b}");
					}
				}
			}
		}
		let q1: Vec<f32> = q.flatten_all().unwrap().to_vec1().unwrap();
		assert!(attend_decode(&q1, &k, &v, &[&[40]], heads).is_err(), "a slot past the pool");
		assert!(attend_decode(&q1[..31], &k, &v, &[&[1]], heads).unwrap().is_none(), "a query of the wrong size");
		assert!(attend_decode(&q1, &k, &v, &[&[1], &[2]], heads).unwrap().is_none(), "one query for two rows");
	}
}
