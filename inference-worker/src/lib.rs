//! OpenLedger inference worker: one shared candle base model (Llama / Mistral / Qwen2 layout),
//! many PEFT LoRA adapters served in mixed batches, an OpenAI-compatible HTTP API.
//!
//! - [`model`]: config, the ragged-batch decoder, LoRA adapters (PEFT loading, ids, BGMV).
//! - [`adapters`]: the adapter store and the byte-bounded LRU cache with single-flight loads.
//! - [`engine`]: continuous batching, sampling, back-pressure, cancellation.
//! - [`http`]: axum routes and OpenAI wire types.
//! - [`attribution`]: span attribution over a suffix-array index of a snapshot's contributions.
//! - [`chain`]: on-chain registration, vouchers, signed receipts, the durable receipt queue and
//!   its settler.
//! - [`factory`]: LoRA fine-tuning from Datanet snapshots, evaluation, registration; pretraining.
//! - [`model::synthetic`]: seeded model and adapter folders in the Hugging Face layout.
//! - [`secrets`]: the admin token and key URIs, from files, never printed.

pub mod adapters;
pub mod attribution;
pub mod chain;
pub mod engine;
pub mod factory;
pub mod http;
pub mod metrics;
pub mod model;
pub mod secrets;
pub mod tokenizer;

use candle_core::{DType, Device};

/// Logs to stderr (stdout is what the subcommands answer: JSON lines, tables), filtered by
/// `RUST_LOG`, by default `info` (tantivy's at `warn`).
pub fn init_logging() {
	tracing_subscriber::fmt()
		.with_writer(std::io::stderr)
		.with_env_filter(
			tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,tantivy=warn".parse().expect("static; qed")),
		)
		.init();
}

/// Keeps freed large buffers in the process (glibc): every step of the model allocates and frees
/// activations of megabytes (a prefill's MLP rows are 5.5 MiB each); glibc serves those with a
/// fresh `mmap` each time by default, and the kernel zeroes every page again on first touch.
/// Buffers up to 32 MiB (glibc's most) come from the heap instead, and each of glibc's heaps
/// (one per thread that allocates, up to its arena limit) keeps up to 256 MiB of freed memory
/// mapped for the next step. `bench-decode` of a 512-token prefill on the yardstick
/// model: 178 K page faults instead of 247 K. No effect on other C libraries.
pub fn tune_allocator() {
	#[cfg(all(target_os = "linux", target_env = "gnu"))]
	// Safety: mallopt only sets allocator parameters, under the allocator's own locks. A refused
	// value (it returns 0) leaves glibc's default, which is only slower.
	unsafe {
		libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
		libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
	}
}

/// The system allocator, with allocations from 4 KiB to below 32 MiB aligned to 64 bytes (a
/// cache line).
///
/// glibc aligns to 16 bytes, so every 64-byte vector load of an activation row straddles two
/// cache lines, and the CPU kernels (`model::gemm`, `model::gemv`) load little else (1.15× at 16
/// rows). Larger blocks keep the system's layout: aligned, they would lose `calloc`'s untouched
/// zero pages (a KV pool would commit its whole capacity at once) and `realloc`'s in-place
/// growth; the largest of them, repacked weights, align themselves (`model::gemm::Panels`).
/// Both binaries install it (`#[global_allocator]`).
pub struct LineAligned;

impl LineAligned {
	/// The layout actually asked of the system allocator for `layout` (a function of `layout`
	/// alone, so `dealloc` and `realloc` pass the system allocator what `alloc` did).
	fn widen(layout: std::alloc::Layout) -> std::alloc::Layout {
		if (4096..32 << 20).contains(&layout.size()) && layout.align() < 64 {
			// (64 is a power of two and the size is small: this cannot fail, and would keep the
			// caller's layout if it did.)
			std::alloc::Layout::from_size_align(layout.size(), 64).unwrap_or(layout)
		} else {
			layout
		}
	}
}

// Safety: every call is forwarded to the system allocator with the layout `widen` gives, which
// is at least as aligned as the caller's and of the same size; `realloc`'s new layout is widened
// the same way as `alloc` would widen it.
unsafe impl std::alloc::GlobalAlloc for LineAligned {
	unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
		std::alloc::System.alloc(Self::widen(layout))
	}
	unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
		std::alloc::System.alloc_zeroed(Self::widen(layout))
	}
	unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
		std::alloc::System.dealloc(ptr, Self::widen(layout))
	}
	unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
		let old = Self::widen(layout);
		let new = Self::widen(std::alloc::Layout::from_size_align_unchecked(new_size, layout.align()));
		if old.align() == new.align() {
			return std::alloc::System.realloc(ptr, old, new_size);
		}
		// Crossing the 4 KiB or the 32 MiB line changes the alignment: move by hand.
		let fresh = std::alloc::System.alloc(new);
		if !fresh.is_null() {
			std::ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size));
			std::alloc::System.dealloc(ptr, old);
		}
		fresh
	}
}

/// Parses `f32`, `bf16`, `f16`.
pub fn parse_dtype(s: &str) -> anyhow::Result<DType> {
	Ok(match s {
		"f32" | "float32" => DType::F32,
		"bf16" | "bfloat16" => DType::BF16,
		"f16" | "float16" => DType::F16,
		other => anyhow::bail!("unsupported dtype {other:?} (f32, bf16, f16)"),
	})
}

/// `cpu`, `cuda` or `cuda:N` (the latter with the `cuda` feature).
pub fn parse_device(s: &str) -> anyhow::Result<Device> {
	if s == "cpu" {
		return Ok(Device::Cpu);
	}
	if let Some(rest) = s.strip_prefix("cuda") {
		let ordinal = rest.strip_prefix(':').map(|n| n.parse()).transpose()?.unwrap_or(0);
		return Ok(Device::new_cuda(ordinal)?);
	}
	anyhow::bail!("unknown device {s:?} (cpu, cuda, cuda:N)")
}

#[cfg(test)]
mod tests {
	use super::LineAligned;
	use std::alloc::{GlobalAlloc, Layout};

	/// Large blocks come back on cache lines, small ones as the caller asked; growing a block
	/// across the 4 KiB line (where the alignment changes) and shrinking it back keep its bytes.
	#[test]
	fn large_blocks_are_line_aligned_and_realloc_keeps_the_bytes() {
		let a = LineAligned;
		// Safety: every block is freed once, with the layout (and size) it has at that point.
		unsafe {
			// Small blocks keep the caller's layout (no padding to a line), as do over-aligned ones.
			for (size, align) in [(100, 4), (4095, 16), (4096, 128), (32 << 20, 4), (1 << 30, 16)] {
				let l = Layout::from_size_align(size, align).unwrap();
				assert_eq!(LineAligned::widen(l), l);
			}
			for size in [4096usize, 4100, 1 << 20, 3 << 20] {
				for align in [4usize, 16] {
					let l = Layout::from_size_align(size, align).unwrap();
					let p = a.alloc(l);
					assert!(!p.is_null());
					assert_eq!(p as usize % 64, 0, "{size} bytes, align {align}");
					a.dealloc(p, l);
					let z = a.alloc_zeroed(l);
					assert_eq!(z as usize % 64, 0);
					assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
					a.dealloc(z, l);
				}
			}
			let l = Layout::from_size_align(100, 4).unwrap();
			let p = a.alloc(l);
			for i in 0..100 {
				*p.add(i) = i as u8;
			}
			let big = a.realloc(p, l, 10_000);
			assert_eq!(big as usize % 64, 0);
			assert!((0..100).all(|i| *big.add(i) == i as u8));
			*big.add(9_999) = 7;
			let l2 = Layout::from_size_align(10_000, 4).unwrap();
			let bigger = a.realloc(big, l2, 50_000);
			assert_eq!(bigger as usize % 64, 0);
			assert!((0..100).all(|i| *bigger.add(i) == i as u8) && *bigger.add(9_999) == 7);
			// Past 32 MiB the system's layout again (the block moves by hand), and back.
			let huge = a.realloc(bigger, Layout::from_size_align(50_000, 4).unwrap(), 40 << 20);
			assert!((0..100).all(|i| *huge.add(i) == i as u8) && *huge.add(9_999) == 7);
			let back = a.realloc(huge, Layout::from_size_align(40 << 20, 4).unwrap(), 50);
			assert!((0..50).all(|i| *back.add(i) == i as u8));
			a.dealloc(back, Layout::from_size_align(50, 4).unwrap());
		}
	}
}
