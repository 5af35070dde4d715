//! A Llama-family decoder (Llama, Mistral, Qwen2) in candle that runs *ragged* batches: every
//! row is one sequence with its own KV cache, position and LoRA adapter, and brings one token
//! (decode) or many (prefill). Projections and the MLP run once over all rows' tokens; only
//! attention runs per row, against that row's cache.

use super::config::LlamaConfig;
use super::gemm::Panels;
use super::gemv::convert;
use super::lora::{LoraAdapter, LoraBatch, LoraPath};
use anyhow::Context;
use candle_core::{DType, Device, IndexOp, Module, Tensor, D};
use candle_nn::{Embedding, RmsNorm, VarBuilder};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// One layer's keys and values: `[kv_heads, capacity, head_dim]` buffers, the first `len`
/// positions in use.
struct LayerKv {
	k: Tensor,
	v: Tensor,
	len: usize,
}

/// One sequence's keys and values, per layer. New tokens are written in place into buffers
/// allocated for the sequence's reserved length ([`KvCache::with_capacity`]), so a step copies
/// only its own tokens' keys and values, never the cache (a cache without a reservation doubles
/// its buffers when full: amortized O(1) copying per token).
#[derive(Default)]
pub struct KvCache {
	layers: Vec<Option<LayerKv>>,
	reserve: usize,
	/// Buffers allocated so far (every layer's first, and every growth).
	allocations: usize,
}

/// A deep copy: the clone's appends never show through the original's buffers.
impl Clone for KvCache {
	fn clone(&self) -> Self {
		let copy = |l: &LayerKv| -> LayerKv {
			LayerKv { k: l.k.copy().expect("copying a tensor; qed"), v: l.v.copy().expect("copying a tensor; qed"), len: l.len }
		};
		Self { layers: self.layers.iter().map(|l| l.as_ref().map(copy)).collect(), reserve: self.reserve, allocations: self.allocations }
	}
}

impl KvCache {
	/// A cache whose buffers are sized for `tokens` positions when first written (what the engine
	/// reserved for the sequence: prompt plus `max_tokens`).
	pub fn with_capacity(tokens: usize) -> Self {
		Self { layers: Vec::new(), reserve: tokens, allocations: 0 }
	}
	/// Tokens already in the cache (the next token's position).
	pub fn len(&self) -> usize {
		match self.layers.first() {
			Some(Some(l)) => l.len,
			_ => 0,
		}
	}
	pub fn is_empty(&self) -> bool {
		self.len() == 0
	}
	/// Buffers allocated so far, every layer's first included: constant while appends fit.
	pub fn allocations(&self) -> usize {
		self.allocations
	}
	/// Positions the buffers hold before they must grow.
	pub fn capacity(&self) -> usize {
		match self.layers.first() {
			Some(Some(l)) => l.k.dim(1).unwrap_or(0),
			_ => 0,
		}
	}
	/// Bytes held (for accounting): the allocated buffers, used or not.
	pub fn bytes(&self) -> usize {
		self.layers
			.iter()
			.flatten()
			.map(|l| (l.k.elem_count() + l.v.elem_count()) * l.k.dtype().size_in_bytes())
			.sum()
	}

	/// Appends `k`, `v` (`[kv_heads, t, head_dim]`) to layer `l`; returns the layer's keys and
	/// values so far as views `[kv_heads, len, head_dim]` (no copy).
	fn append(&mut self, l: usize, k: &Tensor, v: &Tensor, max_len: usize) -> candle_core::Result<(Tensor, Tensor)> {
		let (kvh, t, hd) = k.dims3()?;
		let (k, v) = (k.contiguous()?, v.contiguous()?);
		let used = self.layers[l].as_ref().map_or(0, |x| x.len);
		let cap = self.layers[l].as_ref().map_or(0, |x| x.k.dim(1).unwrap_or(0));
		if used + t > cap {
			let want = (used + t).max(self.reserve).max(2 * cap).min(max_len.max(used + t));
			let nk = Tensor::zeros((kvh, want, hd), k.dtype(), k.device())?;
			let nv = Tensor::zeros((kvh, want, hd), v.dtype(), v.device())?;
			if let Some(old) = &self.layers[l] {
				nk.slice_set(&old.k.narrow(1, 0, used)?.contiguous()?, 1, 0)?;
				nv.slice_set(&old.v.narrow(1, 0, used)?.contiguous()?, 1, 0)?;
			}
			self.layers[l] = Some(LayerKv { k: nk, v: nv, len: used });
			self.allocations += 1;
		}
		let layer = self.layers[l].as_mut().expect("allocated above; qed");
		layer.k.slice_set(&k, 1, used)?;
		layer.v.slice_set(&v, 1, used)?;
		layer.len = used + t;
		Ok((layer.k.narrow(1, 0, layer.len)?, layer.v.narrow(1, 0, layer.len)?))
	}
}

/// What one row of a step brings, wherever its keys and values live.
struct StepInput<'a> {
	tokens: &'a [u32],
	/// Positions already cached (the first token's position).
	pos: usize,
	adapter: Option<&'a LoraAdapter>,
}

/// Where a step's keys and values go and come from.
trait KvStore {
	/// Stores row `row`'s new keys and values of layer `l` (`[kv_heads, t, head_dim]`, at the
	/// row's next positions) and returns the row's keys and values of every position so far.
	fn append(&mut self, l: usize, row: usize, k: &Tensor, v: &Tensor) -> candle_core::Result<(Tensor, Tensor)>;
	/// Stores the new keys and values of several rows that bring one position each (`(row, k,
	/// v)`, `[kv_heads, 1, head_dim]`) and, where the store can, attends each row's query (`q`:
	/// `rows × [heads · head_dim]` f32) over the row's positions in place, all rows at once:
	/// `rows × [heads · head_dim]`. `None`: the caller calls [`KvStore::append`] for each
	/// instead (storing the same values again is harmless).
	fn append_attend_decode(&mut self, _l: usize, _rows: &[(usize, Tensor, Tensor)], _q: &[f32], _heads: usize) -> candle_core::Result<Option<Vec<f32>>> {
		Ok(None)
	}
}

/// Each row with its own [`KvCache`].
struct RowCaches<'r, 'a> {
	rows: &'r mut [Row<'a>],
	max_len: usize,
}

impl KvStore for RowCaches<'_, '_> {
	fn append(&mut self, l: usize, row: usize, k: &Tensor, v: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
		self.rows[row].cache.append(l, k, v, self.max_len)
	}
}

/// A pool of KV memory in fixed-size blocks (PagedAttention): per layer, K and V buffers of
/// `[kv_heads, blocks · block_size, head_dim]`, where position `p` of a sequence lives at slot
/// `table[p / block_size] · block_size + p % block_size`. Which sequence holds which block is
/// the scheduler's business ([`crate::engine::blocks::BlockManager`]); sequences with the same
/// prefix may hold the same blocks. The buffers grow (doubling) up to `total_blocks` as higher
/// block ids are first used, so an unbounded pool takes memory only as sequences need it.
pub struct PagedKv {
	block_size: usize,
	total_blocks: usize,
	/// Blocks the buffers hold now.
	held: usize,
	layers: Vec<Option<(Tensor, Tensor)>>,
	shape: (usize, usize, DType, Device), // kv_heads, head_dim
	/// Buffer allocations so far (for tests: growth is by doubling, appends never allocate).
	pub allocations: usize,
}

impl PagedKv {
	/// A pool of `total_blocks` blocks of `block_size` positions for `model` (no memory yet).
	pub fn new(model: &Llama, total_blocks: usize, block_size: usize) -> anyhow::Result<Self> {
		anyhow::ensure!(block_size > 0 && total_blocks > 0, "an empty KV pool");
		anyhow::ensure!(total_blocks.checked_mul(block_size).is_some_and(|s| s <= u32::MAX as usize), "a KV pool of more than 2^32 slots");
		Ok(Self {
			block_size,
			total_blocks,
			held: 0,
			layers: (0..model.blocks.len()).map(|_| None).collect(),
			shape: (model.cfg.kv_heads(), model.cfg.head_dim(), model.dtype, model.device.clone()),
			allocations: 0,
		})
	}
	pub fn block_size(&self) -> usize {
		self.block_size
	}
	/// Bytes the buffers hold now.
	pub fn bytes(&self) -> usize {
		let (kvh, hd, dtype, _) = &self.shape;
		2 * self.layers.len() * kvh * hd * self.held * self.block_size * dtype.size_in_bytes()
	}

	/// The slots of positions `0‥positions` under the block table `blocks`.
	pub fn slots(&self, blocks: &[u32], positions: usize) -> anyhow::Result<Vec<u32>> {
		block_slots(blocks, self.block_size, self.total_blocks, positions)
	}

	/// Copies of the keys and values in `slots` (in that order), every layer, in host memory:
	/// `[kv_heads, slots.len(), head_dim]` each.
	pub fn copy_out(&self, slots: &[u32]) -> candle_core::Result<Vec<(Tensor, Tensor)>> {
		let (.., device) = &self.shape;
		if slots.iter().any(|&s| s as usize >= self.held * self.block_size) {
			candle_core::bail!("a slot past the pool's memory");
		}
		let index = Tensor::new(slots, device)?;
		self.layers
			.iter()
			.map(|layer| {
				let (k, v) = layer.as_ref().ok_or_else(|| candle_core::Error::Msg("a layer without memory".into()))?;
				Ok((k.index_select(&index, 1)?.to_device(&Device::Cpu)?, v.index_select(&index, 1)?.to_device(&Device::Cpu)?))
			})
			.collect()
	}

	/// Writes copies made by [`Self::copy_out`] into `slots` (any slots: the blocks a sequence
	/// got back need not be the ones it had).
	pub fn copy_in(&mut self, slots: &[u32], layers: &[(Tensor, Tensor)]) -> candle_core::Result<()> {
		if layers.len() != self.layers.len() {
			candle_core::bail!("a copy of {} layers for a pool of {}", layers.len(), self.layers.len());
		}
		let need = slots.iter().max().map_or(0, |&s| s as usize / self.block_size + 1);
		if need > self.total_blocks {
			candle_core::bail!("a slot outside the pool");
		}
		let (kvh, hd, dtype, device) = self.shape.clone();
		// Every layer checked before any is written.
		for (k, v) in layers {
			if k.dims() != [kvh, slots.len(), hd] || v.dims() != [kvh, slots.len(), hd] || k.dtype() != dtype || v.dtype() != dtype {
				candle_core::bail!("a copy of another shape or dtype");
			}
		}
		self.grow(need)?;
		for ((k, v), layer) in layers.iter().zip(&self.layers) {
			let (kb, vb) = layer.as_ref().expect("grown above; qed");
			write_slots(kb, vb, slots, &k.to_device(&device)?, &v.to_device(&device)?)?;
		}
		Ok(())
	}

	/// Allocates the whole pool now.
	pub fn reserve_all(&mut self) -> candle_core::Result<()> {
		self.grow(self.total_blocks)
	}

	/// Makes the buffers hold at least `blocks` blocks.
	fn grow(&mut self, blocks: usize) -> candle_core::Result<()> {
		if blocks <= self.held {
			return Ok(());
		}
		let want = blocks.max(2 * self.held).min(self.total_blocks);
		let (kvh, hd, dtype, device) = self.shape.clone();
		let slots = want * self.block_size;
		let used = self.held * self.block_size;
		for layer in self.layers.iter_mut() {
			let (nk, nv) = (Tensor::zeros((kvh, slots, hd), dtype, &device)?, Tensor::zeros((kvh, slots, hd), dtype, &device)?);
			if let Some((k, v)) = layer.as_ref() {
				nk.slice_set(&k.narrow(1, 0, used)?.contiguous()?, 1, 0)?;
				nv.slice_set(&v.narrow(1, 0, used)?.contiguous()?, 1, 0)?;
			}
			*layer = Some((nk, nv));
		}
		self.allocations += 1;
		self.held = want;
		Ok(())
	}
}

/// The slots of positions `0‥positions` under a block table of a pool of `total_blocks` blocks of
/// `block_size` positions (position `p` in block `blocks[p / block_size]`).
pub fn block_slots(blocks: &[u32], block_size: usize, total_blocks: usize, positions: usize) -> anyhow::Result<Vec<u32>> {
	anyhow::ensure!(blocks.len() * block_size >= positions, "a block table of {} blocks for {positions} positions", blocks.len());
	(0..positions)
		.map(|p| {
			let b = blocks[p / block_size] as usize;
			anyhow::ensure!(b < total_blocks, "block {b} outside the pool of {total_blocks}");
			// Below total_blocks × block_size, which fits a u32 (`PagedKv::new`).
			Ok((b * block_size + p % block_size) as u32)
		})
		.collect()
}

/// One row of a step over a [`PagedKv`] pool.
pub struct PagedRow<'a> {
	pub tokens: &'a [u32],
	/// Positions already in the row's blocks.
	pub pos: usize,
	/// The row's block table: at least `ceil((pos + tokens.len()) / block_size)` block ids.
	pub blocks: &'a [u32],
	pub adapter: Option<&'a LoraAdapter>,
}

/// A step over a pool: every row's slots for positions `0‥pos + t`.
struct PagedStep<'a> {
	kv: &'a mut PagedKv,
	slots: Vec<Vec<u32>>,
	index: Vec<Tensor>,
}

impl PagedStep<'_> {
	fn write(&mut self, l: usize, row: usize, k: &Tensor, v: &Tensor) -> candle_core::Result<()> {
		let t = k.dim(1)?;
		let slots = &self.slots[row];
		let (kb, vb) = self.kv.layers[l].as_ref().expect("the pool grows before the step; qed");
		write_slots(kb, vb, &slots[slots.len() - t..], k, v)
	}
}

/// Writes positions `j` of `k`, `v` (`[kv_heads, t, head_dim]`) into slots `slots[j]` of the
/// pool buffers `kb`, `vb`, in runs of consecutive slots (a run never crosses a block).
fn write_slots(kb: &Tensor, vb: &Tensor, slots: &[u32], k: &Tensor, v: &Tensor) -> candle_core::Result<()> {
	let (k, v) = (k.contiguous()?, v.contiguous()?);
	let t = k.dim(1)?;
	if t != slots.len() {
		candle_core::bail!("{t} positions for {} slots", slots.len());
	}
	let mut j = 0;
	while j < t {
		let mut n = 1;
		while j + n < t && slots[j + n] == slots[j] + n as u32 {
			n += 1;
		}
		let at = slots[j] as usize;
		kb.slice_set(&k.narrow(1, j, n)?.contiguous()?, 1, at)?;
		vb.slice_set(&v.narrow(1, j, n)?.contiguous()?, 1, at)?;
		j += n;
	}
	Ok(())
}

impl KvStore for PagedStep<'_> {
	fn append(&mut self, l: usize, row: usize, k: &Tensor, v: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
		self.write(l, row, k, v)?;
		let (kb, vb) = self.kv.layers[l].as_ref().expect("the pool grows before the step; qed");
		// Gathered into `[kv_heads, len, head_dim]` for the general matmul (a prefill chunk's
		// many queries share the copy).
		Ok((kb.index_select(&self.index[row], 1)?, vb.index_select(&self.index[row], 1)?))
	}

	fn append_attend_decode(&mut self, l: usize, rows: &[(usize, Tensor, Tensor)], q: &[f32], heads: usize) -> candle_core::Result<Option<Vec<f32>>> {
		let (kb, vb) = self.kv.layers[l].clone().expect("the pool grows before the step; qed");
		if !matches!(kb.device(), Device::Cpu) {
			return Ok(None);
		}
		for (row, k, v) in rows {
			self.write(l, *row, k, v)?;
		}
		let slots: Vec<&[u32]> = rows.iter().map(|(row, ..)| self.slots[*row].as_slice()).collect();
		// `None` (a dtype the kernel does not read): the caller appends again — the same
		// values to the same slots — and gathers.
		super::paged_attn::attend_decode(q, &kb, &vb, &slots, heads)
	}
}

/// One row of a ragged batch.
pub struct Row<'a> {
	pub tokens: &'a [u32],
	pub cache: &'a mut KvCache,
	pub adapter: Option<&'a LoraAdapter>,
}

/// Projections of one input stacked into one matrix (q, k, v; gate, up): one kernel call reads
/// the input once and splits its work over all their output rows.
#[derive(Clone)]
struct Fused {
	proj: Proj,
	/// Output rows of each part, in order.
	sizes: Vec<usize>,
}

impl Fused {
	/// `parts`: each projection's weight `[out_i, in]` and bias (all with one, or none).
	fn new(parts: Vec<(Tensor, Option<Tensor>)>) -> candle_core::Result<Self> {
		let sizes = parts.iter().map(|(w, _)| w.dim(0)).collect::<candle_core::Result<Vec<_>>>()?;
		let w = Tensor::cat(&parts.iter().map(|(w, _)| w).collect::<Vec<_>>(), 0)?;
		let biases: Vec<&Tensor> = parts.iter().filter_map(|(_, b)| b.as_ref()).collect();
		let bias = match biases.len() {
			0 => None,
			n if n == parts.len() => Some(Tensor::cat(&biases, 0)?),
			_ => candle_core::bail!("stacked projections with and without biases"),
		};
		Ok(Self { proj: Proj::new(w, bias)?, sizes })
	}

	/// Each part's `x Wᵢᵀ + bᵢ` (views of one product).
	fn forward(&self, x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
		let y = self.proj.forward(x)?;
		let mut off = 0;
		self.sizes
			.iter()
			.map(|&n| {
				off += n;
				y.narrow(1, off - n, n)
			})
			.collect()
	}

	/// The parts as `(weight [out_i, in], bias)`, copies.
	fn parts(&self) -> candle_core::Result<Vec<(Tensor, Option<Tensor>)>> {
		let w = self.proj.weight()?;
		let mut off = 0;
		self.sizes
			.iter()
			.map(|&n| {
				off += n;
				Ok((w.narrow(0, off - n, n)?, self.proj.bias.as_ref().map(|b| b.narrow(0, off - n, n)).transpose()?))
			})
			.collect()
	}
}

#[derive(Clone)]
struct Block {
	/// q, k, v.
	qkv: Fused,
	o: Proj,
	/// gate, up.
	gate_up: Fused,
	down: Proj,
	input_norm: RmsNorm,
	post_norm: RmsNorm,
}

/// (A clone shares every tensor.)
#[derive(Clone)]
pub struct Llama {
	pub cfg: LlamaConfig,
	pub device: Device,
	/// The weights' and the KV cache's dtype (the serving dtype).
	pub dtype: DType,
	/// The activations' dtype: f32 on the CPU whatever the weights' (as llama.cpp does: the
	/// matmul kernels widen half weights as they read them, and the element-wise operations —
	/// norms, rotary, softmax, SiLU, residual adds — run in f32, where candle's CPU code is
	/// vectorized, instead of scalar half arithmetic); the serving dtype on other devices.
	pub act: DType,
	embed: Embedding,
	blocks: Vec<Block>,
	norm: RmsNorm,
	lm_head: Proj,
	cos: Tensor,
	sin: Tensor,
}

/// Query positions whose attention scores are computed at once (see `attention`).
const QUERY_BLOCK: usize = 256;

/// A projection's weight: repacked into panels for the CPU's panel kernel where it applies
/// (AVX-512; the matrix is then held only in that layout), else as loaded.
#[derive(Clone)]
enum Weight {
	Plain(Tensor),
	Panels(Arc<Panels>),
}

/// A linear projection `y = x Wᵀ + b`.
#[derive(Clone)]
struct Proj {
	w: Weight,
	/// In the activations' dtype.
	bias: Option<Tensor>,
}

impl Proj {
	/// `w` (`[out, in]`), repacked where the panel kernel applies.
	fn new(w: Tensor, bias: Option<Tensor>) -> candle_core::Result<Self> {
		let w = match Panels::pack(&w)? {
			Some(p) => Weight::Panels(Arc::new(p)),
			None => Weight::Plain(w),
		};
		Ok(Self { w, bias })
	}

	/// `w` as it is (the output projection tied to the embeddings shares their matrix).
	fn plain(w: Tensor) -> Self {
		Self { w: Weight::Plain(w), bias: None }
	}

	/// The weight as `[out, in]` (a copy where it is repacked).
	fn weight(&self) -> candle_core::Result<Tensor> {
		match &self.w {
			Weight::Plain(w) => Ok(w.clone()),
			Weight::Panels(p) => p.unpack(),
		}
	}

	/// Values held: a repacked matrix's rows are padded to whole panels.
	fn held_values(&self) -> usize {
		match &self.w {
			Weight::Plain(w) => w.elem_count(),
			Weight::Panels(p) => p.dims().0.div_ceil(super::gemm::PANEL) * super::gemm::PANEL * p.dims().1,
		}
	}

	/// `x Wᵀ + b`, in f32 with `f32_out` (logits), else in `x`'s dtype:
	/// - repacked weights: the panel kernel, any number of rows;
	/// - others on the CPU: few token rows (a decode step) through the matrix × few-vectors
	///   kernels (which read half weights as they are), more through the general matmul in the
	///   weight's dtype (it takes one dtype), the activations narrowed to it and back;
	/// - other devices: the general matmul.
	fn forward_as(&self, x: &Tensor, f32_out: bool) -> candle_core::Result<Tensor> {
		let out = if f32_out { DType::F32 } else { x.dtype() };
		let y = match &self.w {
			Weight::Panels(p) => {
				let (m, k) = x.dims2()?;
				let (n, pk) = p.dims();
				if k != pk {
					candle_core::bail!("a {k}-wide input for a {n}×{pk} projection");
				}
				let xs: Vec<f32> = convert(x, DType::F32)?.flatten_all()?.to_vec1()?;
				convert(&Tensor::from_vec(p.matmul(&xs, m), (m, n), x.device())?, out)?
			},
			Weight::Plain(w) => match super::gemv::matmul_t(x, w, f32_out)? {
				Some(y) => y,
				None if x.dtype() == w.dtype() => convert(&x.matmul(&w.t()?)?, out)?,
				// The activations narrowed to the weight's dtype and back: widening the weight
				// instead would copy the whole matrix (the tied output projection: the embeddings)
				// at every call.
				None => convert(&convert(&convert(x, w.dtype())?.matmul(&w.t()?)?, x.dtype())?, out)?,
			},
		};
		match &self.bias {
			Some(b) => y.broadcast_add(&convert(b, out)?),
			None => Ok(y),
		}
	}

	fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
		self.forward_as(x, false)
	}
}

/// A projection's weight (in the serving dtype) and bias (in the activations' `act`).
fn linear(vb: &VarBuilder, name: &str, out_dim: usize, in_dim: usize, bias: bool, act: DType) -> candle_core::Result<(Tensor, Option<Tensor>)> {
	let vb = vb.pp(name);
	let w = vb.get((out_dim, in_dim), "weight")?;
	let b = if bias { Some(vb.get(out_dim, "bias")?.to_dtype(act)?) } else { None };
	Ok((w, b))
}

/// An RMS norm whose weight is in the activations' dtype `act`.
fn rms_norm(vb: VarBuilder, size: usize, eps: f64, act: DType) -> candle_core::Result<RmsNorm> {
	Ok(RmsNorm::new(vb.get(size, "weight")?.to_dtype(act)?, eps))
}

impl Llama {
	/// Loads a Hugging Face model folder: `config.json` and `model.safetensors`, or the shards
	/// listed in `model.safetensors.index.json`.
	pub fn load_dir(dir: &Path, dtype: DType, device: &Device) -> anyhow::Result<Self> {
		let cfg: LlamaConfig = serde_json::from_slice(
			&std::fs::read(dir.join("config.json")).with_context(|| format!("reading {}/config.json", dir.display()))?,
		)
		.context("config.json")?;
		let files = safetensors_files(dir)?;
		// Safety: the files are memory-mapped read-only; the model folder must not be modified
		// while the worker runs (the same contract as every safetensors loader).
		let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, device)? };
		Self::load(vb, cfg)
	}

	pub fn load(vb: VarBuilder, cfg: LlamaConfig) -> anyhow::Result<Self> {
		cfg.validate()?;
		let (h, hd) = (cfg.hidden_size, cfg.head_dim());
		let (nh, kvh) = (cfg.num_attention_heads, cfg.kv_heads());
		let device = vb.device().clone();
		let dtype = vb.dtype();
		let act = if device.is_cpu() { DType::F32 } else { dtype };
		let m = vb.pp("model");
		let embed = Embedding::new(m.pp("embed_tokens").get((cfg.vocab_size, h), "weight")?, h);
		let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
		for i in 0..cfg.num_hidden_layers {
			let b = m.pp(format!("layers.{i}"));
			let a = b.pp("self_attn");
			let bias = cfg.qkv_bias();
			let qkv = Fused::new(vec![
				linear(&a, "q_proj", nh * hd, h, bias, act)?,
				linear(&a, "k_proj", kvh * hd, h, bias, act)?,
				linear(&a, "v_proj", kvh * hd, h, bias, act)?,
			])?;
			let (o, _) = linear(&a, "o_proj", h, nh * hd, false, act)?;
			let f = b.pp("mlp");
			let gate_up = Fused::new(vec![
				linear(&f, "gate_proj", cfg.intermediate_size, h, false, act)?,
				linear(&f, "up_proj", cfg.intermediate_size, h, false, act)?,
			])?;
			let (down, _) = linear(&f, "down_proj", h, cfg.intermediate_size, false, act)?;
			blocks.push(Block {
				qkv,
				o: Proj::new(o, None)?,
				gate_up,
				down: Proj::new(down, None)?,
				input_norm: rms_norm(b.pp("input_layernorm"), h, cfg.rms_norm_eps, act)?,
				post_norm: rms_norm(b.pp("post_attention_layernorm"), h, cfg.rms_norm_eps, act)?,
			});
		}
		let norm = rms_norm(m.pp("norm"), h, cfg.rms_norm_eps, act)?;
		let lm_head = if cfg.tie_word_embeddings || !vb.contains_tensor("lm_head.weight") {
			Proj::plain(embed.embeddings().clone())
		} else {
			Proj::new(vb.pp("lm_head").get((cfg.vocab_size, h), "weight")?, None)?
		};
		let inv: Vec<f32> =
			(0..hd / 2).map(|i| 1.0 / (cfg.rope_theta as f32).powf(2.0 * i as f32 / hd as f32)).collect();
		let inv = Tensor::from_vec(inv, (1, hd / 2), &device)?;
		let pos = Tensor::arange(0u32, cfg.max_position_embeddings as u32, &device)?
			.to_dtype(DType::F32)?
			.reshape((cfg.max_position_embeddings, 1))?;
		let freqs = pos.matmul(&inv)?;
		let cos = freqs.cos()?.to_dtype(act)?;
		let sin = freqs.sin()?.to_dtype(act)?;
		Ok(Self { cfg, device, dtype, act, embed, blocks, norm, lm_head, cos, sin })
	}

	/// A copy of this model whose projections are `W + scale·BA` of `adapter` (the merge-per-request
	/// way of serving an adapter; the reference for tests and the baseline for benchmarks).
	/// Unchanged tensors (embeddings, norms, untargeted projections) are shared, not copied.
	pub fn merged(&self, adapter: &LoraAdapter) -> anyhow::Result<Self> {
		let mut blocks = Vec::with_capacity(self.blocks.len());
		// Projection `p` (index into `PROJECTIONS`) of layer `l` with the adapter's delta merged.
		let merge = |l: usize, p: usize, w: Tensor| adapter.merged_weight(l, p, &w);
		let merge_one = |l: usize, p: usize, proj: &Proj| -> anyhow::Result<Proj> {
			Ok(if adapter.pair(l, p).is_some() { Proj::new(merge(l, p, proj.weight()?)?, proj.bias.clone())? } else { proj.clone() })
		};
		let merge_fused = |l: usize, first: usize, f: &Fused| -> anyhow::Result<Fused> {
			if !(0..f.sizes.len()).any(|i| adapter.pair(l, first + i).is_some()) {
				return Ok(f.clone());
			}
			let parts = f.parts()?.into_iter().enumerate().map(|(i, (w, b))| Ok((merge(l, first + i, w)?, b))).collect::<anyhow::Result<Vec<_>>>()?;
			Ok(Fused::new(parts)?)
		};
		for (l, b) in self.blocks.iter().enumerate() {
			blocks.push(Block {
				qkv: merge_fused(l, 0, &b.qkv)?,
				o: merge_one(l, 3, &b.o)?,
				gate_up: merge_fused(l, 4, &b.gate_up)?,
				down: merge_one(l, 6, &b.down)?,
				input_norm: b.input_norm.clone(),
				post_norm: b.post_norm.clone(),
			});
		}
		Ok(Self { blocks, ..self.clone() })
	}

	/// This model with every projection's weight as loaded, never repacked into panels: the
	/// matrix × few-vectors kernels and the general matmul, as on CPUs without AVX-512 (tests
	/// and benches run both ways on any CPU).
	pub fn with_plain_weights(&self) -> anyhow::Result<Self> {
		let plain = |p: &Proj| -> anyhow::Result<Proj> { Ok(Proj { w: Weight::Plain(p.weight()?), bias: p.bias.clone() }) };
		let fused = |f: &Fused| -> anyhow::Result<Fused> { Ok(Fused { proj: plain(&f.proj)?, sizes: f.sizes.clone() }) };
		let mut blocks = Vec::with_capacity(self.blocks.len());
		for b in &self.blocks {
			blocks.push(Block {
				qkv: fused(&b.qkv)?,
				o: plain(&b.o)?,
				gate_up: fused(&b.gate_up)?,
				down: plain(&b.down)?,
				input_norm: b.input_norm.clone(),
				post_norm: b.post_norm.clone(),
			});
		}
		Ok(Self { blocks, lm_head: plain(&self.lm_head)?, ..self.clone() })
	}

	/// How many projections are repacked for the panel kernel (none off AVX-512 CPUs).
	pub fn repacked_projections(&self) -> usize {
		let packed = |p: &Proj| matches!(p.w, Weight::Panels(_)) as usize;
		self.blocks.iter().map(|b| packed(&b.qkv.proj) + packed(&b.o) + packed(&b.gate_up.proj) + packed(&b.down)).sum::<usize>() +
			packed(&self.lm_head)
	}

	/// Bytes of the base weights as held (repacked matrices with their panels' padding).
	pub fn weight_bytes(&self) -> usize {
		let mut n = self.embed.embeddings().elem_count();
		for b in &self.blocks {
			n += [&b.qkv.proj, &b.o, &b.gate_up.proj, &b.down].iter().map(|p| p.held_values()).sum::<usize>();
		}
		if !self.cfg.tie_word_embeddings {
			n += self.lm_head.held_values();
		}
		n * self.dtype.size_in_bytes()
	}

	/// Runs one step for every row, appending to each row's cache, and returns the logits of
	/// each row's last token as `[rows, vocab]` in f32.
	pub fn forward(&self, rows: &mut [Row<'_>]) -> anyhow::Result<Tensor> {
		self.forward_opts(rows, LoraPath::Auto)
	}

	/// [`Self::forward`] through a chosen LoRA path (tests compare them; any works on any device).
	pub fn forward_opts(&self, rows: &mut [Row<'_>], path: LoraPath) -> anyhow::Result<Tensor> {
		self.forward_select(rows, None, path)?.ok_or_else(|| anyhow::anyhow!("no row to give logits for"))
	}

	/// [`Self::forward`] computing logits only for the rows with `sample[i]` set (`[k, vocab]`,
	/// in row order; `None` when no row samples): a row in the middle of a chunked prompt
	/// samples nothing, so the output projection (the widest matmul: vocab × hidden) skips it.
	pub fn forward_sampling(&self, rows: &mut [Row<'_>], sample: &[bool]) -> anyhow::Result<Option<Tensor>> {
		anyhow::ensure!(sample.len() == rows.len(), "one flag per row");
		self.forward_select(rows, Some(sample), LoraPath::Auto)
	}

	fn forward_select(&self, rows: &mut [Row<'_>], sample: Option<&[bool]>, path: LoraPath) -> anyhow::Result<Option<Tensor>> {
		let mut inputs = Vec::with_capacity(rows.len());
		for r in rows.iter_mut() {
			if r.cache.layers.is_empty() {
				r.cache.layers = (0..self.blocks.len()).map(|_| None).collect();
			}
			inputs.push(StepInput { tokens: r.tokens, pos: r.cache.len(), adapter: r.adapter });
		}
		let max_len = self.cfg.max_position_embeddings;
		self.forward_core(&inputs, &mut RowCaches { rows, max_len }, sample, path)
	}

	/// One step over rows whose keys and values live in the block pool `kv`: row `i` feeds
	/// `rows[i].tokens` at positions `pos‥`, its positions mapped to slots by its block table.
	/// Logits for the rows with `sample[i]` set, as [`Self::forward_sampling`].
	pub fn forward_paged(&self, kv: &mut PagedKv, rows: &[PagedRow<'_>], sample: &[bool]) -> anyhow::Result<Option<Tensor>> {
		anyhow::ensure!(sample.len() == rows.len(), "one flag per row");
		anyhow::ensure!(kv.layers.len() == self.blocks.len(), "the pool was made for another model");
		let slots = rows.iter().map(|r| kv.slots(r.blocks, r.pos + r.tokens.len())).collect::<anyhow::Result<Vec<_>>>()?;
		let need = slots.iter().flatten().max().map_or(0, |&s| s as usize / kv.block_size + 1);
		kv.grow(need)?;
		let inputs: Vec<StepInput<'_>> = rows.iter().map(|r| StepInput { tokens: r.tokens, pos: r.pos, adapter: r.adapter }).collect();
		let index = slots.iter().map(|s| Tensor::new(s.as_slice(), &self.device)).collect::<candle_core::Result<Vec<_>>>()?;
		self.forward_core(&inputs, &mut PagedStep { kv, slots, index }, Some(sample), LoraPath::Auto)
	}

	/// One step, run on one of rayon's worker threads (on the CPU): each parallel kernel of the
	/// step (several per layer) then shares its work with the other workers from inside the pool, rather
	/// than being handed in from outside while the calling thread sleeps until it is done (two
	/// thread wake-ups per kernel call).
	fn forward_core(&self, rows: &[StepInput<'_>], kv: &mut (dyn KvStore + Send), sample: Option<&[bool]>, path: LoraPath) -> anyhow::Result<Option<Tensor>> {
		if !self.device.is_cpu() {
			return self.forward_step(rows, kv, sample, path);
		}
		// (No lock is held across it. The CPU kernels hold candle storage read guards across
		// their parallel loops; a job stolen meanwhile never writes a tensor of this step: the
		// step's writes are sequential, and the KV pool is borrowed exclusively.)
		rayon::scope(|_| self.forward_step(rows, kv, sample, path))
	}

	fn forward_step(&self, rows: &[StepInput<'_>], kv: &mut (dyn KvStore + Send), sample: Option<&[bool]>, path: LoraPath) -> anyhow::Result<Option<Tensor>> {
		anyhow::ensure!(!rows.is_empty(), "empty batch");
		let mut ids = Vec::new();
		let mut token_adapters = Vec::new();
		let mut spans = Vec::with_capacity(rows.len()); // (offset, len, position)
		for r in rows {
			anyhow::ensure!(!r.tokens.is_empty(), "a row brings no tokens");
			let pos = r.pos;
			anyhow::ensure!(
				pos + r.tokens.len() <= self.cfg.max_position_embeddings,
				"sequence longer than max_position_embeddings ({})",
				self.cfg.max_position_embeddings
			);
			spans.push((ids.len(), r.tokens.len(), pos));
			ids.extend_from_slice(r.tokens);
			token_adapters.extend(std::iter::repeat(r.adapter).take(r.tokens.len()));
		}
		let mut lora = LoraBatch::new(token_adapters);
		lora.path = path;
		let ids = Tensor::new(ids.as_slice(), &self.device)?;
		// Rotary tables for every token of the step, each at its own position: once per step,
		// shared by all layers.
		let positions: Vec<u32> = spans.iter().flat_map(|&(_, t, pos)| (pos as u32)..(pos + t) as u32).collect();
		let positions = Tensor::new(positions.as_slice(), &self.device)?;
		let rope = (self.cos.index_select(&positions, 0)?, self.sin.index_select(&positions, 0)?);
		let mut x = convert(&self.embed.forward(&ids)?, self.act)?; // [N, h]
		for (l, block) in self.blocks.iter().enumerate() {
			let residual = x.clone();
			let xn = block.input_norm.forward(&x)?;
			let attn = self.attention(l, block, &xn, kv, &spans, &lora, &rope)?;
			x = (residual + attn)?;
			let residual = x.clone();
			let xn = block.post_norm.forward(&x)?;
			let gu = block.gate_up.forward(&xn)?;
			let gate = lora.apply(l, 4, &xn, gu[0].clone())?;
			let up = lora.apply(l, 5, &xn, gu[1].clone())?;
			let act = (super::ops::silu(&gate)? * up)?;
			let down = lora.apply(l, 6, &act, block.down.forward(&act)?)?;
			x = (residual + down)?;
		}
		let last: Vec<u32> = spans
			.iter()
			.enumerate()
			.filter(|(i, _)| sample.is_none_or(|s| s[*i]))
			.map(|(_, (o, n, _))| (o + n - 1) as u32)
			.collect();
		if last.is_empty() {
			return Ok(None);
		}
		let last = Tensor::new(last.as_slice(), &self.device)?;
		let x = self.norm.forward(&x.index_select(&last, 0)?)?;
		// Logits in f32 straight from the decode kernel (no round trip through a half type).
		let logits = self.lm_head.forward_as(&x, true)?;
		Ok(Some(logits))
	}

	fn attention(
		&self,
		l: usize,
		block: &Block,
		xn: &Tensor,
		kv: &mut (dyn KvStore + Send),
		spans: &[(usize, usize, usize)],
		lora: &LoraBatch<'_>,
		(cos, sin): &(Tensor, Tensor),
	) -> anyhow::Result<Tensor> {
		let (nh, kvh, hd) = (self.cfg.num_attention_heads, self.cfg.kv_heads(), self.cfg.head_dim());
		let rep = nh / kvh;
		let qkv = block.qkv.forward(xn)?;
		let q = lora.apply(l, 0, xn, qkv[0].clone())?;
		let k = lora.apply(l, 1, xn, qkv[1].clone())?;
		let v = lora.apply(l, 2, xn, qkv[2].clone())?;
		let n = xn.dim(0)?;
		// Rotary embeddings and the 1/√d scale once for every token of the batch; then only the
		// cache append and attention proper run per row.
		let q = q.reshape((1, n, nh, hd))?.transpose(1, 2)?.contiguous()?;
		let q = (candle_nn::rotary_emb::rope(&q, cos, sin)? / (hd as f64).sqrt())?.squeeze(0)?; // [nh, N, hd]
		let k = k.reshape((1, n, kvh, hd))?.transpose(1, 2)?.contiguous()?;
		let k = candle_nn::rotary_emb::rope(&k, cos, sin)?.squeeze(0)?; // [kvh, N, hd]
		let v = v.reshape((n, kvh, hd))?.transpose(0, 1)?.contiguous()?; // [kvh, N, hd]
		// Keys and values are stored in the serving dtype (half the memory of f32 activations).
		let (k, v) = (convert(&k, self.dtype)?, convert(&v, self.dtype)?);
		let mut outs: Vec<Option<Tensor>> = vec![None; spans.len()];
		// Rows bringing one token (decode) attend in place where the store can, all at once.
		let decode: Vec<(usize, usize)> = spans.iter().enumerate().filter(|(_, s)| s.1 == 1).map(|(r, s)| (r, s.0)).collect();
		if !decode.is_empty() {
			let offs = Tensor::new(decode.iter().map(|&(_, off)| off as u32).collect::<Vec<_>>().as_slice(), &self.device)?;
			// [rows, nh, hd]: each row's query heads, in f32.
			let qd: Vec<f32> = convert(&q.index_select(&offs, 1)?.transpose(0, 1)?.contiguous()?, DType::F32)?.flatten_all()?.to_vec1()?;
			let kvs = decode
				.iter()
				.map(|&(r, off)| Ok((r, k.narrow(1, off, 1)?, v.narrow(1, off, 1)?)))
				.collect::<candle_core::Result<Vec<_>>>()?;
			if let Some(o) = kv.append_attend_decode(l, &kvs, &qd, nh)? {
				let o = convert(&Tensor::from_vec(o, (decode.len(), nh * hd), &self.device)?, self.act)?;
				for (i, &(r, _)) in decode.iter().enumerate() {
					outs[r] = Some(o.narrow(0, i, 1)?);
				}
			}
		}
		for (row, &(off, t, pos)) in spans.iter().enumerate() {
			if outs[row].is_some() {
				continue;
			}
			let (kn, vn) = (k.narrow(1, off, t)?, v.narrow(1, off, t)?);
			let (kc, vc) = kv.append(l, row, &kn, &vn)?;
			let (kc, vc) = (convert(&kc, self.act)?, convert(&vc, self.act)?);
			let len = kc.dim(1)?;
			// Queries in blocks of at most QUERY_BLOCK positions, so a long prompt's scores take
			// O(block × len) memory, not O(t × len); each block sees only the keys it may (causal).
			let mut blocks = Vec::with_capacity(t.div_ceil(QUERY_BLOCK));
			for qs in (0..t).step_by(QUERY_BLOCK) {
				let qb = QUERY_BLOCK.min(t - qs);
				let keys = pos + qs + qb; // positions 0‥keys are visible to this block
				let (kb, vb) = (kc.narrow(1, 0, keys)?, vc.narrow(1, 0, keys)?);
				// Group queries by their kv head: [kvh, rep·qb, hd] against [kvh, keys, hd].
				let qg = q.narrow(1, off + qs, qb)?.contiguous()?.reshape((kvh, rep * qb, hd))?;
				let scores = qg.matmul(&kb.t()?)?.to_dtype(DType::F32)?;
				let scores = if qb > 1 {
					// Causal: query i of the block sees keys 0‥=pos+qs+i; one [qb, keys] mask,
					// broadcast over the kv heads and the queries sharing each.
					let mut mask = vec![0f32; qb * keys];
					for (i, row) in mask.chunks_mut(keys).enumerate() {
						row[pos + qs + i + 1..].fill(f32::NEG_INFINITY);
					}
					let mask = Tensor::from_vec(mask, (1, 1, qb, keys), &self.device)?;
					scores.reshape((kvh, rep, qb, keys))?.broadcast_add(&mask)?.reshape((kvh, rep * qb, keys))?
				} else {
					scores
				};
				let probs = super::ops::softmax_last_dim(&scores)?.to_dtype(self.act)?;
				let o = probs.matmul(&vb)?; // [kvh, rep·qb, hd]
				blocks.push(o.reshape((nh, qb, hd))?.transpose(0, 1)?.reshape((qb, nh * hd))?);
			}
			debug_assert!(len >= pos + t);
			outs[row] = Some(if blocks.len() == 1 { blocks.pop().expect("one; qed") } else { Tensor::cat(&blocks, 0)? });
		}
		let outs: Vec<Tensor> = outs.into_iter().map(|o| o.expect("every row attended above; qed")).collect();
		let o = Tensor::cat(&outs, 0)?;
		Ok(lora.apply(l, 3, &o, block.o.forward(&o)?)?)
	}
}

/// The safetensors files of a model folder, in shard order.
pub fn safetensors_files(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
	let index = dir.join("model.safetensors.index.json");
	if index.exists() {
		#[derive(serde::Deserialize)]
		struct Index {
			weight_map: HashMap<String, String>,
		}
		let idx: Index = serde_json::from_slice(&std::fs::read(&index)?).context("model.safetensors.index.json")?;
		let mut files: Vec<String> = idx.weight_map.into_values().collect();
		files.sort();
		files.dedup();
		return Ok(files.into_iter().map(|f| dir.join(f)).collect());
	}
	let single = dir.join("model.safetensors");
	anyhow::ensure!(single.exists(), "{} has neither model.safetensors nor model.safetensors.index.json", dir.display());
	Ok(vec![single])
}

/// Greedy helper for tests: the argmax of row `i` of `[rows, vocab]` logits.
pub fn argmax_row(logits: &Tensor, i: usize) -> anyhow::Result<u32> {
	Ok(logits.i(i)?.argmax(D::Minus1)?.to_scalar::<u32>()?)
}
