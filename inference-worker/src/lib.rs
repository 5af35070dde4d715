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
