//! LoRA adapters in the PEFT layout, their content id, and the mixed-batch (BGMV) application.
//!
//! An adapter folder holds `adapter_config.json` and `adapter_model.safetensors` with tensors
//! named like `base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight` (`[r, in]`) and
//! `…lora_B.weight` (`[out, r]`). The adapter never touches the base weights: for every token row
//! the projection adds `scale · B (A x)` with that row's own A and B (`scale = alpha / r`, or
//! `alpha / √r` with rsLoRA), so one forward pass serves rows of many adapters.

use super::config::{projection_index, LlamaConfig, PROJECTIONS};
use super::gemv::lanes_dot;
use anyhow::{anyhow, bail, ensure, Context};
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Domain separation of the adapter id (it goes into receipts).
pub const ADAPTER_ID_DOMAIN: &[u8] = b"openledger:adapter:v1";
pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// `target_modules` is a list, a single name, or PEFT's `"all-linear"`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum TargetModules {
	List(Vec<String>),
	One(String),
}

/// The fields of PEFT's `adapter_config.json` that matter for inference.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct PeftConfig {
	#[serde(default = "default_peft_type")]
	pub peft_type: String,
	pub r: usize,
	pub lora_alpha: f64,
	pub target_modules: TargetModules,
	#[serde(default)]
	pub lora_dropout: f64,
	#[serde(default)]
	pub use_rslora: bool,
	#[serde(default)]
	pub fan_in_fan_out: bool,
	#[serde(default = "default_bias")]
	pub bias: String,
	#[serde(default)]
	pub base_model_name_or_path: Option<String>,
	#[serde(default)]
	pub task_type: Option<String>,
}

fn default_peft_type() -> String {
	"LORA".into()
}
fn default_bias() -> String {
	"none".into()
}

impl PeftConfig {
	pub fn scale(&self) -> f32 {
		if self.use_rslora {
			(self.lora_alpha / (self.r as f64).sqrt()) as f32
		} else {
			(self.lora_alpha / self.r as f64) as f32
		}
	}

	/// The projections this adapter targets, checked against what the model has.
	pub fn targets(&self) -> anyhow::Result<Vec<&'static str>> {
		let names: Vec<String> = match &self.target_modules {
			TargetModules::One(s) if s == "all-linear" => return Ok(PROJECTIONS.to_vec()),
			TargetModules::One(s) => vec![s.clone()],
			TargetModules::List(v) => v.clone(),
		};
		names
			.iter()
			.map(|n| {
				projection_index(n)
					.map(|i| PROJECTIONS[i])
					.ok_or_else(|| anyhow!("target module {n:?} is not a projection of this model ({PROJECTIONS:?})"))
			})
			.collect()
	}
}

/// One projection's low-rank pair, kept in f32 for the CPU kernel (and as device tensors when the
/// model runs elsewhere).
pub struct LoraPair {
	pub rank: usize,
	pub in_dim: usize,
	pub out_dim: usize,
	/// `[rank, in]`, row-major.
	pub a: Vec<f32>,
	/// `[out, rank]`, row-major.
	pub b: Vec<f32>,
	/// Resident copies for the device paths: `(Aᵀ [in, rank], scale·Bᵀ [rank, out])` (the
	/// adapter's scale folded in), contiguous, in the serving dtype, on the model's device
	/// ([`LoraAdapter::make_resident`]); counted in [`LoraAdapter::bytes`].
	pub device: Option<(Tensor, Tensor)>,
}

/// A loaded adapter: content id, scale, and per layer the pairs of the targeted projections.
pub struct LoraAdapter {
	pub name: String,
	pub id: [u8; 32],
	pub config: PeftConfig,
	pub scale: f32,
	pub layers: Vec<[Option<LoraPair>; 7]>,
	/// Bytes of adapter weights held in memory, host copies and resident device copies alike
	/// (what the cache budget counts).
	pub bytes: usize,
	/// For a composition ([`LoraAdapter::compose`]): each part's name, id and weight.
	pub parts: Vec<(String, [u8; 32], f32)>,
}

/// Most adapters one composition applies.
pub const MAX_COMPOSE: usize = 4;
/// Largest weight of one adapter in a composition.
pub const MAX_COMPOSE_WEIGHT: f32 = 4.0;
/// Smallest weight of one adapter in a composition (tinier ones would make subnormal weights that
/// slow the whole batch).
pub const MIN_COMPOSE_WEIGHT: f32 = 1e-3;

/// A model name that composes adapters — `legal+medical` (weight 1 each) or
/// `legal:0.7+medical:0.3` — as `(name, weight)` parts; `None` for a name without `+`. Parts are
/// 2 to [`MAX_COMPOSE`] distinct adapter names, weights in [[`MIN_COMPOSE_WEIGHT`],
/// [`MAX_COMPOSE_WEIGHT`]].
pub fn parse_composition(model: &str) -> Option<Result<Vec<(String, f32)>, String>> {
	if !model.contains('+') {
		return None;
	}
	let mut parts: Vec<(String, f32)> = Vec::new();
	for piece in model.split('+') {
		let (name, weight) = match piece.split_once(':') {
			Some((n, w)) => match w.parse::<f32>() {
				Ok(w) if (MIN_COMPOSE_WEIGHT..=MAX_COMPOSE_WEIGHT).contains(&w) => (n, w),
				_ => return Some(Err(format!("a composition weight is a number from {MIN_COMPOSE_WEIGHT} to {MAX_COMPOSE_WEIGHT}"))),
			},
			None => (piece, 1.0),
		};
		if !crate::adapters::valid_name(name) {
			return Some(Err("a composition names adapters: `a+b` or `a:0.7+b:0.3`".into()));
		}
		if parts.iter().any(|(n, _)| n == name) {
			return Some(Err(format!("adapter `{name}` is named twice in the composition")));
		}
		parts.push((name.to_string(), weight));
	}
	if !(2..=MAX_COMPOSE).contains(&parts.len()) {
		return Some(Err(format!("a composition applies 2 to {MAX_COMPOSE} adapters")));
	}
	Some(Ok(parts))
}

/// The name a composition is cached under: its parts in order, each weight written in full
/// (`a:0.7+b` and `a:0.70+b:1` are one composition, one entry).
pub fn canonical_composition(parts: &[(String, f32)]) -> String {
	parts.iter().map(|(n, w)| format!("{n}:{w}")).collect::<Vec<_>>().join("+")
}

/// The id of a composition of adapters (their ids and weights, in order).
pub fn composition_id(parts: &[([u8; 32], f32)]) -> [u8; 32] {
	let mut h = Sha256::new();
	h.update(b"openledger:lora-composition:v1");
	for (id, w) in parts {
		h.update(id);
		h.update(w.to_le_bytes());
	}
	h.finalize().into()
}

impl std::fmt::Debug for LoraAdapter {
	fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
		f.debug_struct("LoraAdapter").field("name", &self.name).field("id", &self.id_hex()).finish()
	}
}

impl LoraAdapter {
	pub fn id_hex(&self) -> String {
		format!("0x{}", hex::encode(self.id))
	}

	pub fn pair(&self, layer: usize, proj: usize) -> Option<&LoraPair> {
		self.layers.get(layer).and_then(|l| l[proj].as_ref())
	}

	/// Loads a PEFT adapter folder for a model with `cfg`, on `device`.
	pub fn load(dir: &Path, name: &str, cfg: &LlamaConfig, device: &Device) -> anyhow::Result<Self> {
		let config_bytes =
			std::fs::read(dir.join(CONFIG_FILE)).with_context(|| format!("reading {}", dir.join(CONFIG_FILE).display()))?;
		let weights = std::fs::read(dir.join(WEIGHTS_FILE))
			.with_context(|| format!("reading {}", dir.join(WEIGHTS_FILE).display()))?;
		Self::from_bytes(&config_bytes, &weights, name, cfg, device)
	}

	pub fn from_bytes(
		config_bytes: &[u8],
		weights: &[u8],
		name: &str,
		cfg: &LlamaConfig,
		device: &Device,
	) -> anyhow::Result<Self> {
		let config: PeftConfig = serde_json::from_slice(config_bytes).context("adapter_config.json")?;
		if config.peft_type.to_uppercase() != "LORA" {
			bail!("peft_type {:?} is not LORA", config.peft_type);
		}
		if config.fan_in_fan_out {
			bail!("fan_in_fan_out adapters (GPT-2 Conv1D layout) are not supported");
		}
		if config.bias != "none" {
			bail!("LoRA bias {:?} is not supported (only \"none\")", config.bias);
		}
		if config.r == 0 {
			bail!("rank r must be > 0");
		}
		let targets = config.targets()?;
		let id = adapter_id(config_bytes, weights)?;
		let tensors = safetensors::SafeTensors::deserialize(weights).context("adapter_model.safetensors")?;

		let mut layers: Vec<[Option<LoraPair>; 7]> = (0..cfg.num_hidden_layers).map(|_| Default::default()).collect();
		let mut halves: BTreeMap<(usize, usize), (Option<Vec<f32>>, Option<Vec<f32>>)> = BTreeMap::new();
		for (tname, view) in tensors.tensors() {
			let (layer, proj, is_a) =
				parse_lora_name(&tname).ok_or_else(|| anyhow!("unexpected tensor {tname:?} in adapter"))?;
			if layer >= cfg.num_hidden_layers {
				bail!("tensor {tname:?}: the model has {} layers", cfg.num_hidden_layers);
			}
			if !targets.contains(&PROJECTIONS[proj]) {
				bail!("tensor {tname:?} is for {} which target_modules does not list", PROJECTIONS[proj]);
			}
			let (out_dim, in_dim) = cfg.projection_shape(PROJECTIONS[proj]).expect("index from PROJECTIONS; qed");
			let want = if is_a { [config.r, in_dim] } else { [out_dim, config.r] };
			if view.shape() != want {
				bail!("tensor {tname:?} has shape {:?}, expected {:?}", view.shape(), want);
			}
			let data = to_f32(&view).with_context(|| format!("tensor {tname:?}"))?;
			let slot = halves.entry((layer, proj)).or_default();
			if is_a {
				slot.0 = Some(data);
			} else {
				slot.1 = Some(data);
			}
		}
		if halves.is_empty() {
			bail!("adapter has no lora_A/lora_B tensors");
		}
		let mut bytes = 0;
		for ((layer, proj), (a, b)) in halves {
			let (a, b) = match (a, b) {
				(Some(a), Some(b)) => (a, b),
				_ => bail!("layer {layer} {}: lora_A and lora_B must both be present", PROJECTIONS[proj]),
			};
			let (out_dim, in_dim) = cfg.projection_shape(PROJECTIONS[proj]).expect("checked above; qed");
			bytes += (a.len() + b.len()) * 4;
			layers[layer][proj] = Some(LoraPair { rank: config.r, in_dim, out_dim, a, b, device: None });
		}
		let mut adapter = Self { name: name.to_string(), id, scale: config.scale(), config, layers, bytes, parts: Vec::new() };
		if !device.is_cpu() {
			adapter.make_resident(device, DType::F32)?;
		}
		Ok(adapter)
	}

	/// Puts a copy of every pair on `device` in `dtype` for the device paths (grouped, stacked):
	/// `Aᵀ` and `scale·Bᵀ`, contiguous, so that a step gathers them as they are (no transpose,
	/// scaling or conversion of adapter weights per step). Replaces copies made before; the
	/// bytes they take are added to [`Self::bytes`], which the adapter cache's budget counts.
	/// (The model's device when it is not the CPU; tests place them on the CPU device too.)
	pub fn make_resident(&mut self, device: &Device, dtype: DType) -> candle_core::Result<()> {
		let scale = self.scale as f64;
		for p in self.layers.iter_mut().flat_map(|l| l.iter_mut()).flatten() {
			if let Some((at, bt)) = p.device.take() {
				self.bytes -= (at.elem_count() + bt.elem_count()) * at.dtype().size_in_bytes();
			}
			let at = Tensor::from_slice(&p.a, (p.rank, p.in_dim), device)?.t()?.to_dtype(dtype)?.contiguous()?;
			let bt = (Tensor::from_slice(&p.b, (p.out_dim, p.rank), device)?.t()? * scale)?.to_dtype(dtype)?.contiguous()?;
			self.bytes += (at.elem_count() + bt.elem_count()) * dtype.size_in_bytes();
			p.device = Some((at, bt));
		}
		Ok(())
	}

	/// Adapters applied together with weights, as one adapter: per projection the pairs stacked
	/// (`A = [A₁; A₂; …]`, `B = [w₁s₁B₁ | w₂s₂B₂ | …]`, scale 1), so that `BA x = Σ wᵢ sᵢ Bᵢ Aᵢ x`
	/// exactly — PEFT's `cat` combination. The base weights stay unmerged: the composition is a
	/// LoRA of rank Σ rᵢ in the mixed batch beside any other adapter.
	pub fn compose(name: &str, parts: &[(&LoraAdapter, f32)], device: &Device) -> anyhow::Result<Self> {
		ensure!((2..=MAX_COMPOSE).contains(&parts.len()), "a composition applies 2 to {MAX_COMPOSE} adapters");
		let layers_n = parts[0].0.layers.len();
		ensure!(parts.iter().all(|(a, _)| a.layers.len() == layers_n), "the adapters are for models with different layer counts");
		let mut layers: Vec<[Option<LoraPair>; 7]> = (0..layers_n).map(|_| Default::default()).collect();
		let mut bytes = 0;
		let mut max_rank = 0;
		for (l, layer) in layers.iter_mut().enumerate() {
			for (proj, slot) in layer.iter_mut().enumerate() {
				let here: Vec<(&LoraPair, f32)> = parts.iter().filter_map(|(a, w)| a.pair(l, proj).map(|p| (p, w * a.scale))).collect();
				let Some((first, _)) = here.first() else { continue };
				let (in_dim, out_dim) = (first.in_dim, first.out_dim);
				ensure!(here.iter().all(|(p, _)| p.in_dim == in_dim && p.out_dim == out_dim), "layer {l} {}: shapes differ", PROJECTIONS[proj]);
				let rank: usize = here.iter().map(|(p, _)| p.rank).sum();
				let a: Vec<f32> = here.iter().flat_map(|(p, _)| p.a.iter().copied()).collect();
				let mut b = vec![0f32; out_dim * rank];
				let mut col = 0;
				for (p, ws) in &here {
					for o in 0..out_dim {
						for k in 0..p.rank {
							b[o * rank + col + k] = ws * p.b[o * p.rank + k];
						}
					}
					col += p.rank;
				}
				bytes += (a.len() + b.len()) * 4;
				max_rank = max_rank.max(rank);
				*slot = Some(LoraPair { rank, in_dim, out_dim, a, b, device: None });
			}
		}
		let mut config = parts[0].0.config.clone();
		config.r = max_rank;
		config.lora_alpha = max_rank as f64; // scale 1: the weights are in B
		config.use_rslora = false;
		let mut composed = Self {
			name: name.to_string(),
			id: composition_id(&parts.iter().map(|(a, w)| (a.id, *w)).collect::<Vec<_>>()),
			config,
			scale: 1.0,
			layers,
			bytes,
			parts: parts.iter().map(|(a, w)| (a.name.clone(), a.id, *w)).collect(),
		};
		// Resident like its parts, in their dtype.
		let resident = parts[0].0.layers.iter().flatten().flatten().find_map(|p| p.device.as_ref().map(|(at, _)| (at.device().clone(), at.dtype())));
		match resident {
			Some((dev, dtype)) => composed.make_resident(&dev, dtype)?,
			None if !device.is_cpu() => composed.make_resident(device, DType::F32)?,
			None => {},
		}
		Ok(composed)
	}

	/// `W + scale · B A` for one projection: the merge-per-request baseline and the reference the
	/// mixed-batch path is tested against.
	pub fn merged_weight(&self, layer: usize, proj: usize, base: &Tensor) -> anyhow::Result<Tensor> {
		let Some(p) = self.pair(layer, proj) else { return Ok(base.clone()) };
		let dev = base.device();
		let a = Tensor::from_slice(&p.a, (p.rank, p.in_dim), dev)?;
		let b = Tensor::from_slice(&p.b, (p.out_dim, p.rank), dev)?;
		let delta = (b.matmul(&a)? * self.scale as f64)?;
		Ok((base.to_dtype(DType::F32)? + delta)?.to_dtype(base.dtype())?)
	}
}

/// `layers.{i}.….{proj}.lora_{A|B}[.default].weight` → (layer, projection index, is A).
fn parse_lora_name(name: &str) -> Option<(usize, usize, bool)> {
	let after = &name[name.find("layers.")? + "layers.".len()..];
	let (layer, rest) = after.split_once('.')?;
	let layer: usize = layer.parse().ok()?;
	let parts: Vec<&str> = rest.split('.').collect();
	let pos = parts.iter().position(|p| *p == "lora_A" || *p == "lora_B")?;
	if pos == 0 || parts.last() != Some(&"weight") {
		return None;
	}
	let proj = projection_index(parts[pos - 1])?;
	Some((layer, proj, parts[pos] == "lora_A"))
}

fn to_f32(view: &safetensors::tensor::TensorView<'_>) -> anyhow::Result<Vec<f32>> {
	use safetensors::Dtype;
	let d = view.data();
	Ok(match view.dtype() {
		Dtype::F32 => d.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
		Dtype::F16 => d.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
		Dtype::BF16 => d.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
		other => bail!("dtype {other:?} is not supported for adapter weights"),
	})
}

/// SHA-256 over a domain tag, the canonical config JSON (sorted keys) and every tensor (sorted by
/// name: name, dtype, shape, bytes). The same adapter written by another tool (tensor order,
/// header padding, JSON formatting) gets the same id.
pub fn adapter_id(config_bytes: &[u8], weights: &[u8]) -> anyhow::Result<[u8; 32]> {
	content_id(ADAPTER_ID_DOMAIN, config_bytes, &[weights])
}

/// [`adapter_id`]'s digest for any config and set of safetensors files (a sharded base model's
/// tensors are hashed as one sorted set, so resharding keeps the id).
pub fn content_id(domain: &[u8], config_bytes: &[u8], files: &[&[u8]]) -> anyhow::Result<[u8; 32]> {
	let config: serde_json::Value = serde_json::from_slice(config_bytes).context("config JSON")?;
	let canonical = serde_json::to_vec(&config)?; // serde_json's map is ordered by key
	let mut tensors = Vec::new();
	for f in files {
		let st = safetensors::SafeTensors::deserialize(f).context("safetensors file")?;
		for (name, view) in st.tensors() {
			tensors.push((name, view));
		}
	}
	tensors.sort_by(|a, b| a.0.cmp(&b.0));
	if let Some(w) = tensors.windows(2).find(|w| w[0].0 == w[1].0) {
		bail!("tensor {} appears twice", w[0].0);
	}
	let mut h = Sha256::new();
	h.update(domain);
	h.update((canonical.len() as u64).to_le_bytes());
	h.update(&canonical);
	for (name, t) in tensors {
		h.update((name.len() as u64).to_le_bytes());
		h.update(name.as_bytes());
		h.update(format!("{:?}", t.dtype()).as_bytes());
		for d in t.shape() {
			h.update((*d as u64).to_le_bytes());
		}
		h.update((t.data().len() as u64).to_le_bytes());
		h.update(t.data());
	}
	Ok(h.finalize().into())
}

/// Which adapter each token row of a batch uses.
pub struct LoraBatch<'a> {
	/// Per token row: the adapter, if any.
	pub rows: Vec<Option<&'a LoraAdapter>>,
	/// Distinct adapters with the token rows using each (for the grouped device path).
	groups: Vec<(&'a LoraAdapter, Vec<u32>)>,
	/// Which path applies the deltas ([`LoraPath::Auto`] but in tests, which compare them all).
	pub path: LoraPath,
}

/// How a batch's LoRA deltas are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoraPath {
	/// BGMV in place on the CPU; on a device, stacked for up to [`STACKED_MAX_TOKENS`] token
	/// rows (decode steps), grouped beyond (long prefills).
	#[default]
	Auto,
	/// Per adapter: gather its rows, two matmuls, scatter-add (SGMV-like).
	Grouped,
	/// Every adapter at once: rank-padded A and B stacked, gathered per token row, two batched
	/// matmuls (BGMV as tensor ops: a fixed number of kernels whatever the adapter count).
	Stacked,
}

/// Token rows up to which the device path stacks the adapters (the gathered A and B take
/// `rows × (in + out) × rank` values).
pub const STACKED_MAX_TOKENS: usize = 256;

impl<'a> LoraBatch<'a> {
	pub fn new(rows: Vec<Option<&'a LoraAdapter>>) -> Self {
		let mut groups: Vec<(&LoraAdapter, Vec<u32>)> = Vec::new();
		for (i, a) in rows.iter().enumerate() {
			if let Some(a) = a {
				match groups.iter_mut().find(|(g, _)| std::ptr::eq(*g, *a)) {
					Some((_, idx)) => idx.push(i as u32),
					None => groups.push((a, vec![i as u32])),
				}
			}
		}
		Self { rows, groups, path: LoraPath::Auto }
	}

	pub fn is_empty(&self) -> bool {
		self.groups.is_empty()
	}

	/// `y + Σ_rows scale_r · B_r (A_r x_r)` for projection `proj` of `layer`; `x` is `[N, in]`,
	/// `y` is `[N, out]` (the base projection's output).
	pub fn apply(&self, layer: usize, proj: usize, x: &Tensor, y: Tensor) -> candle_core::Result<Tensor> {
		if !self.groups.iter().any(|(a, _)| a.pair(layer, proj).is_some()) {
			return Ok(y);
		}
		match self.path {
			LoraPath::Auto if x.device().is_cpu() => self.apply_cpu(layer, proj, x, y),
			LoraPath::Auto if self.rows.len() <= STACKED_MAX_TOKENS => self.apply_stacked(layer, proj, x, y),
			LoraPath::Auto | LoraPath::Grouped => self.apply_grouped(layer, proj, x, y),
			LoraPath::Stacked => self.apply_stacked(layer, proj, x, y),
		}
	}

	/// One delta for every token row at once: the batch's distinct pairs stacked as
	/// `Aᵀ [G+1, in, r]` and `scale·Bᵀ [G+1, r, out]` (ranks padded with zeros to the largest, slot
	/// G all zeros for rows without an adapter here), gathered per row, and two batched matmuls.
	fn apply_stacked(&self, layer: usize, proj: usize, x: &Tensor, y: Tensor) -> candle_core::Result<Tensor> {
		let (n, in_dim) = x.dims2()?;
		let out_dim = y.dim(1)?;
		let pairs: Vec<(&LoraAdapter, &LoraPair)> =
			self.groups.iter().filter_map(|(a, _)| a.pair(layer, proj).map(|p| (*a, p))).collect();
		let r = pairs.iter().map(|(_, p)| p.rank).max().unwrap_or(0);
		if r == 0 {
			return Ok(y);
		}
		let dev = x.device();
		// In the resident copies' dtype (the serving dtype); f32 for copies made here.
		let dt = pairs.iter().find_map(|(_, p)| p.device.as_ref().map(|(at, _)| at.dtype())).unwrap_or(DType::F32);
		let mut a_stack = Vec::with_capacity(pairs.len() + 1);
		let mut b_stack = Vec::with_capacity(pairs.len() + 1);
		for (adapter, p) in &pairs {
			let (at, bt) = resident_or_built(adapter, p, dev, dt)?;
			a_stack.push(at.pad_with_zeros(1, 0, r - p.rank)?); // [in, r]
			b_stack.push(bt.pad_with_zeros(0, 0, r - p.rank)?); // [r, out], scaled
		}
		a_stack.push(Tensor::zeros((in_dim, r), dt, dev)?);
		b_stack.push(Tensor::zeros((r, out_dim), dt, dev)?);
		let a_stack = Tensor::stack(&a_stack, 0)?; // [G+1, in, r]
		let b_stack = Tensor::stack(&b_stack, 0)?; // [G+1, r, out]
		let zero = pairs.len() as u32;
		let slots: Vec<u32> = self
			.rows
			.iter()
			.map(|a| a.and_then(|a| pairs.iter().position(|(p, _)| std::ptr::eq(*p, a))).map_or(zero, |i| i as u32))
			.collect();
		let slots = Tensor::new(slots.as_slice(), dev)?;
		let xs = x.to_dtype(dt)?.reshape((n, 1, in_dim))?;
		let t = xs.matmul(&a_stack.index_select(&slots, 0)?)?; // [n, 1, r]
		let d = t.matmul(&b_stack.index_select(&slots, 0)?)?.reshape((n, out_dim))?; // [n, out]
		let d = d.to_dtype(y.dtype())?;
		y + d
	}

	/// BGMV on the CPU: every token row reads its own A and B in place (no copies of adapter
	/// weights, no merged weights), rows in parallel.
	fn apply_cpu(&self, layer: usize, proj: usize, x: &Tensor, y: Tensor) -> candle_core::Result<Tensor> {
		let (n, in_dim) = x.dims2()?;
		let out_dim = y.dim(1)?;
		let xs: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
		let mut delta = vec![0f32; n * out_dim];
		delta.par_chunks_mut(out_dim).zip(xs.par_chunks(in_dim)).zip(self.rows.par_iter()).for_each(
			|((out, xr), adapter)| {
				let Some(adapter) = adapter else { return };
				let Some(p) = adapter.pair(layer, proj) else { return };
				#[cfg(target_arch = "x86_64")]
				if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
					// Safety: the features were detected at run time.
					return unsafe { row_delta_avx2(p, adapter.scale, xr, out) };
				}
				row_delta(p, adapter.scale, xr, out)
			},
		);
		let delta = Tensor::from_vec(delta, (n, out_dim), x.device())?.to_dtype(y.dtype())?;
		y + delta
	}

	/// SGMV-style: rows grouped by adapter, one gather + two small matmuls + scatter-add per group.
	fn apply_grouped(&self, layer: usize, proj: usize, x: &Tensor, mut y: Tensor) -> candle_core::Result<Tensor> {
		for (adapter, idx) in &self.groups {
			let Some(p) = adapter.pair(layer, proj) else { continue };
			let dt = p.device.as_ref().map_or(DType::F32, |(at, _)| at.dtype());
			let (at, bt) = resident_or_built(adapter, p, x.device(), dt)?;
			let ids = Tensor::new(idx.as_slice(), x.device())?;
			let xs = x.index_select(&ids, 0)?.to_dtype(dt)?;
			let d = xs.matmul(&at)?.matmul(&bt)?.to_dtype(y.dtype())?;
			y = y.index_add(&ids, &d, 0)?;
		}
		Ok(y)
	}
}

/// A pair's `(Aᵀ, scale·Bᵀ)` for the device paths: its resident copies, or (an adapter not
/// made resident) built now in `dt` on `dev`.
fn resident_or_built(adapter: &LoraAdapter, p: &LoraPair, dev: &Device, dt: DType) -> candle_core::Result<(Tensor, Tensor)> {
	match &p.device {
		Some((at, bt)) if at.device().same_device(dev) => Ok((at.to_dtype(dt)?, bt.to_dtype(dt)?)),
		_ => Ok((
			Tensor::from_slice(&p.a, (p.rank, p.in_dim), dev)?.t()?.to_dtype(dt)?,
			(Tensor::from_slice(&p.b, (p.out_dim, p.rank), dev)?.t()? * adapter.scale as f64)?.to_dtype(dt)?,
		)),
	}
}

/// [`row_delta`] compiled for AVX2 + FMA (its plain loops vectorize to them).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_delta_avx2(p: &LoraPair, scale: f32, x: &[f32], out: &mut [f32]) {
	row_delta(p, scale, x, out)
}

/// `out = scale · B (A x)` for one token row `x`.
#[inline(always)]
fn row_delta(p: &LoraPair, scale: f32, x: &[f32], out: &mut [f32]) {
	let in_dim = x.len();
	// The rank's intermediate on the stack for common ranks, on the heap beyond.
	let mut stack = [0f32; 256];
	let mut heap = Vec::new();
	let t: &mut [f32] = if p.rank <= stack.len() {
		&mut stack[..p.rank]
	} else {
		heap.resize(p.rank, 0f32);
		&mut heap
	};
	for (k, tk) in t.iter_mut().enumerate() {
		*tk = lanes_dot(&p.a[k * in_dim..(k + 1) * in_dim], x) * scale;
	}
	for (o, v) in out.iter_mut().enumerate() {
		*v = lanes_dot(&p.b[o * p.rank..(o + 1) * p.rank], t);
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn parses_peft_tensor_names() {
		assert_eq!(parse_lora_name("base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight"), Some((3, 0, true)));
		assert_eq!(parse_lora_name("base_model.model.model.layers.12.mlp.down_proj.lora_B.weight"), Some((12, 6, false)));
		assert_eq!(parse_lora_name("base_model.model.model.layers.0.self_attn.v_proj.lora_B.default.weight"), Some((0, 2, false)));
		assert_eq!(parse_lora_name("base_model.model.lm_head.lora_A.weight"), None);
		assert_eq!(parse_lora_name("base_model.model.model.layers.0.self_attn.q_proj.weight"), None);
	}

	#[test]
	fn scale_follows_alpha_rank_and_rslora() {
		let mut c: PeftConfig =
			serde_json::from_str(r#"{"r":16,"lora_alpha":32,"target_modules":["q_proj","v_proj"]}"#).unwrap();
		assert_eq!(c.scale(), 2.0);
		c.use_rslora = true;
		assert_eq!(c.scale(), 8.0);
		assert_eq!(c.targets().unwrap(), vec!["q_proj", "v_proj"]);
		c.target_modules = TargetModules::One("all-linear".into());
		assert_eq!(c.targets().unwrap().len(), 7);
		c.target_modules = TargetModules::List(vec!["c_attn".into()]);
		assert!(c.targets().unwrap_err().to_string().contains("c_attn"));
	}
}
