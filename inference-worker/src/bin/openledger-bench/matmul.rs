//! `openledger-bench bench-matmul`: `x Wᵀ` on the CPU for the model's projection shapes and
//! token-row counts from one decode row to a prefill: candle's general matmul (the baseline),
//! the few-rows kernel (`model/gemv.rs`, where it applies), the tiled AVX-512 kernel and the
//! panel kernel over weights repacked at load (`model/gemm.rs`, what the model uses on CPUs
//! with AVX-512), GFLOP/s each, same run, same operands.

use candle_core::{DType, Device, Tensor};
use openledger_worker::model::gemm::Panels;
use openledger_worker::model::gemv::{matmul_t_with, Kernel};
use openledger_worker::parse_dtype;
use std::time::{Duration, Instant};

#[derive(clap::Parser)]
pub struct BenchMatmulArgs {
	/// Weight shapes `out×in` (the defaults: q/o, k/v, gate/up, down and lm_head of the
	/// yardstick model).
	#[arg(long, value_delimiter = ',', default_value = "1024x1024,512x1024,2816x1024,1024x2816,32000x1024")]
	shapes: Vec<String>,
	/// Token rows of `x`.
	#[arg(long, value_delimiter = ',', default_value = "1,8,16,64,512")]
	rows: Vec<usize>,
	#[arg(long, value_delimiter = ',', default_value = "f32,f16")]
	dtypes: Vec<String>,
	/// Least time each measurement repeats for (its best repetition counts).
	#[arg(long, default_value_t = 0.3)]
	seconds: f64,
}

/// Best seconds per call of `f` over repetitions filling `budget` (at least 3).
fn best(budget: Duration, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
	f()?;
	let (start, mut best, mut reps) = (Instant::now(), f64::INFINITY, 0);
	while reps < 3 || start.elapsed() < budget {
		let t = Instant::now();
		f()?;
		best = best.min(t.elapsed().as_secs_f64());
		reps += 1;
	}
	Ok(best)
}

pub fn run(a: BenchMatmulArgs) -> anyhow::Result<()> {
	let dev = Device::Cpu;
	let budget = Duration::from_secs_f64(a.seconds);
	println!("threads: {}, AVX-512: {}", rayon::current_num_threads(), openledger_worker::model::gemm::available());
	println!();
	println!("| dtype | W (out×in) | rows | general GFLOP/s | few-rows GFLOP/s | tiled GFLOP/s | panels GFLOP/s | panels ÷ general | panels ÷ tiled |");
	println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
	for d in &a.dtypes {
		let dtype: DType = parse_dtype(d)?;
		for shape in &a.shapes {
			let (o, i) = shape.split_once('x').ok_or_else(|| anyhow::anyhow!("{shape:?}: out×in, e.g. 1024x1024"))?;
			let (o, i): (usize, usize) = (o.parse()?, i.parse()?);
			let w = Tensor::randn(0f32, 0.02, (o, i), &dev)?.to_dtype(dtype)?;
			let panels = Panels::pack(&w)?;
			for &m in &a.rows {
				let x = Tensor::randn(0f32, 1.0, (m, i), &dev)?.to_dtype(dtype)?;
				let flops = 2.0 * (m * o * i) as f64 / 1e9;
				let general = best(budget, || {
					x.matmul(&w.t()?)?;
					Ok(())
				})?;
				let run = |k: Kernel| -> anyhow::Result<Option<f64>> {
					if matmul_t_with(&x, &w, false, k)?.is_none() {
						return Ok(None);
					}
					Ok(Some(best(budget, || {
						matmul_t_with(&x, &w, false, k)?;
						Ok(())
					})?))
				};
				let rows = run(Kernel::Rows)?;
				let tiled = run(Kernel::Tiled)?;
				// As the model calls it: the activations (f32 there) copied out, the output made
				// a tensor.
				let xf = x.to_dtype(DType::F32)?;
				let panel = match &panels {
					Some(p) => Some(best(budget, || {
						let xs: Vec<f32> = xf.flatten_all()?.to_vec1()?;
						Tensor::from_vec(p.matmul(&xs, m), (m, o), &dev)?;
						Ok(())
					})?),
					None => None,
				};
				let rate = |t: Option<f64>| t.map_or("–".to_string(), |t| format!("{:.1}", flops / t));
				let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
					(Some(a), Some(b)) => format!("{:.2}×", b / a),
					_ => "–".to_string(),
				};
				println!(
					"| {d} | {o}×{i} | {m} | {} | {} | {} | {} | {} | {} |",
					rate(Some(general)),
					rate(rows),
					rate(tiled),
					rate(panel),
					ratio(panel, Some(general)),
					ratio(panel, tiled)
				);
			}
		}
	}
	Ok(())
}
