//! Influence attribution of served answers (the serving side of DataInf; the estimators and the
//! training-time gradient caches are `factory::influence`): for an answer of a factory-trained
//! adapter, the influence of each training example on it, turned into shares of its lineage.

pub use crate::factory::influence::Method;
use crate::factory::influence::{layer_grads, InfluenceCache};
use crate::factory::net::{LoraParams, Net};
use anyhow::{ensure, Context, Result};
use candle_core::{Device, Tensor};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

/// Influence attribution inside the worker: the base weights in a differentiable form, and per
/// adapter its LoRA pairs as variables, its cached training gradients and its lineage.
///
/// Bounded: loaded caches (gradients and `n × n` Gram matrices) share a byte budget with LRU
/// eviction, a cache larger than the budget is refused, loads happen one at a time (a second
/// request for the same adapter waits for the first load and takes its result), and the
/// backward passes run under `permits` ([`Attributor::permit`], held by the blocking task that
/// runs the pass).
pub struct Attributor {
	cfg: crate::model::config::LlamaConfig,
	weights: HashMap<String, Tensor>,
	adapters_dir: std::path::PathBuf,
	loaded: std::sync::Mutex<LoadedSet>,
	/// Held while loading, so that concurrent requests for a cold adapter load it once.
	load_lock: std::sync::Mutex<()>,
	budget_bytes: usize,
	permits: std::sync::Arc<tokio::sync::Semaphore>,
}

#[derive(Default)]
struct LoadedSet {
	/// adapter id → (cache or "has none", bytes, last use).
	entries: HashMap<[u8; 32], (std::sync::Arc<Option<Loaded>>, usize, u64)>,
	bytes: usize,
	tick: u64,
}

struct Loaded {
	lora: LoraParams,
	cache: InfluenceCache,
	/// `(datanet, version)` of each lineage entry (the examples' `source`).
	lineage: Vec<(u32, u32)>,
}

/// Influence attribution of one answer.
#[derive(Clone, Debug, Serialize)]
pub struct InfluenceResult {
	pub estimator: Method,
	pub examples: usize,
	/// `((datanet, version, leaf), parts per billion, summed score)`, largest first; the shares
	/// split the positive influence (examples that made the answer more likely).
	pub shares: Vec<((u32, u32, u32), u32, f64)>,
}

/// Adapters this large (examples × LoRA parameters) are attributed by influence under `auto`.
pub const AUTO_LIMIT: usize = 1 << 22;

impl Attributor {
	/// `budget_bytes` bounds the loaded caches, `concurrency` the backward passes at once.
	pub fn new(model_dir: &Path, adapters_dir: &Path, budget_bytes: usize, concurrency: usize) -> Result<Self> {
		let (cfg, weights) = crate::factory::load_weights(model_dir, &Device::Cpu)?;
		Ok(Self {
			cfg,
			weights,
			adapters_dir: adapters_dir.to_path_buf(),
			loaded: Default::default(),
			load_lock: Default::default(),
			budget_bytes,
			permits: std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1))),
		})
	}

	/// A slot for one influence attribution (a backward pass), waited for; hold it until the
	/// pass ends.
	pub async fn permit(&self) -> tokio::sync::OwnedSemaphorePermit {
		self.permits.clone().acquire_owned().await.expect("the semaphore is never closed; qed")
	}

	/// Whether every slot is taken now (requests that need one are refused at admission).
	pub fn busy(&self) -> bool {
		self.permits.available_permits() == 0
	}

	/// Bytes of loaded caches now, and the budget.
	pub fn resident_bytes(&self) -> (usize, usize) {
		(self.loaded.lock().expect("not poisoned; qed").bytes, self.budget_bytes)
	}

	fn cached(&self, id: &[u8; 32]) -> Option<std::sync::Arc<Option<Loaded>>> {
		let mut set = self.loaded.lock().expect("not poisoned; qed");
		set.tick += 1;
		let tick = set.tick;
		set.entries.get_mut(id).map(|(l, _, used)| {
			*used = tick;
			l.clone()
		})
	}

	/// The adapter's cache, loaded once (blocking: call it off the async threads).
	fn load(&self, adapter: &crate::model::lora::LoraAdapter) -> Result<std::sync::Arc<Option<Loaded>>> {
		// A composition has no training gradients of its own (and no folder).
		if !adapter.parts.is_empty() {
			return Ok(std::sync::Arc::new(None));
		}
		if let Some(l) = self.cached(&adapter.id) {
			return Ok(l);
		}
		let _one_at_a_time = self.load_lock.lock().unwrap_or_else(|p| p.into_inner());
		if let Some(l) = self.cached(&adapter.id) {
			return Ok(l);
		}
		let dir = self.adapters_dir.join(&adapter.name);
		let bytes = InfluenceCache::loaded_bytes(&dir)?.unwrap_or(0);
		ensure!(
			bytes <= self.budget_bytes,
			"the influence cache of `{}` needs {} MiB loaded, more than the worker's influence budget ({} MiB)",
			adapter.name,
			bytes >> 20,
			self.budget_bytes >> 20
		);
		let loaded = match InfluenceCache::load(&dir)? {
			None => None,
			Some(cache) => {
				let report: crate::factory::FinetuneReport = serde_json::from_slice(&std::fs::read(dir.join(crate::factory::REPORT_FILE))?)
					.context("the adapter's training report (lineage of the cached examples)")?;
				let mut pairs: Vec<[Option<(candle_core::Var, candle_core::Var)>; 7]> =
					(0..self.cfg.num_hidden_layers).map(|_| Default::default()).collect();
				for (l, layer) in pairs.iter_mut().enumerate() {
					for (p, slot) in layer.iter_mut().enumerate() {
						if let Some(pair) = adapter.pair(l, p) {
							let a = Tensor::from_slice(&pair.a, (pair.rank, pair.in_dim), &Device::Cpu)?;
							let b = Tensor::from_slice(&pair.b, (pair.out_dim, pair.rank), &Device::Cpu)?;
							*slot = Some((candle_core::Var::from_tensor(&a)?, candle_core::Var::from_tensor(&b)?));
						}
					}
				}
				let lora = LoraParams { rank: adapter.config.r, scale: adapter.scale as f64, dropout: 0.0, pairs };
				let lineage = report.snapshots.iter().map(|s| (s.datanet, s.version)).collect();
				Some(Loaded { lora, cache, lineage })
			},
		};
		let loaded = std::sync::Arc::new(loaded);
		let mut set = self.loaded.lock().expect("not poisoned; qed");
		set.tick += 1;
		let tick = set.tick;
		set.bytes += bytes;
		set.entries.insert(adapter.id, (loaded.clone(), bytes, tick));
		// Least recently used first, never the one just loaded.
		while set.bytes > self.budget_bytes {
			let Some(victim) = set.entries.iter().filter(|(id, _)| **id != adapter.id).min_by_key(|(_, e)| e.2).map(|(id, _)| *id) else {
				break;
			};
			let (_, b, _) = set.entries.remove(&victim).expect("found above; qed");
			set.bytes -= b;
		}
		Ok(loaded)
	}

	/// Whether `adapter` has cached training gradients (loaded once per adapter).
	pub fn has_cache(&self, adapter: &crate::model::lora::LoraAdapter) -> bool {
		self.load(adapter).is_ok_and(|l| l.is_some())
	}

	/// Whether `adapter` has cached training gradients small enough for `auto`.
	pub fn suits(&self, adapter: &crate::model::lora::LoraAdapter) -> bool {
		matches!(self.check(adapter), Ok(Some(true)))
	}

	/// Loads `adapter`'s cache (blocking): `None` without one, else whether it is small enough
	/// for `auto`; an error when it cannot be loaded (e.g. larger than the budget).
	pub fn check(&self, adapter: &crate::model::lora::LoraAdapter) -> Result<Option<bool>> {
		let l = self.load(adapter)?;
		Ok(l.as_ref().as_ref().map(|l| l.cache.len() * l.lora.count() <= AUTO_LIMIT))
	}

	/// Influence of the adapter's training examples on `completion` given `prompt`; `None` when
	/// the adapter has no cached training gradients.
	pub fn attribute(&self, adapter: &crate::model::lora::LoraAdapter, prompt: &[u32], completion: &[u32], method: Method) -> Result<Option<InfluenceResult>> {
		let loaded = self.load(adapter)?;
		let Some(l) = loaded.as_ref() else { return Ok(None) };
		let v = self.answer_grads(l, prompt, completion)?;
		// Up-weighting example k by ε moves the parameters by −ε H⁻¹ g_k and the answer's loss by
		// −ε vᵀ H⁻¹ g_k: a positive score lowers the loss, i.e. the example helped this answer.
		let scores = l.cache.scores(&v, method)?;
		let mut by_doc: HashMap<(u32, u32, u32), f64> = HashMap::new();
		for (e, s) in l.cache.examples.iter().zip(&scores) {
			let (datanet, version) = l.lineage.get(e.source).copied().context("example outside the lineage")?;
			*by_doc.entry((datanet, version, e.leaf)).or_default() += s;
		}
		let mut docs: Vec<((u32, u32, u32), f64)> = by_doc.into_iter().filter(|(_, s)| *s > 0.0).collect();
		docs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
		docs.truncate(openledger_primitives::receipt::MAX_SHARES as usize);
		let parts = if docs.is_empty() { vec![] } else { crate::factory::perbill_weights(&docs.iter().map(|d| d.1).collect::<Vec<_>>()) };
		let shares = docs.into_iter().zip(parts).map(|((d, s), p)| (d, p, s)).collect();
		Ok(Some(InfluenceResult { estimator: method, examples: l.cache.len(), shares }))
	}

	/// Per-layer gradient of the loss of `completion` given `prompt` (only completion tokens
	/// count), with respect to the adapter's LoRA parameters.
	fn answer_grads(&self, l: &Loaded, prompt: &[u32], completion: &[u32]) -> Result<Vec<Vec<f32>>> {
		let (x, y, m, t) = self.answer_inputs(prompt, completion)?;
		let net = Net::new(&self.cfg, &self.weights, Some(&l.lora), t, &Device::Cpu)?;
		layer_grads(&net, &l.lora, &x, &y, &m)
	}

	/// `(inputs [1, T], targets [T], mask [T], T)` of `prompt` + `completion` (the last tokens
	/// that fit the context); only completion tokens count in the mask.
	fn answer_inputs(&self, prompt: &[u32], completion: &[u32]) -> Result<(Tensor, Tensor, Tensor, usize)> {
		ensure!(!completion.is_empty(), "nothing to attribute");
		let max = self.cfg.max_position_embeddings;
		let mut ids: Vec<u32> = prompt.iter().chain(completion).copied().collect();
		let start = ids.len().saturating_sub(max);
		ids.drain(..start);
		let t = ids.len() - 1;
		let first = (prompt.len() - start.min(prompt.len())).saturating_sub(1); // predicts completion[0]
		let mask: Vec<f32> = (0..t).map(|i| if i >= first { 1.0 } else { 0.0 }).collect();
		let dev = Device::Cpu;
		let x = Tensor::from_slice(&ids[..t], (1, t), &dev)?;
		let y = Tensor::from_slice(&ids[1..], t, &dev)?;
		let m = Tensor::from_vec(mask, t, &dev)?;
		Ok((x, y, m, t))
	}

	/// Mean loss of `completion` given `prompt` under the adapter (for measuring what influence
	/// predicts: the loss change when training data changes); `None` without cached gradients.
	pub fn loss(&self, adapter: &crate::model::lora::LoraAdapter, prompt: &[u32], completion: &[u32]) -> Result<Option<f64>> {
		let loaded = self.load(adapter)?;
		let Some(l) = loaded.as_ref() else { return Ok(None) };
		let (x, y, m, t) = self.answer_inputs(prompt, completion)?;
		let net = Net::new(&self.cfg, &self.weights, Some(&l.lora), t, &Device::Cpu)?;
		let (nll, count) = crate::factory::net::nll_sum(&net.forward(&x, None)?, &y, &m)?;
		Ok(Some(nll / count.max(1.0)))
	}

	/// Each method's scores of the training documents (`(source, leaf)` of each window, window
	/// scores summed), for benchmarks against retraining; `None` without cached gradients.
	pub fn doc_scores(&self, adapter: &crate::model::lora::LoraAdapter, prompt: &[u32], completion: &[u32], methods: &[Method]) -> Result<Option<Vec<HashMap<(usize, u32), f64>>>> {
		let loaded = self.load(adapter)?;
		let Some(l) = loaded.as_ref() else { return Ok(None) };
		let v = self.answer_grads(l, prompt, completion)?;
		let mut out = Vec::with_capacity(methods.len());
		for &m in methods {
			let mut by_doc: HashMap<(usize, u32), f64> = HashMap::new();
			for (e, s) in l.cache.examples.iter().zip(l.cache.scores(&v, m)?) {
				*by_doc.entry((e.source, e.leaf)).or_default() += s;
			}
			out.push(by_doc);
		}
		Ok(Some(out))
	}

	/// Raw per-training-window scores of `completion` (for comparing estimators), with the time
	/// the answer's gradient took and the time the estimator took.
	pub fn raw_scores(&self, adapter: &crate::model::lora::LoraAdapter, prompt: &[u32], completion: &[u32], methods: &[Method]) -> Result<Option<(f64, Vec<(Vec<f64>, f64)>)>> {
		let loaded = self.load(adapter)?;
		let Some(l) = loaded.as_ref() else { return Ok(None) };
		let t = std::time::Instant::now();
		let v = self.answer_grads(l, prompt, completion)?;
		let grad_s = t.elapsed().as_secs_f64();
		let mut out = Vec::new();
		for &m in methods {
			let t = std::time::Instant::now();
			let s = l.cache.scores(&v, m)?;
			out.push((s, t.elapsed().as_secs_f64()));
		}
		Ok(Some((grad_s, out)))
	}
}
