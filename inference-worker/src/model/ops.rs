//! Element-wise operations of the forward pass on the CPU, vectorized: softmax (attention) and
//! SiLU (the MLP). candle's CPU versions call the C library's scalar `expf` per element, which
//! took about a fifth of a 512-token prefill; here `exp` is a polynomial the compiler turns into
//! AVX2 or AVX-512 code (the functions are compiled for them where the CPU has them).

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use rayon::prelude::*;

/// `e^x` for f32, within 2.5·10⁻⁷ relative of `f32::exp` from -87.3 (where the result leaves
/// the normal numbers) to 88; 0 below (`-∞` included), `+∞` above 88 (the callers here take it
/// of values ≤ 0, or of a negated input for SiLU, where either limit is the right answer); NaN
/// stays NaN. Branch-free, so a loop of it vectorizes.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
	const LOG2E: f32 = std::f32::consts::LOG2_E;
	// ln 2 split in two, so n·ln 2 is subtracted exactly (Cody–Waite).
	const LN2_HI: f32 = 0.693_359_4;
	const LN2_LO: f32 = -2.121_944_4e-4;
	let xc = x.clamp(-87.336_55, 88.0);
	// n = round(x / ln 2) by the 1.5·2²³ trick (no rounding call, which would not vectorize).
	let n = (xc * LOG2E + 12_582_912.0) - 12_582_912.0;
	let r = xc - n * LN2_HI - n * LN2_LO;
	// e^r on [-ln2/2, ln2/2]: degree-6 Taylor polynomial (error < 2·10⁻⁸ relative).
	let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
	let scaled = p * f32::from_bits(((n as i32 + 127) << 23) as u32);
	if x < -87.336_55 {
		0.0
	} else if x > 88.0 {
		f32::INFINITY
	} else if x.is_nan() {
		x
	} else {
		scaled
	}
}

/// Softmax over each row of `v` (rows of `n`), in place.
#[inline(always)]
fn softmax_rows(v: &mut [f32], n: usize) {
	// Reductions in 16 independent lanes, and the exponentials in a loop of their own: a single
	// running sum or maximum would keep the compiler from vectorizing.
	for row in v.chunks_mut(n) {
		let mut lanes = [f32::NEG_INFINITY; 16];
		let chunks = row.chunks_exact(16);
		let tail = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
		for c in chunks {
			for l in 0..16 {
				lanes[l] = lanes[l].max(c[l]);
			}
		}
		let max = lanes.iter().copied().fold(tail, f32::max);
		for x in row.iter_mut() {
			*x = exp(*x - max);
		}
		let mut lanes = [0f32; 16];
		let chunks = row.chunks_exact(16);
		let tail: f32 = chunks.remainder().iter().sum();
		for c in chunks {
			for l in 0..16 {
				lanes[l] += c[l];
			}
		}
		let inv = 1.0 / (lanes.iter().sum::<f32>() + tail);
		row.iter_mut().for_each(|x| *x *= inv);
	}
}

#[inline(always)]
fn silu_all(v: &mut [f32], _unit: usize) {
	for x in v.iter_mut() {
		*x /= 1.0 + exp(-*x);
	}
}

/// `$name(chunk, unit)` runs `$body` compiled for AVX-512 or AVX2 + FMA where the CPU has them
/// (`$body` is `#[inline(always)]`, so it is compiled into each copy).
macro_rules! dispatched {
	($name:ident, $body:ident) => {
		fn $name(c: &mut [f32], unit: usize) {
			#[cfg(target_arch = "x86_64")]
			{
				#[target_feature(enable = "avx512f")]
				unsafe fn wide(c: &mut [f32], unit: usize) {
					$body(c, unit)
				}
				#[target_feature(enable = "avx2,fma")]
				unsafe fn narrow(c: &mut [f32], unit: usize) {
					$body(c, unit)
				}
				// Safety: the features were detected at run time.
				if std::arch::is_x86_feature_detected!("avx512f") {
					return unsafe { wide(c, unit) };
				}
				if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
					return unsafe { narrow(c, unit) };
				}
			}
			$body(c, unit)
		}
	};
}

dispatched!(softmax_chunk, softmax_rows);
dispatched!(silu_chunk, silu_all);

/// Runs `f` on chunks of `v` (each a whole number of `unit`s) on all cores.
fn par_apply(v: &mut [f32], unit: usize, f: fn(&mut [f32], usize)) {
	let chunk = unit * (16_384 / unit).max(1);
	v.par_chunks_mut(chunk).for_each(|c| f(c, unit));
}

/// An f32 CPU tensor's values, copied (contiguous); `None` for other tensors.
fn values(x: &Tensor) -> candle_core::Result<Option<Vec<f32>>> {
	if x.dtype() != DType::F32 || !x.device().is_cpu() {
		return Ok(None);
	}
	let x = x.contiguous()?;
	let (storage, layout) = x.storage_and_layout();
	let (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) = (&*storage, layout.contiguous_offsets()) else { return Ok(None) };
	Ok(Some(v[a..b].to_vec()))
}

/// Softmax over the last dimension (candle's `softmax_last_dim` on other dtypes and devices).
pub fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
	let Some(mut v) = values(x)? else { return candle_nn::ops::softmax_last_dim(x) };
	let n = x.dims().last().copied().unwrap_or(1).max(1);
	par_apply(&mut v, n, softmax_chunk);
	Tensor::from_vec(v, x.shape(), &Device::Cpu)
}

/// `x · σ(x)` (candle's `silu` on other dtypes and devices).
pub fn silu(x: &Tensor) -> candle_core::Result<Tensor> {
	let Some(mut v) = values(x)? else { return candle_nn::ops::silu(x) };
	par_apply(&mut v, 1, silu_chunk);
	Tensor::from_vec(v, x.shape(), &Device::Cpu)
}

#[cfg(test)]
mod tests {
	use super::*;

	/// `exp` against the C library's over the whole useful range (relative error), and at the
	/// edges: 0 below the normal range and for -∞, ∞ above it, NaN kept.
	#[test]
	fn exp_is_within_two_ulp() {
		let mut worst = 0f64;
		let mut x = -87.3f32;
		while x < 88.0 {
			let (got, want) = (exp(x) as f64, (x as f64).exp());
			worst = worst.max(((got - want) / want).abs());
			x += 0.013_7;
		}
		assert!(worst < 2.5e-7, "relative error {worst}");
		assert_eq!(exp(0.0), 1.0);
		assert_eq!((exp(f32::NEG_INFINITY), exp(-100.0), exp(100.0)), (0.0, 0.0, f32::INFINITY));
		assert!(exp(f32::NAN).is_nan());
	}

	/// Softmax and SiLU equal candle's (odd row lengths, masked -∞ entries, several chunks), and
	/// other dtypes go through candle.
	#[test]
	fn softmax_and_silu_equal_candles() {
		let dev = Device::Cpu;
		let x = (Tensor::randn(0f32, 3.0, (7, 300, 37), &dev).unwrap()).contiguous().unwrap();
		let mut masked: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
		for (i, v) in masked.iter_mut().enumerate() {
			if i % 37 > 30 {
				*v = f32::NEG_INFINITY;
			}
		}
		let m = Tensor::from_vec(masked, (7, 300, 37), &dev).unwrap();
		let close = |a: &Tensor, b: &Tensor| {
			let d: f32 = (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap();
			assert!(d < 1e-6, "max |Δ| {d}");
		};
		close(&softmax_last_dim(&m).unwrap(), &candle_nn::ops::softmax_last_dim(&m).unwrap());
		// A view (transposed) is made contiguous first.
		let t = x.transpose(1, 2).unwrap();
		close(&softmax_last_dim(&t).unwrap(), &candle_nn::ops::softmax_last_dim(&t.contiguous().unwrap()).unwrap());
		close(&silu(&x).unwrap(), &candle_nn::ops::silu(&x).unwrap());
		let h = x.to_dtype(DType::F16).unwrap();
		assert_eq!(silu(&h).unwrap().dtype(), DType::F16);
	}
}
