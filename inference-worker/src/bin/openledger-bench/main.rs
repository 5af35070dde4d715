//! `openledger-bench`: the worker's benchmarks, kept out of the production server binary
//! (`openledger-worker`). Each prints a table (or JSON) with ratios against a baseline measured
//! in the same run.

use clap::{Parser, Subcommand};

mod attr;
mod decode;
mod influence;
mod kv;
mod lora;
mod matmul;
mod quality;

#[derive(Parser)]
#[command(name = "openledger-bench", version, about = "Benchmarks of the OpenLedger inference worker")]
struct Cli {
	#[command(subcommand)]
	cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
	/// Mixed-adapter decode throughput vs the base model and merge-per-request; cold loads.
	BenchLora(lora::BenchArgs),
	/// Span-attribution cost for a 256-token completion vs its generation time.
	BenchAttribution(attr::BenchAttrArgs),
	/// Raw model speed on a model folder (prefill, single-stream and batched greedy decode), for
	/// the llama.cpp yardstick on the same weights.
	BenchDecode(decode::BenchDecodeArgs),
	/// `x Wᵀ` on the CPU: the general matmul, the few-rows kernel, the tiled AVX-512 kernel and
	/// the panel kernel.
	BenchMatmul(matmul::BenchMatmulArgs),
	/// The paged KV pool's prefix cache through the engine: shared system prompts, cache on vs off.
	BenchKv(kv::BenchKvArgs),
	/// Influence estimators (DataInf, exact, LiSSA) on a tiny model: time and agreement.
	BenchInfluence(influence::BenchInfluenceArgs),
	/// Attribution against a planted ground truth: span, retrieval and influence precision,
	/// recall and share mass; influence LDS and leave-one-out against retraining.
	BenchAttributionQuality(quality::BenchQualityArgs),
}

#[global_allocator]
static ALLOC: openledger_worker::LineAligned = openledger_worker::LineAligned;

fn main() -> anyhow::Result<()> {
	openledger_worker::init_logging();
	openledger_worker::tune_allocator();
	match Cli::parse().cmd {
		Cmd::BenchLora(args) => lora::run(args),
		Cmd::BenchAttribution(args) => attr::run(args),
		Cmd::BenchDecode(args) => decode::run(args),
		Cmd::BenchInfluence(args) => influence::run(args),
		Cmd::BenchKv(args) => kv::run(args),
		Cmd::BenchMatmul(args) => matmul::run(args),
		Cmd::BenchAttributionQuality(args) => quality::run(args),
	}
}
