//! What the scheduler asks of a model (TGI's split: validation → queue → backend): run one
//! ragged step over many sequences, each feeding its own tokens into its own state, and give
//! logits for the rows that sample. HTTP, billing and attribution never see a backend; another
//! model family, a paged-KV or a CUDA-kernel backend plugs in here.
//!
//! [`CandleBackend`] is the candle Llama-family model; [`ScriptedBackend`] is a test double
//! whose answers are a fixed function of the tokens it was fed, and which records every step.

use crate::model::llama::{block_slots, Llama, PagedKv, PagedRow};
use crate::model::lora::LoraAdapter;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Shape facts the scheduler and admission need.
#[derive(Clone, Debug)]
pub struct BackendInfo {
	/// Width of a logits row.
	pub vocab_size: usize,
	/// Longest sequence (prompt + answer) a sequence may reach.
	pub max_positions: usize,
	/// Token ids that end a sequence (the model's; the scheduler adds the tokenizer's).
	pub eos: Vec<u32>,
	/// Bytes of KV memory one position takes (K and V in every layer), to size the block pool.
	pub kv_bytes_per_token: usize,
}

/// One row of a step: a sequence (`id`, unique while it lives) feeds `tokens` at positions
/// `pos‥`, its keys and values in the pool blocks `blocks` (its block table: position `p` in
/// block `blocks[p / block_size]`), with its adapter, and samples after this step or not (a
/// chunk in the middle of a prompt does not).
pub struct StepRow<'a> {
	pub id: u64,
	pub tokens: &'a [u32],
	pub pos: usize,
	pub blocks: &'a [u32],
	pub adapter: Option<&'a LoraAdapter>,
	pub sample: bool,
}

pub trait Backend: Send + 'static {
	fn info(&self) -> BackendInfo;
	/// Makes the KV pool: `blocks` blocks of `block_size` positions each, all its memory at once
	/// with `reserve` (else as blocks are first used). Called once, before any step.
	fn init_pool(&mut self, blocks: usize, block_size: usize, reserve: bool) -> anyhow::Result<()>;
	/// Runs one step: writes each row's keys and values into its blocks and reads its earlier
	/// positions from them (blocks shared by several rows hold the same prefix and are only
	/// read). Returns one logits row (`vocab_size` wide) per row with `sample` set, in row order
	/// (the scheduler masks ids never sampled). On error the blocks written this step are
	/// undefined (the scheduler fails those sequences).
	fn step(&mut self, rows: &[StepRow<'_>]) -> anyhow::Result<Vec<Vec<f32>>>;
	/// Copies the keys and values of positions `0‥positions` (in `blocks`, as a block table)
	/// out of the pool into host memory, for a sequence about to be preempted: its blocks are
	/// freed next and [`Backend::swap_in`] puts the copy back into whatever blocks it gets on
	/// readmission, instead of recomputing it. A backend that cannot swap says so (`Err`); the
	/// sequence is then recomputed.
	fn swap_out(&mut self, blocks: &[u32], positions: usize) -> anyhow::Result<SwappedKv> {
		let _ = (blocks, positions);
		anyhow::bail!("this backend does not swap")
	}
	/// Writes a swapped-out copy into `blocks` (a block table of at least `kv.positions`
	/// positions). On error the blocks are undefined (the scheduler recomputes the sequence).
	fn swap_in(&mut self, kv: SwappedKv, blocks: &[u32]) -> anyhow::Result<()> {
		let _ = (kv, blocks);
		anyhow::bail!("this backend does not swap")
	}
}

/// Keys and values of a preempted sequence's first `positions` positions, in host memory, in the
/// form its backend wrote them.
pub struct SwappedKv {
	pub positions: usize,
	pub data: Box<dyn std::any::Any + Send>,
}

/// The candle model over a [`PagedKv`] pool.
pub struct CandleBackend {
	pub model: Arc<Llama>,
	kv: Option<PagedKv>,
}

impl CandleBackend {
	pub fn new(model: Arc<Llama>) -> Self {
		Self { model, kv: None }
	}
}

impl Backend for CandleBackend {
	fn info(&self) -> BackendInfo {
		let c = &self.model.cfg;
		BackendInfo {
			vocab_size: c.vocab_size,
			max_positions: c.max_position_embeddings,
			eos: c.eos_ids(),
			kv_bytes_per_token: 2 * c.num_hidden_layers * c.kv_heads() * c.head_dim() * self.model.dtype.size_in_bytes(),
		}
	}

	fn init_pool(&mut self, blocks: usize, block_size: usize, reserve: bool) -> anyhow::Result<()> {
		let mut kv = PagedKv::new(&self.model, blocks, block_size)?;
		if reserve {
			kv.reserve_all()?;
		}
		self.kv = Some(kv);
		Ok(())
	}

	fn step(&mut self, rows: &[StepRow<'_>]) -> anyhow::Result<Vec<Vec<f32>>> {
		let kv = self.kv.as_mut().ok_or_else(|| anyhow::anyhow!("no KV pool"))?;
		let sample: Vec<bool> = rows.iter().map(|r| r.sample).collect();
		let paged: Vec<PagedRow<'_>> = rows.iter().map(|r| PagedRow { tokens: r.tokens, pos: r.pos, blocks: r.blocks, adapter: r.adapter }).collect();
		match self.model.forward_paged(kv, &paged, &sample)? {
			Some(logits) => Ok(logits.to_vec2::<f32>()?),
			None => Ok(Vec::new()),
		}
	}

	fn swap_out(&mut self, blocks: &[u32], positions: usize) -> anyhow::Result<SwappedKv> {
		let kv = self.kv.as_ref().ok_or_else(|| anyhow::anyhow!("no KV pool"))?;
		let slots = kv.slots(blocks, positions)?;
		Ok(SwappedKv { positions, data: Box::new(kv.copy_out(&slots)?) })
	}

	fn swap_in(&mut self, swapped: SwappedKv, blocks: &[u32]) -> anyhow::Result<()> {
		let kv = self.kv.as_mut().ok_or_else(|| anyhow::anyhow!("no KV pool"))?;
		let slots = kv.slots(blocks, swapped.positions)?;
		let layers = swapped.data.downcast::<Vec<(candle_core::Tensor, candle_core::Tensor)>>().map_err(|_| anyhow::anyhow!("a swapped copy of another backend"))?;
		kv.copy_in(&slots, &layers)?;
		Ok(())
	}
}

/// What a [`ScriptedBackend`] step saw: per row, (sequence id, tokens fed, position before,
/// sampled, block table).
pub type StepLog = Vec<(u64, Vec<u32>, usize, bool, Vec<u32>)>;

/// A test double with a KV pool of its own: every position's slot holds the token fed there,
/// and a row's next token is [`ScriptedBackend::next`] of the tokens *read back from its
/// blocks* for all its positions, so a wrong block table, a block shared between different
/// prefixes or a slot overwritten by another sequence changes the answer. An error when a row
/// feeds `fail_on`. Records every step.
pub struct ScriptedBackend {
	pub vocab: usize,
	pub max_positions: usize,
	pub eos: Vec<u32>,
	pub fail_on: Option<u32>,
	/// Time each step takes (a real model is not instant).
	pub step_time: Option<std::time::Duration>,
	/// Every step, shared with whoever keeps a clone (the backend moves into the engine thread).
	pub steps: Arc<Mutex<Vec<StepLog>>>,
	/// Swaps out and in so far, shared like `steps`.
	pub swaps: Arc<Mutex<(usize, usize)>>,
	/// Refuses every swap-out (the scheduler must recompute instead).
	pub refuse_swap: bool,
	/// Forgets what a swapped-out sequence's slots held (as if its blocks were reused at once),
	/// so a swap-in that writes nothing leaves positions never written. Only where no other
	/// sequence shares those blocks.
	pub forget_swapped: bool,
	/// The pool: (blocks, block size) and what each written slot holds.
	pool: Option<(usize, usize)>,
	slots: HashMap<usize, u32>,
}

impl ScriptedBackend {
	pub fn new(vocab: usize, max_positions: usize) -> Self {
		Self { vocab, max_positions, eos: Vec::new(), fail_on: None, step_time: None, steps: Arc::default(), swaps: Arc::default(), refuse_swap: false, forget_swapped: false, pool: None, slots: HashMap::new() }
	}
	/// The token the script answers after the tokens `context` (every position, in order).
	pub fn next(&self, context: &[u32]) -> u32 {
		let last = *context.last().expect("a context has a token; qed") as u64;
		let sum: u64 = context.iter().enumerate().map(|(i, &t)| (i as u64 + 1) * t as u64).sum();
		((7 * last + 3 * context.len() as u64 + sum + 1) % self.vocab as u64) as u32
	}
}

impl Backend for ScriptedBackend {
	fn info(&self) -> BackendInfo {
		BackendInfo { vocab_size: self.vocab, max_positions: self.max_positions, eos: self.eos.clone(), kv_bytes_per_token: 16 }
	}

	fn init_pool(&mut self, blocks: usize, block_size: usize, _reserve: bool) -> anyhow::Result<()> {
		self.pool = Some((blocks, block_size));
		Ok(())
	}

	fn step(&mut self, rows: &[StepRow<'_>]) -> anyhow::Result<Vec<Vec<f32>>> {
		let (total, bs) = self.pool.ok_or_else(|| anyhow::anyhow!("no KV pool"))?;
		if let Some(t) = self.step_time {
			std::thread::sleep(t);
		}
		self.steps
			.lock()
			.expect("not poisoned; qed")
			.push(rows.iter().map(|r| (r.id, r.tokens.to_vec(), r.pos, r.sample, r.blocks.to_vec())).collect());
		let slot = |blocks: &[u32], p: usize| -> anyhow::Result<usize> {
			let b = *blocks.get(p / bs).ok_or_else(|| anyhow::anyhow!("position {p} past the block table"))? as usize;
			anyhow::ensure!(b < total, "block {b} outside the pool");
			Ok(b * bs + p % bs)
		};
		let mut out = Vec::new();
		for r in rows {
			anyhow::ensure!(!r.tokens.is_empty(), "a row brings no tokens");
			if let Some(bad) = self.fail_on.filter(|t| r.tokens.contains(t)) {
				anyhow::bail!("scripted failure on token {bad}");
			}
			anyhow::ensure!(r.pos + r.tokens.len() <= self.max_positions, "past max_positions");
			for (i, &t) in r.tokens.iter().enumerate() {
				self.slots.insert(slot(r.blocks, r.pos + i)?, t);
			}
		}
		// Read after every row has written: a slot two rows both wrote shows only one of them.
		for r in rows.iter().filter(|r| r.sample) {
			let context = (0..r.pos + r.tokens.len())
				.map(|p| self.slots.get(&slot(r.blocks, p)?).copied().ok_or_else(|| anyhow::anyhow!("position {p} never written")))
				.collect::<anyhow::Result<Vec<u32>>>()?;
			let mut logits = vec![0f32; self.vocab];
			logits[self.next(&context) as usize] = 1.0;
			out.push(logits);
		}
		Ok(out)
	}

	fn swap_out(&mut self, blocks: &[u32], positions: usize) -> anyhow::Result<SwappedKv> {
		let (total, bs) = self.pool.ok_or_else(|| anyhow::anyhow!("no KV pool"))?;
		anyhow::ensure!(!self.refuse_swap, "scripted refusal to swap");
		let slots = block_slots(blocks, bs, total, positions)?;
		let tokens = slots
			.iter()
			.map(|s| self.slots.get(&(*s as usize)).copied().ok_or_else(|| anyhow::anyhow!("slot {s} never written")))
			.collect::<anyhow::Result<Vec<u32>>>()?;
		if self.forget_swapped {
			for s in slots {
				self.slots.remove(&(s as usize));
			}
		}
		self.swaps.lock().expect("not poisoned; qed").0 += 1;
		Ok(SwappedKv { positions, data: Box::new(tokens) })
	}

	fn swap_in(&mut self, kv: SwappedKv, blocks: &[u32]) -> anyhow::Result<()> {
		let (total, bs) = self.pool.ok_or_else(|| anyhow::anyhow!("no KV pool"))?;
		let tokens = kv.data.downcast::<Vec<u32>>().map_err(|_| anyhow::anyhow!("a swapped copy of another backend"))?;
		anyhow::ensure!(tokens.len() == kv.positions, "a copy of {} positions said to hold {}", tokens.len(), kv.positions);
		for (s, t) in block_slots(blocks, bs, total, kv.positions)?.into_iter().zip(tokens.iter()) {
			self.slots.insert(s as usize, *t);
		}
		self.swaps.lock().expect("not poisoned; qed").1 += 1;
		Ok(())
	}
}
