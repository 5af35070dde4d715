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
				bf16_to_f32(&v[r], scratch);
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
	lanes_dot(a, b)
}

/// `a · b` in 16 independent lanes, so the compiler vectorizes it without reassociating one sum,
/// to whatever its caller's instruction set is (it is inlined into functions compiled for AVX2
/// or AVX-512 by `#[target_feature]`).
#[inline(always)]
pub(crate) fn lanes_dot(a: &[f32], b: &[f32]) -> f32 {
	let mut acc = [0f32; 16];
	let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
	let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
	for (x, y) in ca.zip(cb) {
		for l in 0..16 {
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
	if std::arch::is_x86_feature_detected!("avx512f") {
		// Safety: the feature was detected at run time.
		unsafe { f16_to_f32_avx512(src, dst) };
		return;
	}
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

/// 16 values per instruction, four at a time (decode attention widens every half key and
/// value it reads through this).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn f16_to_f32_avx512(src: &[half::f16], dst: &mut [f32]) {
	use std::arch::x86_64::*;
	let n = src.len().min(dst.len());
	let (s, d) = (src.as_ptr() as *const __m256i, dst.as_mut_ptr());
	let mut i = 0;
	while i + 64 <= n {
		for u in 0..4 {
			_mm512_storeu_ps(d.add(i + 16 * u), _mm512_cvtph_ps(_mm256_loadu_si256(s.add(i / 16 + u))));
		}
		i += 64;
	}
	while i + 16 <= n {
		_mm512_storeu_ps(d.add(i), _mm512_cvtph_ps(_mm256_loadu_si256(s.add(i / 16))));
		i += 16;
	}
	while i < n {
		dst[i] = src[i].to_f32();
		i += 1;
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

/// `x` in `dtype`. Between f32 and f16/bf16 for a contiguous CPU tensor, converted with vector
/// instructions (candle's CPU conversion calls a scalar conversion per element, which cost a
/// tenth of a half-precision prefill); anything else through candle.
pub fn convert(x: &Tensor, dtype: DType) -> candle_core::Result<Tensor> {
	if x.dtype() == dtype {
		return Ok(x.clone());
	}
	let (storage, layout) = x.storage_and_layout();
	let Storage::Cpu(cpu) = &*storage else {
		drop(storage);
		return x.to_dtype(dtype);
	};
	let Some((start, end)) = layout.contiguous_offsets() else {
		// A view (a cache's used positions): made contiguous first, then converted.
		drop(storage);
		return convert(&x.contiguous()?, dtype);
	};
	let shape = x.shape().clone();
	let out = match (cpu, dtype) {
		(CpuStorage::F32(v), DType::F16) => {
			let mut out = vec![half::f16::ZERO; end - start];
			f32_to_f16(&v[start..end], &mut out);
			Tensor::from_vec(out, shape, &Device::Cpu)?
		},
		(CpuStorage::F32(v), DType::BF16) => {
			Tensor::from_vec(v[start..end].iter().map(|&f| f32_to_bf16(f)).collect::<Vec<_>>(), shape, &Device::Cpu)?
		},
		(CpuStorage::F16(v), DType::F32) => {
			// Weight matrices are widened too (the general matmul's operand): on every core.
			let mut out = vec![0f32; end - start];
			out.par_chunks_mut(1 << 16).zip(v[start..end].par_chunks(1 << 16)).for_each(|(d, s)| f16_to_f32(s, d));
			Tensor::from_vec(out, shape, &Device::Cpu)?
		},
		(CpuStorage::BF16(v), DType::F32) => {
			let mut out = vec![0f32; end - start];
			bf16_to_f32(&v[start..end], &mut out);
			Tensor::from_vec(out, shape, &Device::Cpu)?
		},
		_ => {
			drop(storage);
			return x.to_dtype(dtype);
		},
	};
	Ok(out)
}

/// bf16 → f32: a bf16 is the top half of an f32 (a loop that vectorizes).
fn bf16_to_f32(src: &[half::bf16], dst: &mut [f32]) {
	for (d, s) in dst.iter_mut().zip(src) {
		*d = f32::from_bits((s.to_bits() as u32) << 16);
	}
}

/// f32 → bf16, rounding to nearest even (as `half::bf16::from_f32`), NaN kept a (quiet) NaN;
/// branch-light so a loop of it vectorizes.
fn f32_to_bf16(f: f32) -> half::bf16 {
	let x = f.to_bits();
	if f.is_nan() {
		return half::bf16::from_bits(((x >> 16) | 0x0040) as u16);
	}
	half::bf16::from_bits((x.wrapping_add(0x7fff + ((x >> 16) & 1)) >> 16) as u16)
}

pub(crate) fn f32_to_f16(src: &[f32], dst: &mut [half::f16]) {
	#[cfg(target_arch = "x86_64")]
	if std::arch::is_x86_feature_detected!("f16c") && std::arch::is_x86_feature_detected!("avx") {
		// Safety: the features were detected at run time.
		unsafe { f32_to_f16_f16c(src, dst) };
		return;
	}
	for (d, s) in dst.iter_mut().zip(src) {
		*d = half::f16::from_f32(*s);
	}
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
unsafe fn f32_to_f16_f16c(src: &[f32], dst: &mut [half::f16]) {
	use std::arch::x86_64::*;
	let n = src.len().min(dst.len());
	let mut i = 0;
	while i + 8 <= n {
		let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(src.as_ptr().add(i)));
		_mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h);
		i += 8;
	}
	while i < n {
		dst[i] = half::f16::from_f32(src[i]);
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
		assert_eq!(lanes_dot(&[1.0; 35], &[2.0; 35]), 70.0);
	}

	/// The vector conversions give candle's (round to nearest even) bit for bit, at every
	/// special value and at a view's offset; other pairs fall through to candle.
	#[test]
	fn conversions_equal_candles() {
		let dev = Device::Cpu;
		let mut vals: Vec<f32> = vec![0.0, -0.0, 1.0, -2.5, 65504.0, 65520.0, 1e-8, -6.1e-5, 3.0e38, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MIN_POSITIVE];
		// Halfway cases of both half types (ties to even) and their neighbours.
		// Rounding up into infinity, a signalling and a negative NaN, the largest finite values.
		for bits in [0x3f80_8000u32, 0x3f81_8000, 0x3f80_7fff, 0x3f80_1000, 0x3f80_3000, 0x3f80_2fff, 0x7f7f_ffff, 0x7f7f_8000, 0xff7f_ffff, 0x7f80_0001, 0xffc0_0001, 0x477f_e000, 0x477f_f000] {
			vals.push(f32::from_bits(bits));
		}
		vals.extend((0..100).map(|i| (i as f32 * 0.37).sin() * 10f32.powi(i % 9 - 4)));
		let big = Tensor::new(vals.as_slice(), &dev).unwrap();
		let x = big.narrow(0, 3, vals.len() - 3).unwrap();
		let same = |a: &Tensor, b: &Tensor| {
			let (a, b) = (a.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap(), b.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap());
			a.len() == b.len() && a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()))
		};
		for dt in [DType::F16, DType::BF16] {
			let got = convert(&x, dt).unwrap();
			assert_eq!(got.dtype(), dt);
			assert!(same(&got, &x.to_dtype(dt).unwrap()), "f32 → {dt:?}");
			let back = convert(&got, DType::F32).unwrap();
			assert_eq!(back.dtype(), DType::F32);
			assert!(same(&back, &got.to_dtype(DType::F32).unwrap()), "{dt:?} → f32");
		}
		// A transposed view is made contiguous first; another pair goes through candle.
		let m = Tensor::arange(0f32, 6.0, &dev).unwrap().reshape((2, 3)).unwrap().t().unwrap();
		assert_eq!(convert(&m, DType::F16).unwrap().to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap(), m.to_vec2::<f32>().unwrap());
		assert_eq!(convert(&convert(&m, DType::BF16).unwrap().t().unwrap(), DType::F32).unwrap().to_vec2::<f32>().unwrap(), m.t().unwrap().to_vec2::<f32>().unwrap());
		assert_eq!(convert(&m, DType::F64).unwrap().dtype(), DType::F64);
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
