//! The training loop: AdamW over whichever parameters are variables, a warmup + decay learning
//! rate schedule, gradient clipping, seeded batching and dropout, held-out evaluation before and
//! after, and a progress bar with loss and tokens/s.

use super::data::{epoch_order, Window};
use super::net::{masked_nll, nll_sum, Dropout, Net};
use anyhow::{ensure, Result};
use candle_core::{backprop::GradStore, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};
use std::time::Instant;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
	Constant,
	Linear,
	Cosine,
}

/// Optimiser and data knobs (shared by fine-tuning and pretraining).
#[derive(clap::Args, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OptimArgs {
	/// Peak learning rate (AdamW).
	#[arg(long, default_value_t = 2e-3)]
	pub lr: f64,
	/// Learning-rate decay after warmup.
	#[arg(long, value_enum, default_value_t = Schedule::Cosine)]
	pub schedule: Schedule,
	/// Fraction of the steps spent warming up linearly from 0.
	#[arg(long, default_value_t = 0.05)]
	pub warmup: f64,
	/// AdamW decoupled weight decay.
	#[arg(long, default_value_t = 0.0)]
	pub weight_decay: f64,
	#[arg(long, default_value_t = 0.9)]
	pub beta1: f64,
	#[arg(long, default_value_t = 0.999)]
	pub beta2: f64,
	/// Clip the global gradient norm to this (0 disables).
	#[arg(long, default_value_t = 1.0)]
	pub max_grad_norm: f64,
	/// Passes over the training data.
	#[arg(long, default_value_t = 3)]
	pub epochs: usize,
	/// Train exactly this many optimiser steps (cycling over the data) instead of `--epochs`.
	#[arg(long)]
	pub max_steps: Option<usize>,
	/// Windows per optimiser step.
	#[arg(long, default_value_t = 8)]
	pub batch_size: usize,
	/// Tokens per training window.
	#[arg(long, default_value_t = 128)]
	pub max_seq_len: usize,
	/// Share of the documents held out for evaluation.
	#[arg(long, default_value_t = 0.1)]
	pub eval_fraction: f64,
	/// Seeds the split, batch order, initialisation and dropout.
	#[arg(long, default_value_t = 42)]
	pub seed: u64,
}

impl Default for OptimArgs {
	fn default() -> Self {
		super::clap_defaults()
	}
}

/// Optimiser steps of one run, at most (a bound on the run's time and on its loss curve).
pub const MAX_STEPS: usize = 100_000;
/// Passes over the data, at most.
pub const MAX_EPOCHS: usize = 1_000;
/// Windows per step, at most.
pub const MAX_BATCH: usize = 1_024;
/// Tokens per window, at most (also bounded by the base model's context length).
pub const MAX_SEQ_LEN: usize = 32_768;
/// Tokens per optimiser step (batch × window), at most: activations for the backward pass grow
/// with it, and training shares the worker's memory.
pub const MAX_STEP_TOKENS: usize = 65_536;

impl OptimArgs {
	pub fn check(&self) -> Result<()> {
		ensure!(self.lr > 0.0 && self.lr <= 1.0, "--lr must be in (0, 1]");
		ensure!(self.max_steps.is_none_or(|m| (1..=MAX_STEPS).contains(&m)), "--max-steps must be in 1..={MAX_STEPS}");
		ensure!(self.epochs <= MAX_EPOCHS, "--epochs must be at most {MAX_EPOCHS}");
		ensure!(self.batch_size <= MAX_BATCH, "--batch-size must be at most {MAX_BATCH}");
		ensure!(self.max_seq_len <= MAX_SEQ_LEN, "--max-seq-len must be at most {MAX_SEQ_LEN}");
		ensure!(
			self.batch_size.saturating_mul(self.max_seq_len) <= MAX_STEP_TOKENS,
			"--batch-size × --max-seq-len must be at most {MAX_STEP_TOKENS} tokens per step"
		);
		ensure!((0.0..=1.0).contains(&self.weight_decay), "--weight-decay is in [0, 1]");
		ensure!((0.0..=1e6).contains(&self.max_grad_norm), "--max-grad-norm is in [0, 1e6]");
		ensure!((0.0..1.0).contains(&self.warmup), "--warmup is a fraction of the steps in [0, 1)");
		ensure!(self.batch_size > 0, "--batch-size must be positive");
		ensure!(self.max_seq_len >= 2, "--max-seq-len must be at least 2");
		ensure!(self.epochs > 0 || self.max_steps.is_some(), "--epochs must be positive");
		ensure!((0.0..1.0).contains(&self.eval_fraction), "--eval-fraction is in [0, 1)");
		ensure!((0.0..1.0).contains(&self.beta1) && (0.0..1.0).contains(&self.beta2), "betas are in [0, 1)");
		Ok(())
	}

	/// Learning rate at `step` of `total`.
	pub fn lr_at(&self, step: usize, total: usize) -> f64 {
		let warm = (self.warmup * total as f64).round() as usize;
		if step < warm {
			return self.lr * (step + 1) as f64 / warm as f64;
		}
		let progress = (step - warm) as f64 / (total - warm).max(1) as f64;
		match self.schedule {
			Schedule::Constant => self.lr,
			Schedule::Linear => self.lr * (1.0 - progress),
			Schedule::Cosine => self.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
		}
	}
}

/// Loss and perplexity on a set of windows.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Eval {
	pub loss: f64,
	pub perplexity: f64,
	pub tokens: u64,
}

/// What a run did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
	pub steps: usize,
	pub epochs: usize,
	pub train_windows: usize,
	pub train_tokens: u64,
	pub seconds: f64,
	pub tokens_per_second: f64,
	pub trainable_parameters: usize,
	/// `(step, mean training loss of the batch)`, every step.
	pub loss_curve: Vec<(usize, f64)>,
	pub eval_before: Eval,
	pub eval_after: Eval,
	/// No document could be held out (a single document): evaluated on the training data.
	pub eval_on_train: bool,
}

/// `(ids [B, T], targets [B·T], mask [B·T])` of right-padded windows.
pub fn collate(windows: &[&Window], device: &Device) -> Result<(Tensor, Tensor, Tensor)> {
	let t = windows.iter().map(|w| w.tokens.len() - 1).max().unwrap_or(1);
	let b = windows.len();
	let (mut ids, mut targets, mut mask) = (vec![0u32; b * t], vec![0u32; b * t], vec![0f32; b * t]);
	for (r, w) in windows.iter().enumerate() {
		let n = w.tokens.len() - 1;
		ids[r * t..r * t + n].copy_from_slice(&w.tokens[..n]);
		targets[r * t..r * t + n].copy_from_slice(&w.tokens[1..]);
		mask[r * t..r * t + n].iter_mut().for_each(|m| *m = 1.0);
	}
	Ok((
		Tensor::from_vec(ids, (b, t), device)?,
		Tensor::from_vec(targets, b * t, device)?,
		Tensor::from_vec(mask, b * t, device)?,
	))
}

/// Mean loss of `net` over `windows`, in batches.
pub fn evaluate(net: &Net<'_>, windows: &[Window], batch: usize, device: &Device) -> Result<Eval> {
	let (mut nll, mut count) = (0.0, 0.0);
	for chunk in windows.chunks(batch.max(1)) {
		let refs: Vec<&Window> = chunk.iter().collect();
		let (ids, targets, mask) = collate(&refs, device)?;
		let (s, c) = nll_sum(&net.forward(&ids, None)?, &targets, &mask)?;
		nll += s;
		count += c;
	}
	let loss = if count > 0.0 { nll / count } else { f64::NAN };
	Ok(Eval { loss, perplexity: loss.exp(), tokens: count as u64 })
}

/// Scales every gradient so that their global L2 norm is at most `max`; returns the norm.
fn clip(grads: &mut GradStore, vars: &[Var], max: f64) -> Result<f64> {
	let mut sq = 0.0;
	for v in vars {
		if let Some(g) = grads.get(v.as_tensor()) {
			sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
		}
	}
	let norm = sq.sqrt();
	if max > 0.0 && norm > max {
		let k = max / (norm + 1e-6);
		for v in vars {
			if let Some(g) = grads.remove(v.as_tensor()) {
				grads.insert(v.as_tensor(), (g * k)?);
			}
		}
	}
	Ok(norm)
}

/// Trains `vars` (the parameters of `net` that are variables) on `train`, evaluating on `eval`
/// (or on `train` when `eval` is empty) before and after. `progress(step, total, loss)` is
/// called after every step.
pub fn run(
	net: &Net<'_>,
	vars: Vec<Var>,
	train: &[Window],
	eval: &[Window],
	source_weights: &[f64],
	args: &OptimArgs,
	device: &Device,
	label: &str,
	progress: &(dyn Fn(usize, usize, f64) + Sync),
) -> Result<RunReport> {
	args.check()?;
	ensure!(!train.is_empty(), "no training data");
	let eval_on_train = eval.is_empty();
	let eval_set = if eval_on_train { train } else { eval };
	let eval_before = evaluate(net, eval_set, args.batch_size, device)?;
	let per_epoch = epoch_order(train, source_weights, 0, args.seed).len().div_ceil(args.batch_size);
	let total = match args.max_steps {
		Some(m) => m.max(1),
		None => per_epoch.saturating_mul(args.epochs),
	};
	ensure!(
		total <= MAX_STEPS,
		"{total} optimiser steps ({per_epoch} per epoch × {} epochs) is more than {MAX_STEPS}: fewer epochs or a larger batch",
		args.epochs
	);
	let params = ParamsAdamW { lr: args.lr_at(0, total), beta1: args.beta1, beta2: args.beta2, eps: 1e-8, weight_decay: args.weight_decay };
	let trainable_parameters = vars.iter().map(|v| v.elem_count()).sum();
	let mut opt = AdamW::new(vars.clone(), params)?;
	let mut drop = Dropout::new(args.seed.wrapping_add(1));
	let bar = indicatif::ProgressBar::new(total as u64);
	bar.set_style(
		indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
			.expect("static template; qed")
			.progress_chars("=> "),
	);
	bar.set_prefix(label.to_string());
	let started = Instant::now();
	let (mut step, mut epoch, mut tokens) = (0usize, 0usize, 0u64);
	let mut loss_curve = Vec::with_capacity(total);
	'outer: loop {
		let order = epoch_order(train, source_weights, epoch as u64, args.seed);
		for batch in order.chunks(args.batch_size) {
			if step >= total {
				break 'outer;
			}
			let refs: Vec<&Window> = batch.iter().map(|&i| &train[i]).collect();
			let (ids, targets, mask) = collate(&refs, device)?;
			let loss = masked_nll(&net.forward(&ids, Some(&mut drop))?, &targets, &mask)?;
			let mut grads = loss.backward()?;
			clip(&mut grads, &vars, args.max_grad_norm)?;
			opt.set_learning_rate(args.lr_at(step, total));
			opt.step(&grads)?;
			let l = loss.to_scalar::<f32>()? as f64;
			tokens += refs.iter().map(|w| (w.tokens.len() - 1) as u64).sum::<u64>();
			loss_curve.push((step, l));
			step += 1;
			let tps = tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
			bar.set_message(format!("loss {l:.4} · {tps:.0} tok/s · lr {:.2e}", args.lr_at(step - 1, total)));
			bar.inc(1);
			progress(step, total, l);
		}
		epoch += 1;
		if args.max_steps.is_none() && epoch >= args.epochs {
			break;
		}
	}
	bar.finish();
	let seconds = started.elapsed().as_secs_f64();
	let eval_after = evaluate(net, eval_set, args.batch_size, device)?;
	Ok(RunReport {
		steps: step,
		epochs: epoch,
		train_windows: train.len(),
		train_tokens: tokens,
		seconds,
		tokens_per_second: tokens as f64 / seconds.max(1e-9),
		trainable_parameters,
		loss_curve,
		eval_before,
		eval_after,
		eval_on_train,
	})
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn http_and_command_line_share_defaults() {
		let d = OptimArgs::default();
		assert_eq!((d.lr, d.epochs, d.batch_size, d.max_steps, d.schedule), (2e-3, 3, 8, None, Schedule::Cosine));
		let partial: OptimArgs = serde_json::from_str(r#"{"max_steps": 20, "lr": 0.01}"#).unwrap();
		assert_eq!(partial, OptimArgs { max_steps: Some(20), lr: 0.01, ..d });
		assert!(serde_json::from_str::<OptimArgs>(r#"{"learning_rate": 1}"#).is_err(), "unknown knobs are refused");
		let l = crate::factory::LoraArgs::default();
		assert_eq!((l.rank, l.alpha, l.target_modules.len()), (8, 16, 4));
	}

	#[test]
	fn schedule_warms_up_then_decays() {
		let mut a = OptimArgs {
			lr: 1.0, schedule: Schedule::Cosine, warmup: 0.1, weight_decay: 0.0, beta1: 0.9, beta2: 0.999,
			max_grad_norm: 1.0, epochs: 1, max_steps: None, batch_size: 1, max_seq_len: 8, eval_fraction: 0.1, seed: 0,
		};
		assert!((a.lr_at(0, 100) - 0.1).abs() < 1e-9);
		assert!((a.lr_at(9, 100) - 1.0).abs() < 1e-9);
		assert!((a.lr_at(10, 100) - 1.0).abs() < 1e-9);
		assert!(a.lr_at(99, 100) < 0.01);
		a.schedule = Schedule::Linear;
		assert!((a.lr_at(55, 100) - 0.5).abs() < 1e-9);
		a.schedule = Schedule::Constant;
		assert_eq!(a.lr_at(99, 100), 1.0);
		a.warmup = 1.5;
		assert!(a.check().is_err());
	}
}
