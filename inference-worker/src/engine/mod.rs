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

pub mod sampling;

use crate::metrics::Metrics;
use crate::model::llama::{KvCache, Llama, Row};
use crate::model::lora::LoraAdapter;
use crate::tokenizer::{IncrementalDecoder, TextTokenizer};
use sampling::{Sampler, SamplingParams, StopFilter};
use std::collections::VecDeque;
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
}

impl Default for EngineConfig {
	fn default() -> Self {
		Self { max_batch: 32, max_step_tokens: 2048, queue: 64 }
	}
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
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SubmitError {
	#[error("the worker is busy: {0} requests are running or queued")]
	Busy(usize),
	#[error("the engine has stopped")]
	Stopped,
}

/// A handle to the engine thread.
#[derive(Clone)]
pub struct Engine {
	tx: mpsc::UnboundedSender<GenRequest>,
	slots: Arc<Semaphore>,
	capacity: usize,
	pub max_len: usize,
}

impl Engine {
	/// Starts the engine thread for `model`.
	pub fn start(model: Arc<Llama>, tokenizer: Arc<TextTokenizer>, cfg: EngineConfig, metrics: Metrics) -> Self {
		let (tx, rx) = mpsc::unbounded_channel();
		let capacity = cfg.max_batch + cfg.queue;
		let max_len = model.cfg.max_position_embeddings;
		let mut eos = model.cfg.eos_ids();
		if let Some(id) = tokenizer.eos_token.as_deref().and_then(|t| tokenizer.token_id(t)) {
			eos.push(id);
		}
		let sched = Scheduler { model, tokenizer, cfg, metrics, eos, waiting: VecDeque::new(), active: Vec::new() };
		std::thread::Builder::new()
			.name("engine".into())
			.spawn(move || sched.run(rx))
			.expect("spawning the engine thread");
		Self { tx, slots: Arc::new(Semaphore::new(capacity)), capacity, max_len }
	}

	/// Queues a request; refuses at once when running + queued would exceed the capacity.
	pub fn submit(
		&self,
		prompt: Vec<u32>,
		adapter: Option<Arc<LoraAdapter>>,
		params: SamplingParams,
	) -> Result<mpsc::Receiver<Event>, SubmitError> {
		let permit = self.slots.clone().try_acquire_owned().map_err(|_| SubmitError::Busy(self.capacity))?;
		// Room for every event the sequence can produce, so the engine never blocks on a client.
		let (events, rx) = mpsc::channel(params.max_tokens + 2);
		self.tx
			.send(GenRequest { prompt, adapter, params, events, _permit: permit })
			.map_err(|_| SubmitError::Stopped)?;
		Ok(rx)
	}

	/// Requests running or queued now.
	pub fn in_flight(&self) -> usize {
		self.capacity - self.slots.available_permits()
	}
}

struct Seq {
	req: GenRequest,
	cache: KvCache,
	sampler: Sampler,
	decoder: IncrementalDecoder,
	stop: StopFilter,
	generated: Vec<u32>,
	/// Prompt tokens already in the cache (prefill may take several steps).
	fed: usize,
	/// Tokens fed this step.
	feed: Vec<u32>,
}

struct Scheduler {
	model: Arc<Llama>,
	tokenizer: Arc<TextTokenizer>,
	cfg: EngineConfig,
	metrics: Metrics,
	eos: Vec<u32>,
	waiting: VecDeque<GenRequest>,
	active: Vec<Seq>,
}

impl Scheduler {
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
			self.step();
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
			self.active.push(Seq {
				sampler: Sampler::new(req.params.clone()),
				stop: StopFilter::new(req.params.stop.clone()),
				req,
				cache: KvCache::default(),
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
		let started = std::time::Instant::now();
		let mut rows: Vec<Row<'_>> = self
			.active
			.iter_mut()
			.filter(|s| !s.feed.is_empty())
			.map(|s| Row { tokens: &s.feed, cache: &mut s.cache, adapter: s.req.adapter.as_deref() })
			.collect();
		let n_rows = rows.len();
		let logits = self.model.forward(&mut rows).and_then(|l| Ok(l.to_vec2::<f32>()?));
		drop(rows);
		self.metrics.step_seconds.observe(started.elapsed().as_secs_f64());
		self.metrics.batch_rows.observe(n_rows as f64);
		let logits = match logits {
			Ok(l) => l,
			Err(e) => {
				tracing::error!("forward step failed: {e:#}");
				for s in self.active.drain(..) {
					let _ = s.req.events.try_send(Event::Error(format!("{e:#}")));
				}
				return;
			}
		};
		let mut logits = logits.into_iter();
		let mut finished = Vec::new();
		for (i, s) in self.active.iter_mut().enumerate() {
			if s.feed.is_empty() {
				continue;
			}
			let row_logits = logits.next().expect("one row of logits per fed sequence; qed");
			if s.fed < s.req.prompt.len() {
				s.fed += s.feed.len();
				if s.fed < s.req.prompt.len() {
					s.feed.clear();
					continue; // more prompt to feed before the first sample
				}
			}
			s.feed.clear();
			let token = s.sampler.sample(&row_logits);
			s.generated.push(token);
			self.metrics.generated_tokens.inc();
			let mut reason = None;
			let mut text = String::new();
			if self.eos.contains(&token) {
				reason = Some(FinishReason::Stop);
				text.push_str(&s.stop.flush());
			} else {
				let delta = s.decoder.push(&self.tokenizer, token).unwrap_or_default().unwrap_or_default();
				let (out, hit) = s.stop.push(&delta);
				text = out;
				if hit {
					reason = Some(FinishReason::Stop);
				} else if s.generated.len() >= s.req.params.max_tokens || s.cache.len() + 1 >= self.model.cfg.max_position_embeddings {
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
				finished.push(i);
			}
		}
		for i in finished.into_iter().rev() {
			self.active.swap_remove(i); // drops the permit: a slot frees up
		}
		self.metrics.running.set(self.active.len() as i64);
	}
}
