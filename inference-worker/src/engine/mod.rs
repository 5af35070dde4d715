//! The generation engine: one thread owns the model and runs continuous batching.
//!
//! Requests come over a channel; admission is bounded by a semaphore (running + queued), so an
//! overloaded worker refuses new work at once instead of piling it up. Between decode steps the
//! scheduler admits waiting sequences in arrival order while the step's token budget lasts
//! (each running sequence costs one token, a new one its whole prompt), so long prompts never
//! stall the sequences already decoding. Each step is one ragged forward pass over every row,
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
	/// Tokens to feed next step: the prompt first, then the last sampled token.
	next: Vec<u32>,
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

	/// Admission: in arrival order, while there is room in the batch and in the token budget.
	/// A prompt larger than the whole budget is admitted alone so it cannot wait forever.
	fn admit(&mut self) {
		let before = self.waiting.len();
		self.waiting.retain(|r| !r.events.is_closed());
		self.metrics.cancelled.inc_by((before - self.waiting.len()) as u64);
		let mut budget = self.cfg.max_step_tokens.saturating_sub(self.active.len());
		while self.active.len() < self.cfg.max_batch {
			let Some(front) = self.waiting.front() else { break };
			let need = front.prompt.len();
			if need > budget && !self.active.is_empty() {
				break;
			}
			budget = budget.saturating_sub(need);
			let req = self.waiting.pop_front().expect("front exists; qed");
			self.metrics.prompt_tokens.inc_by(need as u64);
			self.active.push(Seq {
				sampler: Sampler::new(req.params.clone()),
				stop: StopFilter::new(req.params.stop.clone()),
				next: req.prompt.clone(),
				req,
				cache: KvCache::default(),
				decoder: IncrementalDecoder::default(),
				generated: Vec::new(),
			});
			if need >= self.cfg.max_step_tokens {
				break;
			}
		}
		self.metrics.waiting.set(self.waiting.len() as i64);
		self.metrics.running.set(self.active.len() as i64);
	}

	fn step(&mut self) {
		let before = self.active.len();
		self.active.retain(|s| !s.req.events.is_closed());
		self.metrics.cancelled.inc_by((before - self.active.len()) as u64);
		self.admit();
		if self.active.is_empty() {
			return;
		}
		let started = std::time::Instant::now();
		let mut rows: Vec<Row<'_>> = self
			.active
			.iter_mut()
			.map(|s| Row { tokens: &s.next, cache: &mut s.cache, adapter: s.req.adapter.as_deref() })
			.collect();
		let logits = self.model.forward(&mut rows).and_then(|l| Ok(l.to_vec2::<f32>()?));
		drop(rows);
		self.metrics.step_seconds.observe(started.elapsed().as_secs_f64());
		self.metrics.batch_rows.observe(self.active.len() as f64);
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
		let mut finished = Vec::new();
		for (i, (s, row_logits)) in self.active.iter_mut().zip(logits).enumerate() {
			let token = s.sampler.sample(&row_logits);
			s.generated.push(token);
			s.next = vec![token];
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
