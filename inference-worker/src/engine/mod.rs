//! The generation engine: one thread owns the model and runs continuous batching.
//!
//! Requests come over a channel; admission is bounded by a semaphore (running + queued), so an
//! overloaded worker refuses new work at once instead of piling it up. Between decode steps the
//! scheduler admits waiting sequences in arrival order within the step's token budget; decoding
//! sequences get their one token first and prompts are fed in chunks from what is left (chunked
//! prefill), so a long prompt never stalls the sequences already decoding and never waits for
//! them to finish. Each step is one ragged forward pass over every row,
//! each with its own KV cache and LoRA adapter. A sequence whose client went away is dropped
//! before the next step.

pub mod backend;
pub mod sampling;

use crate::metrics::Metrics;
use crate::model::llama::Llama;
use crate::model::lora::LoraAdapter;
use backend::{Backend, CandleBackend, StepRow};
use crate::tokenizer::{IncrementalDecoder, TextTokenizer};
use sampling::{Sampler, SamplingParams, StopFilter};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

#[derive(Clone, Debug)]
pub struct EngineConfig {
	/// Most sequences in one forward step.
	pub max_batch: usize,
	/// Most tokens in one forward step (decode rows count one each, new rows their prompt).
	pub max_step_tokens: usize,
	/// Sequences that may wait beyond a full batch before requests are refused.
	pub queue: usize,
	/// Bytes of KV cache that running and queued sequences may hold at their longest (prompt +
	/// `max_tokens`); a request beyond what is free waits outside (429), one that could never
	/// fit is refused (400). `None`: bounded by `max_position_embeddings` per sequence only.
	pub kv_cache_bytes: Option<usize>,
	/// Token ids never sampled (`generation_config.json`'s `suppress_tokens`). Ids past the
	/// tokenizer's vocabulary (padding rows of the embedding, e.g. Qwen2's 151,646‥151,935) are
	/// never sampled either: they have no text.
	pub suppress_tokens: Vec<u32>,
}

impl Default for EngineConfig {
	fn default() -> Self {
		Self { max_batch: 32, max_step_tokens: 2048, queue: 64, kv_cache_bytes: None, suppress_tokens: Vec::new() }
	}
}

/// What the engine thread is doing, for `/health`: alive or stopped, and how many sequences
/// it has failed because of a panic while serving them.
#[derive(Default)]
pub struct EngineHealth {
	stopped: AtomicBool,
	panics: AtomicU64,
}

impl EngineHealth {
	pub fn alive(&self) -> bool {
		!self.stopped.load(Ordering::SeqCst)
	}
	pub fn panics(&self) -> u64 {
		self.panics.load(Ordering::SeqCst)
	}
}

/// Marks the engine stopped when its thread ends, however it ends.
struct StopGuard(Arc<EngineHealth>);

impl Drop for StopGuard {
	fn drop(&mut self) {
		self.0.stopped.store(true, Ordering::SeqCst);
	}
}

/// The text of a caught panic.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
	p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_else(|| "panic".into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
	Stop,
	Length,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
	/// Text released by this step (may be empty while a stop string is undecided).
	Token { id: u32, text: String },
	Done { reason: FinishReason, prompt_tokens: usize, completion_tokens: usize },
	Error(String),
}

pub struct GenRequest {
	pub prompt: Vec<u32>,
	pub adapter: Option<Arc<LoraAdapter>>,
	pub params: SamplingParams,
	pub events: mpsc::Sender<Event>,
	_permit: OwnedSemaphorePermit,
	_kv: Option<OwnedSemaphorePermit>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SubmitError {
	#[error("the worker is busy: {0} requests are running or queued")]
	Busy(usize),
	#[error("the engine has stopped")]
	Stopped,
	/// The KV memory the request may need is in use by others now.
	#[error("the worker's KV cache is full: this request may need {need} KiB, {free} KiB are free")]
	KvBusy { need: usize, free: usize },
	/// The request could never fit the configured KV cache.
	#[error("this request may need {need} KiB of KV cache, more than the worker's whole cache ({total} KiB); ask for fewer tokens")]
	KvTooLarge { need: usize, total: usize },
}

/// A handle to the engine thread.
#[derive(Clone)]
pub struct Engine {
	tx: mpsc::UnboundedSender<GenRequest>,
	slots: Arc<Semaphore>,
	capacity: usize,
	pub max_len: usize,
	/// KV budget in tokens (each permit is one token's K and V in every layer) and its size.
	kv: Option<(Arc<Semaphore>, usize)>,
	/// Bytes of K and V one token holds in every layer.
	pub kv_bytes_per_token: usize,
	pub health: Arc<EngineHealth>,
}

impl Engine {
	/// Starts the engine thread for the candle `model`.
	pub fn start(model: Arc<Llama>, tokenizer: Arc<TextTokenizer>, cfg: EngineConfig, metrics: Metrics) -> Self {
		Self::start_with(CandleBackend::new(model), tokenizer, cfg, metrics)
	}

	/// Starts the engine thread for any [`Backend`].
	pub fn start_with<B: Backend>(backend: B, tokenizer: Arc<TextTokenizer>, cfg: EngineConfig, metrics: Metrics) -> Self {
		let (tx, rx) = mpsc::unbounded_channel();
		let info = backend.info();
		// Never sampled: `suppress_tokens`, and every id past the tokenizer's highest (padding
		// rows: no text).
		let known = tokenizer.inner.get_vocab(true).values().max().map_or(0, |&m| m as usize + 1);
		let mut never: Vec<u32> =
			cfg.suppress_tokens.iter().copied().filter(|&i| (i as usize) < info.vocab_size).chain(known.min(info.vocab_size) as u32..info.vocab_size as u32).collect();
		never.sort_unstable();
		never.dedup();
		let mut eos = info.eos.clone();
		if let Some(id) = tokenizer.eos_token.as_deref().and_then(|t| tokenizer.token_id(t)) {
			eos.push(id);
		}
		let engine = Self::handle(tx, &cfg, info.max_positions, info.kv_bytes_per_token);
		let health = engine.health.clone();
		let sched = Scheduler {
			backend,
			never,
			max_pos: info.max_positions,
			tokenizer,
			cfg,
			metrics,
			eos,
			waiting: VecDeque::new(),
			active: Vec::new(),
			health: health.clone(),
		};
		let guard = StopGuard(health);
		std::thread::Builder::new()
			.name("engine".into())
			.spawn(move || {
				let _guard = guard;
				sched.run(rx)
			})
			.expect("spawning the engine thread");
		engine
	}

	/// The handle's admission state (slots, KV budget) for requests sent on `tx`.
	fn handle(tx: mpsc::UnboundedSender<GenRequest>, cfg: &EngineConfig, max_len: usize, kv_bytes_per_token: usize) -> Self {
		let capacity = cfg.max_batch + cfg.queue;
		let kv = cfg.kv_cache_bytes.map(|b| {
			let tokens = (b / kv_bytes_per_token.max(1)).min(Semaphore::MAX_PERMITS);
			(Arc::new(Semaphore::new(tokens)), tokens)
		});
		Self { tx, slots: Arc::new(Semaphore::new(capacity)), capacity, max_len, kv, kv_bytes_per_token, health: Default::default() }
	}

	/// Queues a request; refuses at once when running + queued would exceed the capacity.
	pub fn submit(
		&self,
		prompt: Vec<u32>,
		adapter: Option<Arc<LoraAdapter>>,
		params: SamplingParams,
	) -> Result<mpsc::Receiver<Event>, SubmitError> {
		if !self.health.alive() {
			return Err(SubmitError::Stopped);
		}
		let kv = match &self.kv {
			None => None,
			Some((pool, total)) => {
				let need = prompt.len() + params.max_tokens;
				let kib = |tokens: usize| (tokens * self.kv_bytes_per_token).div_ceil(1024);
				if need > *total {
					return Err(SubmitError::KvTooLarge { need: kib(need), total: kib(*total) });
				}
				let free = pool.available_permits();
				// `need` ≤ total ≤ MAX_PERMITS < u32::MAX.
				Some(pool.clone().try_acquire_many_owned(need as u32).map_err(|_| SubmitError::KvBusy { need: kib(need), free: kib(free) })?)
			},
		};
		let permit = self.slots.clone().try_acquire_owned().map_err(|_| SubmitError::Busy(self.capacity))?;
		// Room for every event the sequence can produce, so the engine never blocks on a client.
		let (events, rx) = mpsc::channel(params.max_tokens.min(self.max_len).saturating_add(2));
		self.tx
			.send(GenRequest { prompt, adapter, params, events, _permit: permit, _kv: kv })
			.map_err(|_| SubmitError::Stopped)?;
		Ok(rx)
	}

	/// KV tokens reserved by running and queued sequences, and the budget (with `--kv-cache-mib`).
	pub fn kv_reserved(&self) -> Option<(usize, usize)> {
		self.kv.as_ref().map(|(p, total)| (total - p.available_permits(), *total))
	}

	/// Requests running or queued now.
	pub fn in_flight(&self) -> usize {
		self.capacity - self.slots.available_permits()
	}
}

struct Seq<S> {
	req: GenRequest,
	state: S,
	sampler: Sampler,
	decoder: IncrementalDecoder,
	stop: StopFilter,
	generated: Vec<u32>,
	/// Prompt tokens already in the cache (prefill may take several steps).
	fed: usize,
	/// Tokens fed this step.
	feed: Vec<u32>,
}

impl<S> Seq<S> {
	/// Whether this step's feed ends the prompt or decodes: then the sequence samples after it.
	fn samples(&self) -> bool {
		self.fed + self.feed.len() >= self.req.prompt.len()
	}
}

struct Scheduler<B: Backend> {
	backend: B,
	/// Ids set to −∞ in every logits row before sampling.
	never: Vec<u32>,
	max_pos: usize,
	tokenizer: Arc<TextTokenizer>,
	cfg: EngineConfig,
	metrics: Metrics,
	eos: Vec<u32>,
	waiting: VecDeque<GenRequest>,
	active: Vec<Seq<B::State>>,
	health: Arc<EngineHealth>,
}

#[cfg(test)]
pub(crate) static PANIC_ON_SEED: AtomicU64 = AtomicU64::new(u64::MAX);
/// A step with a sequence of this seed panics before its forward pass (the whole step fails).
#[cfg(test)]
pub(crate) static PANIC_STEP_ON_SEED: AtomicU64 = AtomicU64::new(u64::MAX);

impl<B: Backend> Scheduler<B> {
	/// Fails every active sequence with `message` (their caches may be half-written).
	fn fail_active(&mut self, message: &str) {
		for s in self.active.drain(..) {
			let _ = s.req.events.try_send(Event::Error(message.to_string()));
		}
		self.metrics.running.set(0);
	}

	fn run(mut self, mut rx: mpsc::UnboundedReceiver<GenRequest>) {
		loop {
			if self.active.is_empty() && self.waiting.is_empty() {
				match rx.blocking_recv() {
					Some(r) => self.waiting.push_back(r),
					None => return,
				}
			}
			while let Ok(r) = rx.try_recv() {
				self.waiting.push_back(r);
			}
			// A panic while stepping (the forward pass, scheduling) fails the sequences of this
			// step and nothing else: the engine goes on with the next requests.
			if let Err(p) = catch_unwind(AssertUnwindSafe(|| self.step())) {
				let n = self.active.len() as u64;
				self.health.panics.fetch_add(n.max(1), Ordering::SeqCst);
				let msg = format!("internal error in the generation step: {}", panic_text(&*p));
				tracing::error!("{msg}; failing {n} sequences");
				self.fail_active(&msg);
			}
		}
	}

	/// Admission in arrival order while the batch has room and this step's token budget is not
	/// spent. Prompts are fed in chunks (chunked prefill), so a long prompt neither waits for the
	/// running sequences to finish nor stalls them: decode rows are served first, one token each.
	fn admit(&mut self) {
		let before = self.waiting.len();
		self.waiting.retain(|r| !r.events.is_closed());
		self.metrics.cancelled.inc_by((before - self.waiting.len()) as u64);
		let committed: usize = self.active.iter().map(|s| (s.req.prompt.len() - s.fed).max(1)).sum();
		let mut budget = self.cfg.max_step_tokens.saturating_sub(committed);
		while self.active.len() < self.cfg.max_batch && (budget > 0 || self.active.is_empty()) {
			let Some(req) = self.waiting.pop_front() else { break };
			budget = budget.saturating_sub(req.prompt.len());
			self.metrics.prompt_tokens.inc_by(req.prompt.len() as u64);
			// The state is sized for what the KV budget reserved for it.
			let reserved = req.prompt.len() + req.params.max_tokens;
			self.active.push(Seq {
				sampler: Sampler::new(req.params.clone()),
				stop: StopFilter::new(req.params.stop.clone()),
				req,
				state: self.backend.new_state(reserved),
				decoder: IncrementalDecoder::default(),
				generated: Vec::new(),
				fed: 0,
				feed: Vec::new(),
			});
		}
		self.metrics.waiting.set(self.waiting.len() as i64);
		self.metrics.running.set(self.active.len() as i64);
	}

	/// Chooses each sequence's tokens for this step: decode rows first (one token each), then
	/// prompt chunks in admission order from what is left of the budget.
	fn plan(&mut self) {
		let mut budget = self.cfg.max_step_tokens;
		for s in self.active.iter_mut().filter(|s| s.fed == s.req.prompt.len()) {
			s.feed = vec![*s.generated.last().expect("a fully fed sequence has sampled; qed")];
			budget = budget.saturating_sub(1);
		}
		for s in self.active.iter_mut().filter(|s| s.fed < s.req.prompt.len()) {
			let n = (s.req.prompt.len() - s.fed).min(budget);
			s.feed = s.req.prompt[s.fed..s.fed + n].to_vec();
			budget -= n;
		}
		// Never an empty step: the oldest prefill gets at least one token.
		if self.active.iter().all(|s| s.feed.is_empty()) {
			if let Some(s) = self.active.first_mut() {
				s.feed = vec![s.req.prompt[s.fed]];
			}
		}
	}

	fn step(&mut self) {
		let before = self.active.len();
		self.active.retain(|s| !s.req.events.is_closed());
		self.metrics.cancelled.inc_by((before - self.active.len()) as u64);
		self.admit();
		if self.active.is_empty() {
			return;
		}
		self.plan();
		#[cfg(test)]
		if self.active.iter().any(|s| s.req.params.seed == Some(PANIC_STEP_ON_SEED.load(Ordering::SeqCst))) {
			panic!("injected step fault");
		}
		let started = std::time::Instant::now();
		let mut rows: Vec<StepRow<'_, B::State>> = self
			.active
			.iter_mut()
			.filter(|s| !s.feed.is_empty())
			.map(|s| {
				// Only rows that finish their prompt or decode sample: the others get no logits.
				let sample = s.samples();
				StepRow { tokens: &s.feed, state: &mut s.state, adapter: s.req.adapter.as_deref(), sample }
			})
			.collect();
		let n_rows = rows.len();
		let n_sample = rows.iter().filter(|r| r.sample).count();
		let logits = self.backend.step(&mut rows).and_then(|l| {
			anyhow::ensure!(l.len() == n_sample, "the backend gave {} logits rows for {n_sample} sampling rows", l.len());
			Ok(l)
		});
		drop(rows);
		self.metrics.step_seconds.observe(started.elapsed().as_secs_f64());
		self.metrics.batch_rows.observe(n_rows as f64);
		let logits = match logits {
			Ok(l) => l,
			Err(e) => {
				// The rows of this step may hold half-written state: they fail; sequences that
				// fed nothing this step go on.
				tracing::error!("forward step failed: {e:#}");
				let (failed, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.active).into_iter().partition(|s| !s.feed.is_empty());
				self.active = kept;
				for s in failed {
					let _ = s.req.events.try_send(Event::Error(format!("{e:#}")));
				}
				self.metrics.running.set(self.active.len() as i64);
				return;
			}
		};
		let mut logits = logits.into_iter();
		let mut finished = Vec::new();
		let (eos, tokenizer, metrics, max_pos, never) = (&self.eos, &*self.tokenizer, &self.metrics, self.max_pos, &self.never);
		for (i, s) in self.active.iter_mut().enumerate() {
			if s.feed.is_empty() {
				continue;
			}
			let row_logits = if s.samples() {
				let mut row = logits.next().expect("one row of logits per sampling sequence; qed");
				for &id in never {
					if let Some(l) = row.get_mut(id as usize) {
						*l = f32::NEG_INFINITY;
					}
				}
				Some(row)
			} else {
				None
			};
			// A panic in one sequence's sampling, detokenization or stop handling fails that
			// sequence only.
			match catch_unwind(AssertUnwindSafe(|| Self::advance(s, row_logits, eos, tokenizer, metrics, max_pos))) {
				Ok(true) => finished.push(i),
				Ok(false) => {},
				Err(p) => {
					self.health.panics.fetch_add(1, Ordering::SeqCst);
					let msg = format!("internal error while generating this answer: {}", panic_text(&*p));
					tracing::error!("{msg}; failing the sequence");
					let _ = s.req.events.try_send(Event::Error(msg));
					finished.push(i);
				},
			}
		}
		for i in finished.into_iter().rev() {
			self.active.swap_remove(i); // drops the permit: a slot frees up
		}
		self.metrics.running.set(self.active.len() as i64);
	}

	/// Takes one row of logits for `s`: samples, detokenizes, sends the event(s). True when
	/// the sequence is done.
	fn advance<S>(s: &mut Seq<S>, row_logits: Option<Vec<f32>>, eos: &[u32], tokenizer: &TextTokenizer, metrics: &Metrics, max_pos: usize) -> bool {
		if s.fed < s.req.prompt.len() {
			s.fed += s.feed.len();
			if s.fed < s.req.prompt.len() {
				s.feed.clear();
				return false; // more prompt to feed before the first sample
			}
		}
		let Some(row_logits) = row_logits else {
			unreachable!("a sequence that has fed its whole prompt samples, so it was given logits; qed")
		};
		s.feed.clear();
		#[cfg(test)]
		if s.req.params.seed == Some(PANIC_ON_SEED.load(Ordering::SeqCst)) {
			panic!("injected fault");
		}
		let token = s.sampler.sample(&row_logits);
		s.generated.push(token);
		metrics.generated_tokens.inc();
		let mut reason = None;
		let mut text = String::new();
		if eos.contains(&token) {
			reason = Some(FinishReason::Stop);
			text.push_str(&s.stop.flush());
		} else {
			let delta = s.decoder.push(tokenizer, token).unwrap_or_default().unwrap_or_default();
			let (out, hit) = s.stop.push(&delta);
			text = out;
			if hit {
				reason = Some(FinishReason::Stop);
			} else if s.generated.len() >= s.req.params.max_tokens || s.req.prompt.len() + s.generated.len() >= max_pos {
				reason = Some(FinishReason::Length);
				text.push_str(&s.stop.flush());
			}
		}
		let _ = s.req.events.try_send(Event::Token { id: token, text });
		if let Some(reason) = reason {
			let _ = s.req.events.try_send(Event::Done {
				reason,
				prompt_tokens: s.req.prompt.len(),
				completion_tokens: s.generated.len(),
			});
			return true;
		}
		false
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::model::synthetic::{write_base_model, BaseSpec};
	use candle_core::{DType, Device};

	fn engine(cfg: EngineConfig) -> (tempfile::TempDir, Engine) {
		let dir = tempfile::tempdir().unwrap();
		let spec = BaseSpec { vocab: 300, hidden: 32, intermediate: 48, max_positions: 256, ..Default::default() };
		write_base_model(dir.path(), &spec, 1).unwrap();
		let model = Arc::new(Llama::load_dir(dir.path(), DType::F32, &Device::Cpu).unwrap());
		let tokenizer = Arc::new(TextTokenizer::load(dir.path()).unwrap());
		(dir, Engine::start(model, tokenizer, cfg, Metrics::new()))
	}

	fn greedy(max_tokens: usize, seed: u64) -> SamplingParams {
		SamplingParams { temperature: 0.0, max_tokens, seed: Some(seed), ..Default::default() }
	}

	async fn outcome(mut rx: mpsc::Receiver<Event>) -> Result<usize, String> {
		let mut n = 0;
		while let Some(ev) = rx.recv().await {
			match ev {
				Event::Token { .. } => n += 1,
				Event::Done { .. } => return Ok(n),
				Event::Error(e) => return Err(e),
			}
		}
		Err("closed".into())
	}

	/// A panic while serving one sequence fails that sequence only: the one beside it in the
	/// batch finishes, the engine serves the next request, and its health says what happened.
	#[tokio::test]
	async fn a_panic_in_one_sequence_fails_only_that_sequence() {
		let (_dir, e) = engine(EngineConfig::default());
		PANIC_ON_SEED.store(0xdead, Ordering::SeqCst);
		let bad = e.submit(vec![5, 6, 7], None, greedy(8, 0xdead)).unwrap();
		let good = e.submit(vec![5, 6, 8], None, greedy(8, 1)).unwrap();
		let (bad, good) = tokio::join!(outcome(bad), outcome(good));
		assert!(bad.unwrap_err().contains("injected fault"));
		assert!(good.unwrap() >= 1);
		assert!(e.health.alive());
		assert_eq!(e.health.panics(), 1);
		let next = e.submit(vec![9, 10], None, greedy(4, 2)).unwrap();
		assert!(outcome(next).await.unwrap() >= 1, "the engine goes on");
	}

	/// A panic in the step itself (the forward pass) fails the sequences of that step, with an
	/// error each, and the engine serves the next request.
	#[tokio::test]
	async fn a_panic_in_a_step_fails_its_sequences_and_the_engine_goes_on() {
		let (_dir, e) = engine(EngineConfig::default());
		PANIC_STEP_ON_SEED.store(0xbeef, Ordering::SeqCst);
		let a = e.submit(vec![5, 6, 7], None, greedy(8, 0xbeef)).unwrap();
		let b = e.submit(vec![5, 6, 8], None, greedy(8, 3)).unwrap();
		let (a, b) = tokio::join!(outcome(a), outcome(b));
		assert!(a.unwrap_err().contains("injected step fault"));
		// `b` shared the step (then it failed too) or ran after it (then it finished).
		if let Err(msg) = &b {
			assert!(msg.contains("injected step fault"), "{msg}");
		}
		assert!(e.health.alive() && e.health.panics() >= 1);
		let next = e.submit(vec![9, 10], None, greedy(4, 4)).unwrap();
		assert!(outcome(next).await.unwrap() >= 1, "the engine goes on");
	}

	/// The KV budget counts tokens × bytes per token: a request that could never fit is refused,
	/// one that does not fit beside those admitted waits outside (busy), and the budget comes
	/// back when a request ends. (A handle whose engine never runs: nothing finishes by itself.)
	#[test]
	fn kv_budget_refuses_what_does_not_fit() {
		let (tx, rx) = mpsc::unbounded_channel();
		let cfg = EngineConfig { kv_cache_bytes: Some(100 * 64), ..Default::default() };
		let e = Engine::handle(tx, &cfg, 512, 64);
		assert_eq!(e.kv_reserved(), Some((0, 100)));
		assert!(matches!(e.submit(vec![1; 60], None, greedy(41, 1)), Err(SubmitError::KvTooLarge { need: 7, total: 7 })));
		let a = e.submit(vec![1; 30], None, greedy(40, 1)).unwrap();
		assert_eq!(e.kv_reserved(), Some((70, 100)));
		assert_eq!(e.submit(vec![1; 20], None, greedy(20, 1)).unwrap_err(), SubmitError::KvBusy { need: 3, free: 2 });
		let b = e.submit(vec![1; 10], None, greedy(20, 1)).unwrap();
		assert_eq!(e.kv_reserved(), Some((100, 100)));
		drop((a, b, rx)); // the requests end (here: the engine's queue is dropped)
		assert_eq!(e.kv_reserved(), Some((0, 100)));
		let e = Engine::handle(mpsc::unbounded_channel().0, &EngineConfig::default(), 512, 64);
		assert_eq!(e.kv_reserved(), None, "no budget configured");
	}
}
