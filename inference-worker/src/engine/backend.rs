//! What the scheduler asks of a model (TGI's split: validation → queue → backend): run one
//! ragged step over many sequences, each feeding its own tokens into its own state, and give
//! logits for the rows that sample. HTTP, billing and attribution never see a backend; another
//! model family, a paged-KV or a CUDA-kernel backend plugs in here.
//!
//! [`CandleBackend`] is the candle Llama-family model; [`ScriptedBackend`] is a test double
//! whose answers are a fixed function of the tokens it was fed, and which records every step.

use crate::model::llama::{KvCache, Llama, Row};
use crate::model::lora::LoraAdapter;
use std::sync::{Arc, Mutex};

/// Shape facts the scheduler and admission need.
#[derive(Clone, Debug)]
pub struct BackendInfo {
	/// Width of a logits row.
	pub vocab_size: usize,
	/// Longest sequence (prompt + answer) a sequence's state may hold.
	pub max_positions: usize,
	/// Token ids that end a sequence (the model's; the scheduler adds the tokenizer's).
	pub eos: Vec<u32>,
	/// Bytes of state one position takes (K and V in every layer), for the KV budget.
	pub kv_bytes_per_token: usize,
}

/// One row of a step: the tokens a sequence feeds, its state, its adapter, and whether it
/// samples after this step (a chunk in the middle of a prompt does not).
pub struct StepRow<'a, S> {
	pub tokens: &'a [u32],
	pub state: &'a mut S,
	pub adapter: Option<&'a LoraAdapter>,
	pub sample: bool,
}

pub trait Backend: Send + Sync + 'static {
	/// One sequence's state (its KV cache).
	type State: Send;
	fn info(&self) -> BackendInfo;
	/// The state of a new sequence that may grow to `reserved` positions.
	fn new_state(&self, reserved: usize) -> Self::State;
	/// Runs one step. Returns one logits row (`vocab_size` wide) per row with `sample` set, in
	/// row order (the scheduler masks ids never sampled). On error the states of this step's
	/// rows are undefined (the scheduler fails those sequences).
	fn step(&self, rows: &mut [StepRow<'_, Self::State>]) -> anyhow::Result<Vec<Vec<f32>>>;
}

/// The candle model: every row's K/V in its own [`KvCache`], written in place.
pub struct CandleBackend {
	pub model: std::sync::Arc<Llama>,
}

impl CandleBackend {
	pub fn new(model: std::sync::Arc<Llama>) -> Self {
		Self { model }
	}
}

impl Backend for CandleBackend {
	type State = KvCache;

	fn info(&self) -> BackendInfo {
		let c = &self.model.cfg;
		BackendInfo {
			vocab_size: c.vocab_size,
			max_positions: c.max_position_embeddings,
			eos: c.eos_ids(),
			kv_bytes_per_token: 2 * c.num_hidden_layers * c.kv_heads() * c.head_dim() * self.model.dtype.size_in_bytes(),
		}
	}

	fn new_state(&self, reserved: usize) -> KvCache {
		KvCache::with_capacity(reserved)
	}

	fn step(&self, rows: &mut [StepRow<'_, KvCache>]) -> anyhow::Result<Vec<Vec<f32>>> {
		let sample: Vec<bool> = rows.iter().map(|r| r.sample).collect();
		let mut model_rows: Vec<Row<'_>> =
			rows.iter_mut().map(|r| Row { tokens: r.tokens, cache: &mut *r.state, adapter: r.adapter }).collect();
		match self.model.forward_sampling(&mut model_rows, &sample)? {
			Some(logits) => Ok(logits.to_vec2::<f32>()?),
			None => Ok(Vec::new()),
		}
	}
}

/// What a [`ScriptedBackend`] step saw: per row, (sequence number in order of creation,
/// tokens fed, position before, sampled).
pub type StepLog = Vec<(u64, Vec<u32>, usize, bool)>;

/// A test double: a sequence's next token is `(7·last + 3·position + 1) mod vocab`, where
/// `position` is how many tokens it has fed; an error when a row feeds `fail_on`. Records
/// every step.
pub struct ScriptedBackend {
	pub vocab: usize,
	pub max_positions: usize,
	pub eos: Vec<u32>,
	pub fail_on: Option<u32>,
	/// Every step, shared with whoever keeps a clone (the backend moves into the engine thread).
	pub steps: Arc<Mutex<Vec<StepLog>>>,
	created: std::sync::atomic::AtomicU64,
}

impl ScriptedBackend {
	pub fn new(vocab: usize, max_positions: usize) -> Self {
		Self { vocab, max_positions, eos: Vec::new(), fail_on: None, steps: Arc::default(), created: Default::default() }
	}
	/// The token the script answers after feeding `last` at `position`.
	pub fn next(&self, last: u32, position: usize) -> u32 {
		((7 * last as u64 + 3 * position as u64 + 1) % self.vocab as u64) as u32
	}
}

impl Backend for ScriptedBackend {
	/// (sequence number, positions fed).
	type State = (u64, usize);

	fn info(&self) -> BackendInfo {
		BackendInfo { vocab_size: self.vocab, max_positions: self.max_positions, eos: self.eos.clone(), kv_bytes_per_token: 16 }
	}

	fn new_state(&self, _reserved: usize) -> (u64, usize) {
		(self.created.fetch_add(1, std::sync::atomic::Ordering::SeqCst), 0)
	}

	fn step(&self, rows: &mut [StepRow<'_, (u64, usize)>]) -> anyhow::Result<Vec<Vec<f32>>> {
		self.steps.lock().expect("not poisoned; qed").push(rows.iter().map(|r| (r.state.0, r.tokens.to_vec(), r.state.1, r.sample)).collect());
		let mut out = Vec::new();
		for r in rows.iter_mut() {
			anyhow::ensure!(!r.tokens.is_empty(), "a row brings no tokens");
			if let Some(bad) = self.fail_on.filter(|t| r.tokens.contains(t)) {
				anyhow::bail!("scripted failure on token {bad}");
			}
			r.state.1 += r.tokens.len();
			anyhow::ensure!(r.state.1 <= self.max_positions, "past max_positions");
			if r.sample {
				let mut logits = vec![0f32; self.vocab];
				logits[self.next(*r.tokens.last().expect("not empty; qed"), r.state.1) as usize] = 1.0;
				out.push(logits);
			}
		}
		Ok(out)
	}
}
