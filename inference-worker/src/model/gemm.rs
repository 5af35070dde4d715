//! `y = x Wᵀ` for any number of token rows on CPUs with AVX-512: a register-tiled kernel for the
//! layout the model has (`x: [m, k]` and `W: [n, k]`, both with `k` contiguous).
//!
//! The general matmul (the `gemm` crate under candle) packs both operands for a column-major
//! outer-product kernel, in AVX2 on this project's build; a prefill spends most of its time
//! there. Here each `MR × NR` tile of `y` is `MR·NR` dot products computed at once: one pass
//! over `k`, 16 lanes at a time, loading `MR` rows of `x` and `NR` rows of `W` per step for
//! `MR·NR` fused multiply-adds held in registers (4 × 6 = 24 of AVX-512's 32), then one
//! horizontal sum per output. Nothing is packed. (The model repacks its projections into
//! [`Panels`] at load and multiplies them with the panel kernel below, about twice as fast; this
//! kernel serves weights that are not repacked: the output projection tied to the embeddings,
//! and the benches.) (Rows are loaded 64 bytes at a time; the
//! binaries' allocator, [`crate::LineAligned`], puts large buffers on cache-line boundaries so
//! no load straddles two lines: 1.15× at 16 rows.)
//!
//! Work is split over the rows of `W` in chunks whose `k` columns fit the L2 cache (with a block
//! of `x` rows beside them), one chunk per task on all cores; a task walks every row of `x`.
//! Half-precision weights (f16, bf16) are widened to f32 in registers as they are loaded for one
//! or two rows of `x` (each weight is read once), and once per call, chunk by chunk, into a
//! per-task scratch for more (each weight is read by every tile of `x` rows).

// Off x86-64 the kernel is never called (`available` is false) and its plumbing unused.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_variables, unused_imports))]

use super::gemv::Values;
use rayon::prelude::*;

/// Rows of `x` per register tile.
const MR: usize = 4;
/// Rows of `W` per register tile.
const NR: usize = 6;
/// Bytes of `W` rows (widened to f32), and of `x` rows, a task keeps hot at once (two of these
/// fit the 1 MiB L2 of the dev machine's cores with room to spare).
const BLOCK_BYTES: usize = 256 * 1024;
/// Rows of `x` up to which each weight row is read front to back on its own (one stream) rather
/// than in tiles of NR rows at once (`openledger-bench bench-matmul`: from DRAM, as every
/// projection of a large model and the output projection of a small one are, this streams faster).
const STREAM_ROWS: usize = 2;

/// Token rows up to which `gemv::matmul_t` uses this kernel (for weights not repacked); past them the general
/// matmul's packed kernels win (`openledger-bench bench-matmul` on the 2-core dev machine: from
/// 64 rows in f32 and 96 in f16 they are at par or ahead, and at a prefill's 512 rows 1.3–1.8×
/// faster).
pub fn max_rows(weights: candle_core::DType) -> usize {
	if weights == candle_core::DType::F32 {
		48
	} else {
		64
	}
}

/// Whether this CPU runs the kernel (AVX-512 F, detected at run time).
pub fn available() -> bool {
	#[cfg(target_arch = "x86_64")]
	{
		std::arch::is_x86_feature_detected!("avx512f")
	}
	#[cfg(not(target_arch = "x86_64"))]
	{
		false
	}
}

/// `y[m, n] = x[m, k] · W[n, k]ᵀ` in f32. `None` when the CPU lacks AVX-512.
pub(crate) fn matmul_nt(x: &[f32], m: usize, k: usize, w: &Values<'_>, n: usize) -> Option<Vec<f32>> {
	if !available() {
		return None;
	}
	assert!(x.len() >= m * k && w.len() >= n * k, "operands shorter than their shapes");
	let mut out = vec![0f32; m * n];
	if m == 0 || n == 0 || k == 0 {
		return Some(out);
	}
	// W rows per task: as many as fit the block, a multiple of NR, but small enough that every
	// core gets several tasks.
	let threads = rayon::current_num_threads().max(1);
	let fit = (BLOCK_BYTES / (k * 4)).max(1);
	let spread = n.div_ceil(threads * 4);
	let nb = (fit.min(spread).max(1)).div_ceil(NR) * NR;
	// x rows per block inside a task: as many as fit the block, a multiple of MR.
	let mb = ((BLOCK_BYTES / (k * 4)).max(MR) / MR) * MR;
	let dst = Shared(out.as_mut_ptr());
	let chunks = n.div_ceil(nb);
	// Half weights are widened as they are loaded for the one-stream rows, into a scratch first
	// for tiles (`openledger-bench bench-matmul`: at 8 and 16 rows the scratch is 1.1–1.5× faster,
	// since each weight is then widened once, not once per tile of x rows).
	let direct = m <= STREAM_ROWS;
	// (A scratch per rayon job, reused by the chunks that job runs.)
	(0..chunks).into_par_iter().for_each_init(Vec::<f32>::new, |scratch, c| {
		let j0 = c * nb;
		let rows = nb.min(n - j0);
		// Safety (of the kernel calls below): AVX-512 F was detected above; `x` holds rows
		// i0‥i0+mrows of k values and the weights rows j0‥j0+rows; this task alone writes
		// columns j0‥j0+rows of `out` (the chunks are disjoint), rows i0‥i0+mrows, all inside
		// its m × n values.
		#[cfg(target_arch = "x86_64")]
		if direct {
			let half = match w {
				Values::F32(_) => None,
				Values::F16(v) => Some((v[j0 * k..].as_ptr() as *const u16, 1)),
				Values::Bf16(v) => Some((v[j0 * k..].as_ptr() as *const u16, 2)),
			};
			if let Some((wp, kind)) = half {
				unsafe { avx512::block_half(kind, x.as_ptr(), m, wp, rows, k, dst.at(j0), n) };
				return;
			}
		}
		let wf = w.f32_range(j0 * k..(j0 + rows) * k, scratch);
		let mut i0 = 0;
		while i0 < m {
			let mrows = mb.min(m - i0);
			#[cfg(target_arch = "x86_64")]
			unsafe {
				avx512::block(x[i0 * k..].as_ptr(), mrows, wf.as_ptr(), rows, k, dst.at(i0 * n + j0), n)
			};
			i0 += mrows;
		}
	});
	Some(out)
}

/// Output rows of `W` per panel of [`Panels`] (three AVX-512 vectors).
pub const PANEL: usize = 48;
/// Rows of `x` per register tile of the panel kernel: 8 × 3 = 24 accumulators.
const PR: usize = 8;

/// A weight matrix `W: [n, k]` repacked once, at load, for the panel kernel: panel `b` holds
/// output rows `48b‥48b + 48` column by column (`k` runs of 48 values, the rows past `n` zero),
/// so one step of the kernel loads three vectors of 16 outputs' weights, contiguous, and every
/// panel is one stream through memory. In the serving dtype (half weights are widened in
/// registers as they are loaded).
///
/// The kernel multiplies a tile of 8 rows of `x` by a panel: each `x` value is broadcast to 16
/// lanes and multiplied into 16 outputs at once, so there is no horizontal sum and the outputs
/// are stored as whole vectors (`openledger-bench bench-matmul`: about 2× the dot-product
/// kernel above from 8 to 512 rows).
pub struct Panels {
	/// The panels, in their own anonymous mapping (zeroed by the kernel), starting at `off`.
	mem: memmap2::MmapMut,
	/// Where the panels start in `mem`: on a 2 MiB boundary, where the mapping is large
	/// enough to be worth huge pages, else the page start.
	off: usize,
	dtype: candle_core::DType,
	n: usize,
	k: usize,
}

/// Huge-page size (x86-64 and aarch64 Linux's transparent huge pages).
const HUGE: usize = 2 << 20;

impl Panels {
	/// `w` (`[n, k]`, f32/f16/bf16, on the CPU) repacked; `None` where the kernel does not apply
	/// (no AVX-512, another device or dtype, an empty matrix).
	///
	/// The panels get a mapping of their own, asked to be backed by 2 MiB pages before it is
	/// first touched (`MADV_HUGEPAGE`: honoured where transparent huge pages are `always` or
	/// `madvise`). A decode step streams every weight once, so with 4 KiB pages it takes a TLB
	/// miss — a page walk — every 4 KiB of weights (`bench-matmul` shows the difference).
	pub fn pack(w: &candle_core::Tensor) -> candle_core::Result<Option<Self>> {
		use candle_core::{CpuStorage, DType, Storage};
		let (n, k) = w.dims2()?;
		if !available() || !w.device().is_cpu() || n == 0 || k == 0 {
			return Ok(None);
		}
		let w = w.contiguous()?;
		let (storage, layout) = w.storage_and_layout();
		let Storage::Cpu(cpu) = &*storage else { return Ok(None) };
		let Some((start, end)) = layout.contiguous_offsets() else { return Ok(None) };
		let len = n.div_ceil(PANEL) * PANEL * k;
		/// Writes the panels of `src` into `dst` (zeroed, `len` values).
		fn repack<T: Copy + Send + Sync>(src: &[T], dst: &mut [T], n: usize, k: usize) {
			dst.par_chunks_mut(PANEL * k).enumerate().for_each(|(b, panel)| {
				for r in 0..PANEL.min(n - b * PANEL) {
					let row = &src[(b * PANEL + r) * k..(b * PANEL + r + 1) * k];
					for (p, v) in row.iter().enumerate() {
						panel[p * PANEL + r] = *v;
					}
				}
			});
		}
		let dtype = match cpu {
			CpuStorage::F32(_) => DType::F32,
			CpuStorage::F16(_) => DType::F16,
			CpuStorage::BF16(_) => DType::BF16,
			_ => return Ok(None),
		};
		let bytes = len * dtype.size_in_bytes();
		let huge = bytes >= HUGE;
		let mut mem = memmap2::MmapOptions::new().len(bytes + if huge { HUGE } else { 0 }).map_anon().map_err(candle_core::Error::wrap)?;
		let off = if huge { mem.as_ptr().align_offset(HUGE) } else { 0 };
		#[cfg(target_os = "linux")]
		if huge {
			// Advice only: without huge pages the panels work the same, slower.
			if let Err(e) = mem.advise_range(memmap2::Advice::HugePage, off, bytes) {
				tracing::debug!("MADV_HUGEPAGE refused: {e}");
			}
		}
		// Safety: the mapping is page aligned (so aligned for every value type) and holds
		// `off + bytes` bytes; all-zero bits are a valid f32, f16 and bf16.
		unsafe fn values<T>(mem: &mut memmap2::MmapMut, off: usize, len: usize) -> &mut [T] {
			std::slice::from_raw_parts_mut(mem.as_mut_ptr().add(off) as *mut T, len)
		}
		match cpu {
			CpuStorage::F32(v) => repack(&v[start..end], unsafe { values(&mut mem, off, len) }, n, k),
			CpuStorage::F16(v) => repack(&v[start..end], unsafe { values(&mut mem, off, len) }, n, k),
			CpuStorage::BF16(v) => repack(&v[start..end], unsafe { values(&mut mem, off, len) }, n, k),
			_ => unreachable!("matched above; qed"),
		}
		Ok(Some(Self { mem, off, dtype, n, k }))
	}

	/// The panels' values, as `T` (which must be the dtype's type).
	fn values<T: candle_core::WithDType>(&self) -> &[T] {
		assert_eq!(T::DTYPE, self.dtype, "the panels' own dtype");
		let len = self.n.div_ceil(PANEL) * PANEL * self.k;
		// Safety: `pack` wrote `len` values of this dtype from `off`, inside the mapping.
		unsafe { std::slice::from_raw_parts(self.mem.as_ptr().add(self.off) as *const T, len) }
	}

	/// `[n, k]`.
	pub fn dims(&self) -> (usize, usize) {
		(self.n, self.k)
	}

	pub fn dtype(&self) -> candle_core::DType {
		self.dtype
	}

	/// The matrix back as `[n, k]` in its dtype (for merging an adapter into it).
	pub fn unpack(&self) -> candle_core::Result<candle_core::Tensor> {
		fn unpack<T: Copy + Default + candle_core::WithDType>(v: &[T], n: usize, k: usize) -> candle_core::Result<candle_core::Tensor> {
			let mut out = vec![T::default(); n * k];
			for (j, row) in out.chunks_mut(k).enumerate() {
				let panel = &v[j / PANEL * PANEL * k..];
				for (p, o) in row.iter_mut().enumerate() {
					*o = panel[p * PANEL + j % PANEL];
				}
			}
			candle_core::Tensor::from_vec(out, (n, k), &candle_core::Device::Cpu)
		}
		match self.dtype {
			candle_core::DType::F32 => unpack(self.values::<f32>(), self.n, self.k),
			candle_core::DType::F16 => unpack(self.values::<half::f16>(), self.n, self.k),
			_ => unpack(self.values::<half::bf16>(), self.n, self.k),
		}
	}

	/// `y[m, n] = x[m, k] · Wᵀ` in f32.
	pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
		let (n, k) = (self.n, self.k);
		assert!(x.len() >= m * k, "x shorter than its shape");
		let mut out = vec![0f32; m * n];
		if m == 0 {
			return out;
		}
		let dst = Shared(out.as_mut_ptr());
		let kind = match self.dtype {
			candle_core::DType::F32 => 0u8,
			candle_core::DType::F16 => 1,
			_ => 2,
		};
		// Safety: `off` is inside the mapping (`pack`).
		let ptr = Shared(unsafe { self.mem.as_ptr().add(self.off) } as *mut u8);
		let elem = if kind == 0 { 4 } else { 2 };
		(0..n.div_ceil(PANEL)).into_par_iter().for_each(|b| {
			let panel = ptr.at(b * PANEL * k * elem) as *const u8;
			let cols = PANEL.min(n - b * PANEL);
			#[cfg(target_arch = "x86_64")]
			// Safety: `pack` made this only where AVX-512 F is; the panel holds k × 48 values of
			// `kind`; `x` holds m rows of k; this task alone writes columns 48b‥48b + cols of
			// the m × n output.
			unsafe {
				avx512::panel(kind, x.as_ptr(), m, k, panel, dst.at(b * PANEL), n, cols)
			};
		});
		out
	}
}

/// A buffer shared by a kernel's tasks: the weights, which every task reads, or the output,
/// where each task writes only its own columns; it outlives them.
struct Shared<T>(*mut T);
impl<T> Clone for Shared<T> {
	fn clone(&self) -> Self {
		*self
	}
}
impl<T> Copy for Shared<T> {}
// Safety: tasks read freely and write disjoint elements (see above).
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}
impl<T> Shared<T> {
	/// Element `i` (the callers keep it inside the buffer).
	fn at(self, i: usize) -> *mut T {
		self.0.wrapping_add(i)
	}
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
	use super::{MR, NR, STREAM_ROWS};
	use std::arch::x86_64::*;

	/// `out[i·ldo] = Σ_p x[i·k + p] · w[p]` for `i < R`: one weight row read front to back (one
	/// memory stream, as the hardware prefetcher likes it when the weights come from DRAM),
	/// four accumulators per row of `x`.
	#[target_feature(enable = "avx512f")]
	#[inline]
	unsafe fn row<const R: usize, const H: u8>(x: *const f32, w: *const u8, k: usize, out: *mut f32, ldo: usize) {
		let mut acc = [[_mm512_setzero_ps(); 4]; R];
		let mut p = 0;
		while p + 64 <= k {
			for u in 0..4 {
				let wv = load_w::<H>(w, p + 16 * u);
				for (i, a) in acc.iter_mut().enumerate() {
					a[u] = _mm512_fmadd_ps(_mm512_loadu_ps(x.add(i * k + p + 16 * u)), wv, a[u]);
				}
			}
			p += 64;
		}
		while p + 16 <= k {
			let wv = load_w::<H>(w, p);
			for (i, a) in acc.iter_mut().enumerate() {
				a[0] = _mm512_fmadd_ps(_mm512_loadu_ps(x.add(i * k + p)), wv, a[0]);
			}
			p += 16;
		}
		if p < k {
			let mask: __mmask16 = ((1u32 << (k - p)) - 1) as u16;
			let wv = load_w_tail::<H>(w, p, k - p);
			for (i, a) in acc.iter_mut().enumerate() {
				a[1] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, x.add(i * k + p)), wv, a[1]);
			}
		}
		for (i, a) in acc.iter().enumerate() {
			*out.add(i * ldo) = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
		}
	}

	/// `out[i·ldo + c] = Σ_p x[i·k + p] · panel[p·48 + c]` for the `m` rows of `x` and the first
	/// `cols` columns of a panel of kind `kind` (see [`load_w`]).
	#[target_feature(enable = "avx512f")]
	#[allow(clippy::too_many_arguments)]
	pub(super) unsafe fn panel(kind: u8, x: *const f32, m: usize, k: usize, panel: *const u8, out: *mut f32, ldo: usize, cols: usize) {
		match kind {
			0 => panel_of::<0>(x, m, k, panel, out, ldo, cols),
			1 => panel_of::<1>(x, m, k, panel, out, ldo, cols),
			_ => panel_of::<2>(x, m, k, panel, out, ldo, cols),
		}
	}

	#[target_feature(enable = "avx512f")]
	#[allow(clippy::too_many_arguments)]
	unsafe fn panel_of<const H: u8>(x: *const f32, m: usize, k: usize, panel: *const u8, out: *mut f32, ldo: usize, cols: usize) {
		if m == 1 {
			return panel_row::<H>(x, k, panel, out, cols);
		}
		let mut i = 0;
		while i < m {
			let r = super::PR.min(m - i);
			let (x, out) = (x.add(i * k), out.add(i * ldo));
			match r {
				8 => panel_tile::<8, H>(x, k, panel, out, ldo, cols),
				7 => panel_tile::<7, H>(x, k, panel, out, ldo, cols),
				6 => panel_tile::<6, H>(x, k, panel, out, ldo, cols),
				5 => panel_tile::<5, H>(x, k, panel, out, ldo, cols),
				4 => panel_tile::<4, H>(x, k, panel, out, ldo, cols),
				3 => panel_tile::<3, H>(x, k, panel, out, ldo, cols),
				2 => panel_tile::<2, H>(x, k, panel, out, ldo, cols),
				_ => panel_tile::<1, H>(x, k, panel, out, ldo, cols),
			}
			i += r;
		}
	}

	/// Stores the 48 sums of `acc` to `out`, the columns past `cols` left alone.
	#[target_feature(enable = "avx512f")]
	#[inline]
	unsafe fn store_panel_row(acc: &[__m512; 3], out: *mut f32, cols: usize) {
		for (v, a) in acc.iter().enumerate() {
			let lo = 16 * v;
			if cols >= lo + 16 {
				_mm512_storeu_ps(out.add(lo), *a);
			} else if cols > lo {
				_mm512_mask_storeu_ps(out.add(lo), ((1u32 << (cols - lo)) - 1) as u16, *a);
			}
		}
	}

	/// `R` rows of `x` by one panel: 3R accumulators, each step three weight vectors and R
	/// broadcasts.
	#[target_feature(enable = "avx512f")]
	#[inline]
	unsafe fn panel_tile<const R: usize, const H: u8>(x: *const f32, k: usize, panel: *const u8, out: *mut f32, ldo: usize, cols: usize) {
		let mut acc = [[_mm512_setzero_ps(); 3]; R];
		for p in 0..k {
			// The panel 24 steps ahead (a hint; past the end it is dropped): in the model the
			// panel comes from DRAM, and this measured 3–5 % at 16 rows (single rows: no gain).
			_mm_prefetch::<_MM_HINT_T0>(panel.wrapping_add((p + 24) * super::PANEL * elem::<H>()) as *const i8);
			let w = [load_w::<H>(panel, p * super::PANEL), load_w::<H>(panel, p * super::PANEL + 16), load_w::<H>(panel, p * super::PANEL + 32)];
			for (i, a) in acc.iter_mut().enumerate() {
				let xb = _mm512_set1_ps(*x.add(i * k + p));
				for v in 0..3 {
					a[v] = _mm512_fmadd_ps(xb, w[v], a[v]);
				}
			}
		}
		for (i, a) in acc.iter().enumerate() {
			store_panel_row(a, out.add(i * ldo), cols);
		}
	}

	/// One row of `x` by one panel: four steps at a time into four sets of accumulators (one
	/// row alone has too few independent sums to hide the multiply-add latency).
	#[target_feature(enable = "avx512f")]
	unsafe fn panel_row<const H: u8>(x: *const f32, k: usize, panel: *const u8, out: *mut f32, cols: usize) {
		let mut acc = [[_mm512_setzero_ps(); 3]; 4];
		let mut p = 0;
		while p + 4 <= k {
			for (u, a) in acc.iter_mut().enumerate() {
				let xb = _mm512_set1_ps(*x.add(p + u));
				for v in 0..3 {
					a[v] = _mm512_fmadd_ps(xb, load_w::<H>(panel, (p + u) * super::PANEL + 16 * v), a[v]);
				}
			}
			p += 4;
		}
		while p < k {
			let xb = _mm512_set1_ps(*x.add(p));
			for v in 0..3 {
				acc[0][v] = _mm512_fmadd_ps(xb, load_w::<H>(panel, p * super::PANEL + 16 * v), acc[0][v]);
			}
			p += 1;
		}
		let mut sum = [_mm512_setzero_ps(); 3];
		for a in &acc {
			for v in 0..3 {
				sum[v] = _mm512_add_ps(sum[v], a[v]);
			}
		}
		store_panel_row(&sum, out, cols);
	}

	/// Bytes per weight of kind `H`.
	const fn elem<const H: u8>() -> usize {
		if H == 0 {
			4
		} else {
			2
		}
	}

	/// 16 weights from `w` (elements `at‥at + 16`) as f32: `H` 0 f32, 1 f16, 2 bf16.
	#[target_feature(enable = "avx512f")]
	#[inline]
	unsafe fn load_w<const H: u8>(w: *const u8, at: usize) -> __m512 {
		match H {
			0 => _mm512_loadu_ps((w as *const f32).add(at)),
			1 => _mm512_cvtph_ps(_mm256_loadu_si256((w as *const u16).add(at) as *const __m256i)),
			_ => _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256((w as *const u16).add(at) as *const __m256i)))),
		}
	}

	/// The last `n < 16` weights of a row from `at`, the lanes past them zero (not read).
	#[target_feature(enable = "avx512f")]
	#[inline]
	unsafe fn load_w_tail<const H: u8>(w: *const u8, at: usize, n: usize) -> __m512 {
		let mask: __mmask16 = ((1u32 << n) - 1) as u16;
		if H == 0 {
			return _mm512_maskz_loadu_ps(mask, (w as *const f32).add(at));
		}
		let mut buf = [0u16; 16];
		std::ptr::copy_nonoverlapping((w as *const u16).add(at), buf.as_mut_ptr(), n);
		load_w::<H>(buf.as_ptr() as *const u8, 0)
	}

	/// `out[i·ldo + j] = Σ_p x[i·k + p] · w[j·k + p]` for `i < R`, `j < C`, the weights `w` of
	/// kind `H` (see [`load_w`]).
	#[target_feature(enable = "avx512f")]
	#[inline]
	///
	/// `pf`: the next tile's weight rows (`pf_rows` of them, `k` long), fetched into the cache
	/// alongside, at the same offsets: the first pass over a tile of weights streams them from
	/// memory, and six row streams at once are more than the hardware prefetcher keeps ahead of.
	#[allow(clippy::too_many_arguments)]
	unsafe fn tile<const R: usize, const C: usize, const H: u8>(x: *const f32, w: *const u8, k: usize, out: *mut f32, ldo: usize, pf: *const u8, pf_rows: usize) {
		let mut acc = [[_mm512_setzero_ps(); C]; R];
		let mut p = 0;
		while p + 16 <= k {
			for j in 0..pf_rows {
				_mm_prefetch::<_MM_HINT_T0>(pf.add((j * k + p) * elem::<H>()) as *const i8);
			}
			let mut xv = [_mm512_setzero_ps(); R];
			for (i, v) in xv.iter_mut().enumerate() {
				*v = _mm512_loadu_ps(x.add(i * k + p));
			}
			for j in 0..C {
				let wv = load_w::<H>(w, j * k + p);
				for i in 0..R {
					acc[i][j] = _mm512_fmadd_ps(xv[i], wv, acc[i][j]);
				}
			}
			p += 16;
		}
		if p < k {
			// The last k % 16 columns, the lanes past k masked off (not read).
			let mask: __mmask16 = ((1u32 << (k - p)) - 1) as u16;
			let mut xv = [_mm512_setzero_ps(); R];
			for (i, v) in xv.iter_mut().enumerate() {
				*v = _mm512_maskz_loadu_ps(mask, x.add(i * k + p));
			}
			for j in 0..C {
				let wv = load_w_tail::<H>(w, j * k + p, k - p);
				for i in 0..R {
					acc[i][j] = _mm512_fmadd_ps(xv[i], wv, acc[i][j]);
				}
			}
		}
		for (i, row) in acc.iter().enumerate() {
			for (j, a) in row.iter().enumerate() {
				*out.add(i * ldo + j) = _mm512_reduce_add_ps(*a);
			}
		}
	}

	/// One tile of `r ≤ MR` by `c ≤ NR` (the edges of a block are narrower).
	#[target_feature(enable = "avx512f")]
	#[allow(clippy::too_many_arguments)]
	unsafe fn tile_any<const H: u8>(r: usize, c: usize, x: *const f32, w: *const u8, k: usize, out: *mut f32, ldo: usize, pf: *const u8, pf_rows: usize) {
		macro_rules! by_cols {
			($r:literal) => {
				match c {
					6 => tile::<$r, 6, H>(x, w, k, out, ldo, pf, pf_rows),
					5 => tile::<$r, 5, H>(x, w, k, out, ldo, pf, pf_rows),
					4 => tile::<$r, 4, H>(x, w, k, out, ldo, pf, pf_rows),
					3 => tile::<$r, 3, H>(x, w, k, out, ldo, pf, pf_rows),
					2 => tile::<$r, 2, H>(x, w, k, out, ldo, pf, pf_rows),
					1 => tile::<$r, 1, H>(x, w, k, out, ldo, pf, pf_rows),
					_ => unreachable!("tiles are 1 to NR wide"),
				}
			};
		}
		const _: () = assert!(MR == 4 && NR == 6, "tile_any spells out the tile sizes");
		match r {
			4 => by_cols!(4),
			3 => by_cols!(3),
			2 => by_cols!(2),
			1 => by_cols!(1),
			_ => unreachable!("tiles are 1 to MR tall"),
		}
	}

	/// One or two rows of `x` over half-precision weights (`kind` 1: f16, 2: bf16), widened as
	/// loaded (more rows take [`block`] over a widened scratch).
	#[target_feature(enable = "avx512f")]
	pub(super) unsafe fn block_half(kind: u8, x: *const f32, m: usize, w: *const u16, n: usize, k: usize, out: *mut f32, ldo: usize) {
		assert!(m <= STREAM_ROWS, "half weights are widened in registers for one or two rows only");
		match kind {
			1 => rows_of::<1>(x, m, w as *const u8, n, k, out, ldo),
			_ => rows_of::<2>(x, m, w as *const u8, n, k, out, ldo),
		}
	}

	/// One or two rows of `x`: each weight row read front to back on its own.
	#[target_feature(enable = "avx512f")]
	unsafe fn rows_of<const H: u8>(x: *const f32, m: usize, w: *const u8, n: usize, k: usize, out: *mut f32, ldo: usize) {
		for j in 0..n {
			let (wj, oj) = (w.add(j * k * elem::<H>()), out.add(j));
			match m {
				1 => row::<1, H>(x, wj, k, oj, ldo),
				_ => row::<2, H>(x, wj, k, oj, ldo),
			}
		}
	}

	/// `out[i·ldo + j] = x_i · w_j` for the `m` rows of `x` and `n` rows of f32 `w` (each `k`
	/// long, contiguous): W tiles outer.
	#[target_feature(enable = "avx512f")]
	pub(super) unsafe fn block(x: *const f32, m: usize, w: *const f32, n: usize, k: usize, out: *mut f32, ldo: usize) {
		if m <= STREAM_ROWS {
			return rows_of::<0>(x, m, w as *const u8, n, k, out, ldo);
		}
		let (w, elem) = (w as *const u8, 4);
		let mut j = 0;
		while j < n {
			let c = NR.min(n - j);
			let mut i = 0;
			while i < m {
				let r = MR.min(m - i);
				// The first pass over this tile of weights fetches the next tile's.
				let pf_rows = if i == 0 { NR.min(n - j - c) } else { 0 };
				tile_any::<0>(r, c, x.add(i * k), w.add(j * k * elem), k, out.add(i * ldo + j), ldo, w.add((j + c) * k * elem), pf_rows);
				i += r;
			}
			j += c;
		}
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	/// A plain triple loop in f64: the reference.
	fn reference(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f64> {
		let mut y = vec![0f64; m * n];
		for i in 0..m {
			for j in 0..n {
				y[i * n + j] = (0..k).map(|p| x[i * k + p] as f64 * w[j * k + p] as f64).sum();
			}
		}
		y
	}

	fn seeded(len: usize, seed: u64) -> Vec<f32> {
		use rand::{Rng, SeedableRng};
		let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
		(0..len).map(|_| r.gen_range(-1.0f32..1.0)).collect()
	}

	/// Every tile edge (m and n past multiples of MR and NR, k past multiples of 16, k smaller
	/// than one vector, blocks and chunks of several tiles) in every weight dtype, against f64.
	#[test]
	fn equals_the_triple_loop() {
		if !available() {
			eprintln!("no AVX-512 on this CPU: the tiled kernel is not used here");
			return;
		}
		for (m, k, n) in [(1, 1, 1), (1, 15, 7), (2, 130, 5), (2, 64, 3), (1, 200, 9), (3, 16, 6), (4, 17, 13), (5, 33, 25), (17, 1000, 61), (70, 4100, 9), (17, 4096, 7), (18, 4096, 5), (513, 64, 130)] {
			let x = seeded(m * k, (m * 31 + k) as u64);
			let w = seeded(n * k, (n * 17 + k) as u64);
			let h: Vec<half::f16> = w.iter().map(|&v| half::f16::from_f32(v)).collect();
			let b: Vec<half::bf16> = w.iter().map(|&v| half::bf16::from_f32(v)).collect();
			let wh: Vec<f32> = h.iter().map(|v| v.to_f32()).collect();
			let wb: Vec<f32> = b.iter().map(|v| v.to_f32()).collect();
			for (weights, exact) in [(Values::F32(&w), &w), (Values::F16(&h), &wh), (Values::Bf16(&b), &wb)] {
				let got = matmul_nt(&x, m, k, &weights, n).expect("AVX-512 is here");
				let want = reference(&x, m, k, exact, n);
				assert_eq!(got.len(), m * n);
				for (idx, (g, r)) in got.iter().zip(&want).enumerate() {
					// f32 accumulation over k terms of magnitude < 1.
					let tol = 1e-5 * (k as f64).sqrt().max(1.0) * 4.0;
					assert!((*g as f64 - r).abs() <= tol, "{m}×{k}×{n} at {idx}: {g} vs {r}");
				}
			}
		}
	}

	/// The panel kernel: every tile height (1‥8 rows and past), a last panel narrower than 48,
	/// k of any length, every weight dtype, against f64; `unpack` gives the matrix back exactly.
	#[test]
	fn panels_equal_the_triple_loop() {
		let dev = candle_core::Device::Cpu;
		if !available() {
			assert!(Panels::pack(&candle_core::Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap()).unwrap().is_none());
			return;
		}
		for (m, k, n) in [(1, 1, 1), (1, 7, 50), (2, 33, 48), (3, 16, 96), (8, 100, 47), (9, 64, 97), (16, 1000, 49), (17, 5, 145), (130, 70, 20), (3, 1100, 1000)] {
			let x = seeded(m * k, (m * 13 + k) as u64);
			let w = seeded(n * k, (n * 7 + k) as u64);
			let wt = candle_core::Tensor::from_vec(w.clone(), (n, k), &dev).unwrap();
			for dt in [candle_core::DType::F32, candle_core::DType::F16, candle_core::DType::BF16] {
				let wd = wt.to_dtype(dt).unwrap();
				let exact: Vec<f32> = wd.to_dtype(candle_core::DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap();
				let p = Panels::pack(&wd).unwrap().expect("AVX-512 is here");
				assert_eq!((p.dims(), p.dtype()), ((n, k), dt));
				// 2 MiB and more (the last shape): the panels start on a huge-page boundary.
				let huge = n.div_ceil(PANEL) * PANEL * k * dt.size_in_bytes() >= HUGE;
				assert_eq!(huge, n == 1000);
				assert_eq!((p.mem.as_ptr() as usize + p.off) % if huge { HUGE } else { 4096 }, 0);
				let back: Vec<f32> = p.unpack().unwrap().to_dtype(candle_core::DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap();
				assert_eq!(back, exact, "{dt:?} {n}×{k}: unpack");
				let got = p.matmul(&x, m);
				let want = reference(&x, m, k, &exact, n);
				assert_eq!(got.len(), m * n);
				for (idx, (g, r)) in got.iter().zip(&want).enumerate() {
					let tol = 1e-5 * (k as f64).sqrt().max(1.0) * 4.0;
					assert!((*g as f64 - r).abs() <= tol, "{dt:?} {m}×{k}×{n} at {idx}: {g} vs {r}");
				}
			}
		}
		assert_eq!(Panels::pack(&candle_core::Tensor::zeros((4, 8), candle_core::DType::F32, &dev).unwrap()).unwrap().unwrap().matmul(&[], 0), Vec::<f32>::new());
	}

	/// Empty shapes give zeros of the right size and read nothing.
	#[test]
	fn empty_shapes() {
		if !available() {
			return;
		}
		assert_eq!(matmul_nt(&[], 0, 8, &Values::F32(&[0.0; 16]), 2).unwrap(), Vec::<f32>::new());
		assert_eq!(matmul_nt(&[1.0; 8], 1, 8, &Values::F32(&[]), 0).unwrap(), Vec::<f32>::new());
		assert_eq!(matmul_nt(&[], 2, 0, &Values::F32(&[]), 3).unwrap(), vec![0.0; 6]);
	}
}
