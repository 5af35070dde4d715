//! The adapter store (a local folder of PEFT adapter folders) and the in-memory adapter cache:
//! bounded in bytes, LRU eviction, loads just in time, and concurrent requests for the same cold
//! adapter share one load. Sequences hold an `Arc` to the adapter they started with, so evicting
//! (or replacing) an adapter never disturbs requests in flight.

use crate::metrics::Metrics;
use crate::model::config::LlamaConfig;
use crate::model::lora::{LoraAdapter, CONFIG_FILE, WEIGHTS_FILE};
use candle_core::{DType, Device};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdapterError {
	#[error("the model `{0}` does not exist")]
	NotFound(String),
	#[error("adapter `{0}` cannot be loaded: {1}")]
	Invalid(String, String),
}

/// Adapter names are folder names: letters, digits, `-`, `_`, `.`, not starting with `.`.
pub fn valid_name(name: &str) -> bool {
	!name.is_empty()
		&& name.len() <= 128
		&& !name.starts_with('.')
		&& name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

type Slot = Arc<OnceCell<Result<(Arc<LoraAdapter>, Stamp), AdapterError>>>;

/// What the adapter's files looked like when loaded (modification time and length of both):
/// a resident adapter whose folder changed since is loaded again, so the engine never keeps
/// serving weights that are no longer the store's.
type Stamp = Option<[(std::time::SystemTime, u64); 2]>;

fn stamp(dir: &std::path::Path) -> Stamp {
	let one = |f: &str| std::fs::metadata(dir.join(f)).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
	Some([one(CONFIG_FILE)?, one(WEIGHTS_FILE)?])
}

#[derive(Default)]
struct State {
	entries: HashMap<String, (Arc<LoraAdapter>, u64, Stamp)>,
	bytes: usize,
	tick: u64,
	loading: HashMap<String, Slot>,
	/// The parts' file stamps each cached composition was built from.
	composed: HashMap<String, Vec<Stamp>>,
}

pub struct AdapterCache {
	pub dir: PathBuf,
	cfg: LlamaConfig,
	device: Device,
	budget_bytes: usize,
	/// The dtype of the resident copies made for the device paths ([`Self::with_resident`]).
	resident: Option<DType>,
	state: Mutex<State>,
	metrics: Metrics,
}

impl AdapterCache {
	pub fn new(dir: PathBuf, cfg: LlamaConfig, device: Device, budget_bytes: usize, metrics: Metrics) -> Self {
		Self { dir, cfg, device, budget_bytes, resident: None, state: Mutex::new(State::default()), metrics }
	}

	/// Loaded adapters get resident copies on the cache's device in `dtype` (the serving dtype),
	/// for the device paths ([`LoraAdapter::make_resident`]); their bytes count in the budget.
	/// Without it, copies are made on a device that is not the CPU, in f32.
	pub fn with_resident(mut self, dtype: DType) -> Self {
		self.resident = Some(dtype);
		self
	}

	/// Adapter folders in the store (those with both PEFT files), sorted.
	pub fn list(&self) -> Vec<String> {
		let mut names: Vec<String> = std::fs::read_dir(&self.dir)
			.into_iter()
			.flatten()
			.flatten()
			.filter_map(|e| {
				let name = e.file_name().to_string_lossy().into_owned();
				let p = e.path();
				(valid_name(&name) && p.join(CONFIG_FILE).is_file() && p.join(WEIGHTS_FILE).is_file()).then_some(name)
			})
			.collect();
		names.sort();
		names
	}

	/// Whether `name` names an adapter of the store (its folder has both PEFT files), or a
	/// composition of such adapters — without loading anything (a few `stat`s).
	pub fn in_store(&self, name: &str) -> bool {
		let one = |n: &str| valid_name(n) && self.dir.join(n).join(CONFIG_FILE).is_file() && self.dir.join(n).join(WEIGHTS_FILE).is_file();
		match crate::model::lora::parse_composition(name) {
			Some(Ok(parts)) => parts.iter().all(|(n, _)| one(n)),
			Some(Err(_)) => false,
			None => one(name),
		}
	}

	/// Resident adapters and their bytes.
	pub fn resident(&self) -> (usize, usize) {
		let s = self.state.lock().expect("poisoned only by a panic elsewhere; qed");
		(s.entries.len(), s.bytes)
	}

	/// The adapter called `name`, from memory or loaded once from the store; a composition
	/// (`a+b`, `a:0.7+b:0.3`, see [`crate::model::lora::parse_composition`]) of adapters of the store.
	pub async fn get(&self, name: &str) -> Result<Arc<LoraAdapter>, AdapterError> {
		match crate::model::lora::parse_composition(name) {
			Some(Ok(parts)) => return self.get_composed(&parts).await,
			Some(Err(e)) => return Err(AdapterError::Invalid(name.to_string(), e)),
			None => {},
		}
		if !valid_name(name) {
			return Err(AdapterError::NotFound(name.to_string()));
		}
		let now = stamp(&self.dir.join(name));
		let slot = {
			let mut s = self.state.lock().expect("not poisoned; qed");
			s.tick += 1;
			let tick = s.tick;
			match s.entries.get_mut(name) {
				Some((a, used, was)) if *was == now && now.is_some() => {
					*used = tick;
					self.metrics.adapter_hits.inc();
					return Ok(a.clone());
				},
				Some(_) => {
					// Replaced or removed on disk: forget it (requests in flight keep their copy).
					let (a, _, _) = s.entries.remove(name).expect("matched above; qed");
					s.bytes -= a.bytes;
					self.metrics.adapter_cache_bytes.set(s.bytes as i64);
				},
				None => {},
			}
			s.loading.entry(name.to_string()).or_default().clone()
		};
		let result = slot
			.get_or_init(|| async {
				let (dir, name_owned, cfg, device, resident) =
					(self.dir.join(name), name.to_string(), self.cfg.clone(), self.device.clone(), self.resident);
				let started = std::time::Instant::now();
				let loaded = tokio::task::spawn_blocking(move || {
					if !dir.join(CONFIG_FILE).is_file() {
						return Err(AdapterError::NotFound(name_owned));
					}
					// Stamped before reading: a change during the load shows at the next request.
					let before = stamp(&dir);
					let loaded = match resident {
						// Loaded on the host, then its resident copies made once, in `dtype`.
						Some(dtype) => LoraAdapter::load(&dir, &name_owned, &cfg, &Device::Cpu).and_then(|mut a| {
							a.make_resident(&device, dtype)?;
							Ok(a)
						}),
						None => LoraAdapter::load(&dir, &name_owned, &cfg, &device),
					};
					loaded.map(|a| (Arc::new(a), before)).map_err(|e| AdapterError::Invalid(name_owned, format!("{e:#}")))
				})
				.await
				.unwrap_or_else(|e| Err(AdapterError::Invalid(name.to_string(), e.to_string())));
				if loaded.is_ok() {
					self.metrics.adapter_loads.inc();
					self.metrics.adapter_load_seconds.observe(started.elapsed().as_secs_f64());
				}
				loaded
			})
			.await
			.clone();
		let mut s = self.state.lock().expect("not poisoned; qed");
		if s.loading.get(name).is_some_and(|l| Arc::ptr_eq(l, &slot)) {
			s.loading.remove(name);
			if let Ok((a, st)) = &result {
				s.tick += 1;
				let tick = s.tick;
				s.bytes += a.bytes;
				if let Some((old, _, _)) = s.entries.insert(name.to_string(), (a.clone(), tick, *st)) {
					s.bytes -= old.bytes;
				}
				self.evict(&mut s, name);
			}
		}
		result.map(|(a, _)| a)
	}

	/// A composition of the store's adapters, built once (concurrent requests share one build)
	/// and kept under its canonical name in the same byte budget (it holds its own stacked copy
	/// of the parts' pairs, so the budget should hold it beside its parts). A cached composition
	/// is served while its parts' files are unchanged — checked from their stamps, without
	/// loading the parts — and built again from the new parts otherwise.
	async fn get_composed(&self, parts: &[(String, f32)]) -> Result<Arc<LoraAdapter>, AdapterError> {
		let key = crate::model::lora::canonical_composition(parts);
		let stamps: Vec<Stamp> = parts.iter().map(|(n, _)| stamp(&self.dir.join(n))).collect();
		let slot = {
			let mut s = self.state.lock().expect("not poisoned; qed");
			s.tick += 1;
			let tick = s.tick;
			let fresh = stamps.iter().all(Option::is_some) && s.composed.get(&key) == Some(&stamps);
			match s.entries.get_mut(&key) {
				Some((a, used, _)) if fresh => {
					*used = tick;
					self.metrics.adapter_hits.inc();
					return Ok(a.clone());
				},
				Some(_) => {
					let (a, _, _) = s.entries.remove(&key).expect("matched above; qed");
					s.bytes -= a.bytes;
				},
				None => {},
			}
			s.loading.entry(key.clone()).or_default().clone()
		};
		let result = slot
			.get_or_init(|| async {
				let mut loaded = Vec::with_capacity(parts.len());
				for (part, w) in parts {
					loaded.push((Box::pin(self.get(part)).await?, *w));
				}
				let (key, device) = (key.clone(), self.device.clone());
				tokio::task::spawn_blocking(move || {
					let refs: Vec<(&LoraAdapter, f32)> = loaded.iter().map(|(a, w)| (a.as_ref(), *w)).collect();
					LoraAdapter::compose(&key, &refs, &device).map(|a| (Arc::new(a), None)).map_err(|e| AdapterError::Invalid(key, format!("{e:#}")))
				})
				.await
				.unwrap_or_else(|e| Err(AdapterError::Invalid("composition".into(), e.to_string())))
			})
			.await
			.clone();
		let mut s = self.state.lock().expect("not poisoned; qed");
		if s.loading.get(&key).is_some_and(|l| Arc::ptr_eq(l, &slot)) {
			s.loading.remove(&key);
			if let Ok((a, _)) = &result {
				s.tick += 1;
				let tick = s.tick;
				s.bytes += a.bytes;
				if let Some((old, _, _)) = s.entries.insert(key.clone(), (a.clone(), tick, None)) {
					s.bytes -= old.bytes;
				}
				s.composed.insert(key.clone(), stamps);
				self.evict(&mut s, &key);
			}
		}
		result.map(|(a, _)| a)
	}

	/// Evicts least recently used adapters (never `keep`) until the budget holds.
	fn evict(&self, s: &mut State, keep: &str) {
		while s.bytes > self.budget_bytes {
			let Some(victim) =
				s.entries.iter().filter(|(n, _)| n.as_str() != keep).min_by_key(|(_, (_, t, _))| *t).map(|(n, _)| n.clone())
			else {
				break;
			};
			let (a, _, _) = s.entries.remove(&victim).expect("found above; qed");
			s.composed.remove(&victim);
			s.bytes -= a.bytes;
			self.metrics.adapter_evictions.inc();
		}
		self.metrics.adapter_cache_bytes.set(s.bytes as i64);
	}

	/// Forgets `name` (e.g. the folder was replaced); requests in flight keep their copy.
	pub fn invalidate(&self, name: &str) {
		let mut s = self.state.lock().expect("not poisoned; qed");
		if let Some((a, _, _)) = s.entries.remove(name) {
			s.bytes -= a.bytes;
		}
		self.metrics.adapter_cache_bytes.set(s.bytes as i64);
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::model::synthetic::{write_adapter, BaseSpec};

	fn setup(n: usize) -> (tempfile::TempDir, LlamaConfig) {
		let dir = tempfile::tempdir().unwrap();
		let cfg = BaseSpec::default().config(1, vec![2]);
		for i in 0..n {
			write_adapter(&dir.path().join(format!("a{i}")), &cfg, 4, 8.0, &["q_proj", "v_proj"], i as u64).unwrap();
		}
		(dir, cfg)
	}

	#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
	async fn concurrent_cold_requests_load_once() {
		let (dir, cfg) = setup(2);
		let m = Metrics::new();
		let cache = Arc::new(AdapterCache::new(dir.path().into(), cfg, Device::Cpu, 1 << 30, m.clone()));
		let tasks: Vec<_> = (0..16)
			.map(|_| {
				let c = cache.clone();
				tokio::spawn(async move { c.get("a0").await.unwrap() })
			})
			.collect();
		let got: Vec<Arc<LoraAdapter>> = futures::future::join_all(tasks).await.into_iter().map(|r| r.unwrap()).collect();
		assert!(got.iter().all(|a| Arc::ptr_eq(a, &got[0])), "one shared instance");
		assert_eq!(m.adapter_loads.get(), 1);
		assert_eq!(cache.list(), vec!["a0", "a1"]);
	}

	#[tokio::test]
	async fn lru_eviction_respects_the_byte_budget() {
		let (dir, cfg) = setup(3);
		let m = Metrics::new();
		let probe = AdapterCache::new(dir.path().into(), cfg.clone(), Device::Cpu, 1 << 30, m.clone());
		let one = probe.get("a0").await.unwrap().bytes;
		let cache = AdapterCache::new(dir.path().into(), cfg, Device::Cpu, 2 * one, Metrics::new());
		let a0 = cache.get("a0").await.unwrap();
		cache.get("a1").await.unwrap();
		cache.get("a0").await.unwrap(); // a0 is now more recent than a1
		cache.get("a2").await.unwrap(); // evicts a1
		assert_eq!(cache.resident(), (2, 2 * one));
		let s = cache.state.lock().unwrap();
		assert!(s.entries.contains_key("a0") && s.entries.contains_key("a2") && !s.entries.contains_key("a1"));
		drop(s);
		assert_eq!(a0.name, "a0", "an evicted or resident adapter held by a request stays usable");
	}

	/// Resident copies (f16 here) are made at load and their bytes count in the budget: a budget
	/// that holds two adapters' host copies holds one adapter with its resident copies.
	#[tokio::test]
	async fn resident_copies_count_in_the_budget() {
		let (dir, cfg) = setup(2);
		let plain = AdapterCache::new(dir.path().into(), cfg.clone(), Device::Cpu, 1 << 30, Metrics::new());
		let host = plain.get("a0").await.unwrap().bytes;
		assert!(plain.get("a0").await.unwrap().layers.iter().flatten().flatten().all(|p| p.device.is_none()));
		let cache = AdapterCache::new(dir.path().into(), cfg, Device::Cpu, 2 * host, Metrics::new()).with_resident(DType::F16);
		let a0 = cache.get("a0").await.unwrap();
		assert_eq!(a0.bytes, host + host / 2);
		assert!(a0.layers.iter().flatten().flatten().all(|p| p.device.as_ref().is_some_and(|(at, bt)| at.dtype() == DType::F16 && bt.dtype() == DType::F16)));
		assert_eq!(cache.resident(), (1, host + host / 2));
		cache.get("a1").await.unwrap();
		assert_eq!(cache.resident(), (1, host + host / 2), "the second evicts the first");
	}

	#[tokio::test]
	async fn unknown_bad_and_hostile_names() {
		let (dir, cfg) = setup(1);
		std::fs::create_dir(dir.path().join("broken")).unwrap();
		std::fs::write(dir.path().join("broken").join(CONFIG_FILE), br#"{"r": 4}"#).unwrap();
		let cache = AdapterCache::new(dir.path().into(), cfg, Device::Cpu, 1 << 30, Metrics::new());
		assert_eq!(cache.get("nope").await.unwrap_err(), AdapterError::NotFound("nope".into()));
		assert_eq!(cache.get("../a0").await.unwrap_err(), AdapterError::NotFound("../a0".into()));
		assert!(matches!(cache.get("broken").await.unwrap_err(), AdapterError::Invalid(..)));
		assert!(cache.get("a0").await.is_ok());
	}

	#[tokio::test]
	async fn compositions_are_built_once_and_again_when_a_part_changes() {
		let (dir, cfg) = setup(2);
		let m = Metrics::new();
		let cache = AdapterCache::new(dir.path().into(), cfg.clone(), Device::Cpu, 1 << 30, m.clone());
		let c = cache.get("a0+a1").await.unwrap();
		assert_eq!(c.parts.len(), 2);
		assert!(Arc::ptr_eq(&c, &cache.get("a0+a1").await.unwrap()), "built once");
		assert!(Arc::ptr_eq(&c, &cache.get("a0:1+a1:1.0").await.unwrap()), "one entry per canonical composition");
		// Concurrent first requests share one build.
		let cache2 = Arc::new(AdapterCache::new(dir.path().into(), cfg.clone(), Device::Cpu, 1 << 30, Metrics::new()));
		let tasks: Vec<_> = (0..8).map(|_| { let c = cache2.clone(); tokio::spawn(async move { c.get("a1+a0").await.unwrap() }) }).collect();
		let got: Vec<Arc<LoraAdapter>> = futures::future::join_all(tasks).await.into_iter().map(|r| r.unwrap()).collect();
		assert!(got.iter().all(|a| Arc::ptr_eq(a, &got[0])), "one shared build");
		let weighted = cache.get("a0:0.5+a1").await.unwrap();
		assert_ne!(weighted.id, c.id);
		let (a0, a1) = (cache.get("a0").await.unwrap(), cache.get("a1").await.unwrap());
		assert_eq!(cache.resident(), (4, a0.bytes + a1.bytes + c.bytes + weighted.bytes), "compositions count in the budget");
		// A part missing, a bad name, a part twice: refused, nothing resident added.
		assert_eq!(cache.get("a0+nope").await.unwrap_err(), AdapterError::NotFound("nope".into()));
		assert!(matches!(cache.get("a0+a0").await.unwrap_err(), AdapterError::Invalid(..)));
		assert!(matches!(cache.get("a0:9+a1").await.unwrap_err(), AdapterError::Invalid(..)));
		assert_eq!(cache.resident().0, 4);
		// A part replaced on disk: the composition is built again from the new part.
		let tmp = dir.path().join("new");
		write_adapter(&tmp, &cfg, 6, 8.0, &["q_proj", "v_proj"], 99).unwrap();
		std::fs::remove_dir_all(dir.path().join("a1")).unwrap();
		std::fs::rename(&tmp, dir.path().join("a1")).unwrap();
		let again = cache.get("a0+a1").await.unwrap();
		assert_ne!(again.id, c.id);
		assert_eq!(again.parts[1].1, cache.get("a1").await.unwrap().id);
	}

	/// An adapter replaced on disk is served from its new files at the next request (the old
	/// copy stays with the requests that hold it).
	#[tokio::test]
	async fn an_adapter_replaced_on_disk_is_reloaded() {
		let (dir, cfg) = setup(1);
		let cache = AdapterCache::new(dir.path().into(), cfg.clone(), Device::Cpu, 1 << 30, Metrics::new());
		let first = cache.get("a0").await.unwrap();
		assert!(Arc::ptr_eq(&first, &cache.get("a0").await.unwrap()), "unchanged: served from memory");
		let tmp = dir.path().join("new");
		write_adapter(&tmp, &cfg, 4, 8.0, &["q_proj", "v_proj"], 99).unwrap();
		// A different size, so the change shows even within the file system's time resolution.
		write_adapter(&tmp, &cfg, 6, 8.0, &["q_proj", "v_proj"], 99).unwrap();
		std::fs::remove_dir_all(dir.path().join("a0")).unwrap();
		std::fs::rename(&tmp, dir.path().join("a0")).unwrap();
		let second = cache.get("a0").await.unwrap();
		assert_ne!(second.id, first.id, "the new weights are served");
		assert_eq!(cache.resident(), (1, second.bytes), "the old copy left the budget");
		assert_eq!(first.config.r, 4, "a request holding the old copy keeps it");
		std::fs::remove_dir_all(dir.path().join("a0")).unwrap();
		assert_eq!(cache.get("a0").await.unwrap_err(), AdapterError::NotFound("a0".into()), "removed on disk: gone");
	}
}
