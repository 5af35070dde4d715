//! Matrix × few vectors on the CPU: `y = x Wᵀ` for the handful of token rows of a decode step.
//!
//! A decode step multiplies every weight matrix by one row per sequence. General matrix
//! multiplication kernels are built for many rows; with one to a few rows the step is a stream
//! through the weights, and what counts is reading them once at memory speed. Here each output
//! row's weights are read once (converted from f16/bf16 to f32 in registers) and dotted with
//! every token row, on all cores, with AVX2 + FMA (+ F16C) where the CPU has them (checked at
//! run time) and a portable loop otherwise.

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use rayon::prelude::*;

/// Token rows up to which [`matmul_t`] is used instead of the general matmul: with f32 weights
/// the general kernel wins past 8 rows; with f16/bf16 ones (which it handles slowly on CPUs)
/// only past 32 (`tests/worker/yardstick_llamacpp.py`, 2-core dev machine).
pub const MAX_ROWS: usize = 32;
const MAX_ROWS_F32: usize = 8;

/// Output rows of `W` per parallel task.
const CHUNK: usize = 32;

/// A CPU tensor's values in their storage dtype (a weight matrix, the KV pool).
pub(crate) enum Values<'a> {
	F32(&'a [f32]),
	F16(&'a [half::f16]),
	Bf16(&'a [half::bf16]),
}

impl Values<'_> {
	pub(crate) fn len(&self) -> usize {
		match self {
			Values::F32(v) => v.len(),
			Values::F16(v) => v.len(),
			Values::Bf16(v) => v.len(),
		}
	}

	/// Elements `r` as f32: borrowed for f32 weights, else widened into `scratch`.
	pub(crate) fn f32_range<'s>(&'s self, r: std::ops::Range<usize>, scratch: &'s mut Vec<f32>) -> &'s [f32] {
		match self {
			Values::F32(v) => &v[r],
			Values::F16(v) => {
				scratch.resize(r.len(), 0.0);
				f16_to_f32(&v[r], scratch);
				scratch
			},
			Values::Bf16(v) => {
				scratch.resize(r.len(), 0.0);
				for (d, s) in scratch.iter_mut().zip(&v[r]) {
					*d = s.to_f32();
				}
				scratch
			},
		}
	}
}

/// Which CPU kernel computes `x Wᵀ` (the benches compare them; the model uses `Auto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
	/// The tiled AVX-512 kernel where the CPU has it, else this module's few-rows kernel for few
	/// rows, else none (the general matmul).
	Auto,
	/// This module's kernel (each weight row read once, dotted with every token row).
	Rows,
	/// [`super::gemm`]'s register-tiled kernel.
	Tiled,
}

/// Whether this CPU has the instructions the kernel needs to beat the general matmul: AVX2 +
/// FMA (+ F16C for half weights) on x86-64; always on aarch64 (FMA is part of the base ISA).
fn fast(half: bool) -> bool {
	#[cfg(target_arch = "x86_64")]
	{
		std::arch::is_x86_feature_detected!("avx2") &&
			std::arch::is_x86_feature_detected!("fma") &&
			(!half || std::arch::is_x86_feature_detected!("f16c"))
	}
	#[cfg(target_arch = "aarch64")]
	{
		let _ = half;
		true
	}
	#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
	{
		let _ = half;
		false
	}
}

/// `x Wᵀ` for `x: [n, in]` and `w: [out, in]` on the CPU, in `x`'s dtype (f32 with `f32_out`,
/// e.g. logits): where the CPU has AVX-512, up to [`super::gemm::max_rows`] rows through the
/// tiled kernel; elsewhere few rows (n ≤ [`MAX_ROWS`], ≤ 8 for f32 weights) through this
/// module's kernel; `None` otherwise (more rows, other device, dtype or layout, or a CPU without
/// the instructions): use the general matmul, which is faster for a prefill's many rows.
pub fn matmul_t(x: &Tensor, w: &Tensor, f32_out: bool) -> candle_core::Result<Option<Tensor>> {
	matmul_t_with(x, w, f32_out, Kernel::Auto)
}

/// [`matmul_t`] with the kernel chosen (`None` where that kernel does not apply).
pub fn matmul_t_with(x: &Tensor, w: &Tensor, f32_out: bool, kernel: Kernel) -> candle_core::Result<Option<Tensor>> {
	let (n, din) = x.dims2()?;
	let (dout, win) = w.dims2()?;
	if din != win || !matches!(w.device(), Device::Cpu) {
		return Ok(None);
	}
	let tiled = match kernel {
		Kernel::Auto if super::gemm::available() => {
			if n > super::gemm::max_rows(w.dtype()) {
				return Ok(None);
			}
			true
		},
		Kernel::Auto => false,
		Kernel::Rows => false,
		Kernel::Tiled => true,
	};
	let max_rows = if w.dtype() == DType::F32 { MAX_ROWS_F32 } else { MAX_ROWS };
	if !tiled && (n == 0 || n > max_rows || !fast(w.dtype() != DType::F32)) {
		return Ok(None);
	}
	let xs: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
	let (storage, layout) = w.storage_and_layout();
	let Storage::Cpu(cpu) = &*storage else { return Ok(None) };
	let Some((start, end)) = layout.contiguous_offsets() else { return Ok(None) };
	let weights = match cpu {
		CpuStorage::F32(v) => Values::F32(&v[start..end]),
		CpuStorage::F16(v) => Values::F16(&v[start..end]),
		CpuStorage::BF16(v) => Values::Bf16(&v[start..end]),
		_ => return Ok(None),
	};
	if tiled {
		let Some(out) = super::gemm::matmul_nt(&xs, n, din, &weights, dout) else { return Ok(None) };
		let y = Tensor::from_vec(out, (n, dout), &Device::Cpu)?;
		return Ok(Some(if f32_out { y } else { y.to_dtype(x.dtype())? }));
	}
	// Output as [out, n] (each task writes whole output rows), transposed at the end.
	let mut out = vec![0f32; dout * n];
	out.par_chunks_mut(CHUNK * n).enumerate().for_each(|(c, dst)| {
		// Scratch for one converted half-precision row (unused for f32 weights).
		let mut row = Vec::new();
		for (k, o) in dst.chunks_mut(n).enumerate() {
			let r = c * CHUNK + k;
			let wrow = weights.f32_range(r * din..(r + 1) * din, &mut row);
			for (i, y) in o.iter_mut().enumerate() {
				*y = dot(wrow, &xs[i * din..(i + 1) * din]);
			}
		}
	});
	let y = Tensor::from_vec(out, (dout, n), &Device::Cpu)?.t()?.contiguous()?;
	Ok(Some(if f32_out { y } else { y.to_dtype(x.dtype())? }))
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
	#[cfg(target_arch = "x86_64")]
	if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
		// Safety: the features were detected at run time.
		return unsafe { dot_avx2(a, b) };
	}
	dot_portable(a, b)
}

fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
	// Independent lanes, so the compiler may vectorize without reassociating one sum.
	let mut acc = [0f32; 8];
	let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
	let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
	for (x, y) in ca.zip(cb) {
		for l in 0..8 {
			acc[l] += x[l] * y[l];
		}
	}
	acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
	use std::arch::x86_64::*;
	let n = a.len().min(b.len());
	let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
	let mut i = 0;
	while i + 16 <= n {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i)), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(i + 8)), _mm256_loadu_ps(b.as_ptr().add(i + 8)), s1);
		i += 16;
	}
	let s = _mm256_add_ps(s0, s1);
	let mut lanes = [0f32; 8];
	_mm256_storeu_ps(lanes.as_mut_ptr(), s);
	let mut sum: f32 = lanes.iter().sum();
	while i < n {
		sum += a[i] * b[i];
		i += 1;
	}
	sum
}

pub(crate) fn f16_to_f32(src: &[half::f16], dst: &mut [f32]) {
	#[cfg(target_arch = "x86_64")]
	if std::arch::is_x86_feature_detected!("f16c") && std::arch::is_x86_feature_detected!("avx") {
		// Safety: the features were detected at run time.
		unsafe { f16_to_f32_f16c(src, dst) };
		return;
	}
	for (d, s) in dst.iter_mut().zip(src) {
		*d = s.to_f32();
	}
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
unsafe fn f16_to_f32_f16c(src: &[half::f16], dst: &mut [f32]) {
	use std::arch::x86_64::*;
	let n = src.len().min(dst.len());
	let mut i = 0;
	while i + 8 <= n {
		let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
		_mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
		i += 8;
	}
	while i < n {
		dst[i] = src[i].to_f32();
		i += 1;
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	/// `x Wᵀ` through candle's general matmul in f32, and the largest |Δ| of `got` from it
	/// relative to the result's scale.
	fn off_general(x: &Tensor, w: &Tensor, got: &Tensor) -> f32 {
		let want = x.to_dtype(DType::F32).unwrap().matmul(&w.to_dtype(DType::F32).unwrap().t().unwrap()).unwrap();
		let d: f32 = (got.to_dtype(DType::F32).unwrap() - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
		let scale: f32 = want.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
		d / scale.max(1.0)
	}

	/// Every dtype, 1 to MAX_ROWS rows, sizes with tails: the same as candle's matmul (within the
	/// dtype's rounding), and `None` beyond MAX_ROWS.
	#[test]
	fn equals_the_general_matmul() {
		let dev = Device::Cpu;
		for dtype in [DType::F32, DType::F16, DType::BF16] {
			for (n, din, dout) in [(1, 64, 70), (3, 1000, 33), (8, 37, 129), (32, 100, 40)] {
				if dtype == DType::F32 && n > MAX_ROWS_F32 {
					continue;
				}
				let x = Tensor::randn(0f32, 1.0, (n, din), &dev).unwrap().to_dtype(dtype).unwrap();
				// The weight at a non-zero offset of its storage (rows 2.. of a larger matrix).
				let big = Tensor::randn(0f32, 1.0, (dout + 2, din), &dev).unwrap().to_dtype(dtype).unwrap();
				let w = big.narrow(0, 2, dout).unwrap();
				let got = matmul_t_with(&x, &w, false, Kernel::Rows).unwrap().expect("applies");
				assert_eq!(matmul_t_with(&x, &w, true, Kernel::Rows).unwrap().unwrap().dtype(), DType::F32);
				assert_eq!(got.dims(), &[n, dout]);
				assert_eq!(got.dtype(), dtype);
				let tol = if dtype == DType::F32 { 1e-4 } else { 1e-2 };
				let d = off_general(&x, &w, &got);
				assert!(d <= tol, "{dtype:?} {n}×{din}×{dout}: relative |Δ| {d}");
			}
		}
		let x = Tensor::zeros((MAX_ROWS_F32 + 1, 8), DType::F32, &dev).unwrap();
		let w = Tensor::zeros((4, 8), DType::F32, &dev).unwrap();
		assert!(matmul_t_with(&x, &w, false, Kernel::Rows).unwrap().is_none());
		let x = Tensor::zeros((MAX_ROWS + 1, 8), DType::F16, &dev).unwrap();
		assert!(matmul_t_with(&x, &w.to_dtype(DType::F16).unwrap(), false, Kernel::Rows).unwrap().is_none());
		// A transposed (non-contiguous) weight is left to the general matmul, by every kernel.
		let wt = Tensor::zeros((8, 4), DType::F32, &dev).unwrap().t().unwrap();
		for k in [Kernel::Auto, Kernel::Rows, Kernel::Tiled] {
			assert!(matmul_t_with(&Tensor::zeros((1, 8), DType::F32, &dev).unwrap(), &wt, false, k).unwrap().is_none());
		}
		assert_eq!(dot_portable(&[1.0; 19], &[2.0; 19]), 38.0);
	}

	/// The tiled kernel (where the CPU has AVX-512): few and many rows (a prefill), every dtype,
	/// a weight at an offset of its storage, f32 and input-dtype outputs; `matmul_t` takes it up
	/// to its row limit only.
	#[test]
	fn tiled_equals_the_general_matmul() {
		if !crate::model::gemm::available() {
			eprintln!("no AVX-512 on this CPU: the tiled kernel is not used here");
			assert!(matmul_t_with(&Tensor::zeros((1, 8), DType::F32, &Device::Cpu).unwrap(), &Tensor::zeros((2, 8), DType::F32, &Device::Cpu).unwrap(), false, Kernel::Tiled)
				.unwrap()
				.is_none());
			return;
		}
		let dev = Device::Cpu;
		for dtype in [DType::F32, DType::F16, DType::BF16] {
			for (n, din, dout) in [(1, 100, 30), (2, 64, 9), (9, 64, 70), (130, 300, 47), (512, 128, 257)] {
				let x = Tensor::randn(0f32, 1.0, (n, din), &dev).unwrap().to_dtype(dtype).unwrap();
				let big = Tensor::randn(0f32, 1.0, (dout + 3, din), &dev).unwrap().to_dtype(dtype).unwrap();
				let w = big.narrow(0, 3, dout).unwrap();
				let got = matmul_t_with(&x, &w, false, Kernel::Tiled).unwrap().expect("AVX-512 is here");
				assert_eq!((got.dims(), got.dtype()), (&[n, dout][..], dtype));
				let logits = matmul_t_with(&x, &w, true, Kernel::Tiled).unwrap().unwrap();
				// The model's choice: this kernel up to its row limit, the general matmul past it.
				let auto = matmul_t(&x, &w, false).unwrap();
				assert_eq!(auto.is_some(), n <= crate::model::gemm::max_rows(dtype), "{dtype:?}, {n} rows");
				assert_eq!(logits.dtype(), DType::F32);
				let tol = if dtype == DType::F32 { 1e-5 } else { 1e-2 };
				for y in [&got, &logits] {
					let d = off_general(&x, &w, y);
					assert!(d <= tol, "{dtype:?} {n}×{din}×{dout}: relative |Δ| {d}");
				}
			}
		}
	}
}
