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
pub mod blocks;
pub mod sampling;

use crate::metrics::Metrics;
use crate::model::llama::Llama;
use crate::model::lora::LoraAdapter;
use backend::{Backend, CandleBackend, StepRow, SwappedKv};
use blocks::{block_key, BlockKey, BlockManager};
use crate::tokenizer::{IncrementalDecoder, TextTokenizer};
use sampling::{Sampler, SamplingParams, StopFilter};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
	/// Bytes of the KV block pool. Sequences are admitted while the pool has blocks for their
	/// prompt; when a decoding sequence needs a block and none is free, the newest sequence is
	/// preempted (its blocks freed, recomputed later). A request whose prompt + `max_tokens`
	/// could never fit the pool is refused (400). `None`: a pool of `max_batch` sequences of
	/// `max_position_embeddings`, taken as it is used.
	pub kv_cache_bytes: Option<usize>,
	/// Positions per KV block.
	pub kv_block_size: usize,
	/// Host memory for the keys and values of preempted sequences (swap): a preempted sequence
	/// whose computed positions fit what is left of it is copied out and copied back on
	/// readmission instead of being recomputed. 0: always recompute.
	pub kv_swap_bytes: usize,
	/// Who shares full blocks of identical prefixes (same adapter).
	pub prefix_cache: PrefixCache,
	/// Token ids never sampled (`generation_config.json`'s `suppress_tokens`). Ids past the
	/// tokenizer's vocabulary (padding rows of the embedding, e.g. Qwen2's 151,646‥151,935) are
	/// never sampled either: they have no text.
	pub suppress_tokens: Vec<u32>,
}

impl Default for EngineConfig {
	fn default() -> Self {
		Self { max_batch: 32, max_step_tokens: 2048, queue: 64, kv_cache_bytes: None, kv_block_size: 16, kv_swap_bytes: 0, prefix_cache: PrefixCache::Tenant, suppress_tokens: Vec::new() }
	}
}

/// Who may read whose cached prefix blocks. Sharing is observable: a request whose prefix is
/// cached gets its first token sooner, so whoever can send requests can test whether a prefix
/// (a prompt, or a prompt and its answer) is in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixCache {
	/// No sharing: every request computes its whole prompt.
	Off,
	/// Requests of the same tenant (a paid request's payer) share; requests without a tenant
	/// share with no one.
	Tenant,
	/// Every request shares with every other (one trust domain: a private deployment, tests).
	Global,
}

impl std::str::FromStr for PrefixCache {
	type Err = String;
	fn from_str(s: &str) -> Result<Self, String> {
		match s {
			"off" => Ok(Self::Off),
			"tenant" => Ok(Self::Tenant),
			"global" => Ok(Self::Global),
			other => Err(format!("{other:?}: off, tenant or global")),
		}
	}
}

/// What the engine thread is doing, for `/health`: alive or stopped, and how many sequences
/// it has failed because of a panic while serving them.
#[derive(Default)]
pub struct EngineHealth {
	stopped: AtomicBool,
	panics: AtomicU64,
	kv_used: AtomicUsize,
	kv_cached: AtomicUsize,
	preemptions: AtomicU64,
	swaps: AtomicU64,
}

impl EngineHealth {
	/// KV blocks held by sequences, and blocks free but still holding a cached prefix.
	pub fn kv_blocks(&self) -> (usize, usize) {
		(self.kv_used.load(Ordering::SeqCst), self.kv_cached.load(Ordering::SeqCst))
	}
	/// Sequences preempted (blocks freed, recomputed later) so far.
	pub fn preemptions(&self) -> u64 {
		self.preemptions.load(Ordering::SeqCst)
	}
	/// Preempted sequences whose keys and values were swapped out (not recomputed) so far.
	pub fn swaps(&self) -> u64 {
		self.swaps.load(Ordering::SeqCst)
	}
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
	/// The prefix-sharing domain: blocks are shared only with requests of the same scope;
	/// `None`: with no one.
	scope: Option<[u8; 32]>,
	/// Set while the request is held ([`Engine::hold`]): its ticket, until it is opened.
	held: Option<u64>,
	_permit: OwnedSemaphorePermit,
}

/// What the engine thread receives.
enum Msg {
	Arrive(GenRequest),
	/// A held request may run, with its adapter and prefix scope.
	Open { ticket: u64, adapter: Option<Arc<LoraAdapter>>, scope: Option<[u8; 32]> },
	/// A held request will never run (its preparation failed or its client left).
	Cancel(u64),
}

/// A request in line that may not run yet ([`Engine::hold`]). [`Held::open`] lets it run;
/// dropping it cancels the request (its slot is given back, it never runs).
pub struct Held {
	tx: mpsc::UnboundedSender<Msg>,
	ticket: u64,
	prefix_cache: PrefixCache,
	opened: bool,
}

impl Held {
	/// Lets the request run, with `adapter`, as a request of `tenant` ([`Engine::submit_for`]).
	/// Nothing of it runs before this: what must happen first (a voucher spent) happens first.
	pub fn open(mut self, adapter: Option<Arc<LoraAdapter>>, tenant: Option<&[u8]>) -> Result<(), SubmitError> {
		self.opened = true;
		let scope = scope_of(self.prefix_cache, tenant);
		self.tx.send(Msg::Open { ticket: self.ticket, adapter, scope }).map_err(|_| SubmitError::Stopped)
	}
}

impl Drop for Held {
	fn drop(&mut self) {
		if !self.opened {
			// An engine that stopped has nothing to cancel.
			let _ = self.tx.send(Msg::Cancel(self.ticket));
		}
	}
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SubmitError {
	#[error("the worker is busy: {0} requests are running or queued")]
	Busy(usize),
	#[error("the engine has stopped")]
	Stopped,
	#[error("the prompt has no token")]
	EmptyPrompt,
	/// The request could never fit the configured KV cache.
	#[error("this request may need {need} KiB of KV cache, more than the worker's whole cache ({total} KiB); ask for fewer tokens")]
	KvTooLarge { need: usize, total: usize },
}

/// A handle to the engine thread.
#[derive(Clone)]
pub struct Engine {
	tx: mpsc::UnboundedSender<Msg>,
	/// Tickets of held requests.
	tickets: Arc<AtomicU64>,
	slots: Arc<Semaphore>,
	capacity: usize,
	pub max_len: usize,
	/// The KV pool: blocks and positions per block.
	pub kv_blocks: usize,
	pub kv_block_size: usize,
	prefix_cache: PrefixCache,
	/// Bytes of K and V one token holds in every layer.
	pub kv_bytes_per_token: usize,
	pub health: Arc<EngineHealth>,
}

impl Engine {
	/// Starts the engine thread for the candle `model`.
	pub fn start(model: Arc<Llama>, tokenizer: Arc<TextTokenizer>, cfg: EngineConfig, metrics: Metrics) -> anyhow::Result<Self> {
		Self::start_with(CandleBackend::new(model), tokenizer, cfg, metrics)
	}

	/// Starts the engine thread for any [`Backend`].
	pub fn start_with<B: Backend>(mut backend: B, tokenizer: Arc<TextTokenizer>, cfg: EngineConfig, metrics: Metrics) -> anyhow::Result<Self> {
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
		let engine = Self::handle(tx, &cfg, info.max_positions, info.kv_bytes_per_token)?;
		// An explicit budget is taken at once (a device without the memory fails here, not under
		// load); without one the pool grows as it is used.
		backend.init_pool(engine.kv_blocks, engine.kv_block_size, cfg.kv_cache_bytes.is_some())?;
		metrics.kv_blocks_total.set(engine.kv_blocks as i64);
		let health = engine.health.clone();
		let sched = Scheduler {
			blocks: BlockManager::new(engine.kv_blocks, engine.kv_block_size),
			next_id: 0,
			admissions: 0,
			backend,
			never,
			max_pos: info.max_positions,
			tokenizer,
			cfg,
			metrics,
			eos,
			kv_bytes_per_token: info.kv_bytes_per_token,
			waiting: VecDeque::new(),
			active: Vec::new(),
			retired: Vec::new(),
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
		Ok(engine)
	}

	/// The handle's admission state (slots, KV pool size) for requests sent on `tx`.
	fn handle(tx: mpsc::UnboundedSender<Msg>, cfg: &EngineConfig, max_len: usize, kv_bytes_per_token: usize) -> anyhow::Result<Self> {
		anyhow::ensure!(cfg.kv_block_size > 0 && cfg.max_batch > 0, "a KV block holds a token and a batch a sequence");
		let capacity = cfg.max_batch + cfg.queue;
		let bs = cfg.kv_block_size;
		let blocks = match cfg.kv_cache_bytes {
			Some(b) => b / kv_bytes_per_token.max(1).saturating_mul(bs),
			None => cfg.max_batch.saturating_mul(max_len.div_ceil(bs)),
		}
		.min(u32::MAX as usize / bs);
		anyhow::ensure!(blocks > 0, "the KV cache holds no block of {bs} positions ({kv_bytes_per_token} bytes each)");
		Ok(Self {
			tx,
			tickets: Arc::default(),
			slots: Arc::new(Semaphore::new(capacity)),
			capacity,
			max_len,
			kv_blocks: blocks,
			kv_block_size: bs,
			prefix_cache: cfg.prefix_cache,
			kv_bytes_per_token,
			health: Default::default(),
		})
	}

	/// Queues a request with no tenant; refuses at once when running + queued would exceed the
	/// capacity.
	pub fn submit(&self, prompt: Vec<u32>, adapter: Option<Arc<LoraAdapter>>, params: SamplingParams) -> Result<mpsc::Receiver<Event>, SubmitError> {
		self.submit_for(prompt, adapter, params, None)
	}

	/// Queues a request of `tenant` (e.g. the payer's account), whose cached prefixes it may
	/// share under [`PrefixCache::Tenant`].
	pub fn submit_for(
		&self,
		prompt: Vec<u32>,
		adapter: Option<Arc<LoraAdapter>>,
		params: SamplingParams,
		tenant: Option<&[u8]>,
	) -> Result<mpsc::Receiver<Event>, SubmitError> {
		self.enqueue(prompt, params, adapter, scope_of(self.prefix_cache, tenant), None)
	}

	/// Puts a request in line now, before its adapter is known and before it may run: it waits
	/// for room in the batch and the pool like any other, but is not admitted (nor does it hold
	/// back those behind it) until [`Held::open`]. So a cold adapter loads, and a voucher is
	/// checked, while the request queues — not before it starts queueing. Refused at once as
	/// [`Self::submit_for`] is (busy, too large, empty).
	pub fn hold(&self, prompt: Vec<u32>, params: SamplingParams) -> Result<(Held, mpsc::Receiver<Event>), SubmitError> {
		let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
		let rx = self.enqueue(prompt, params, None, None, Some(ticket))?;
		Ok((Held { tx: self.tx.clone(), ticket, prefix_cache: self.prefix_cache, opened: false }, rx))
	}

	fn enqueue(
		&self,
		prompt: Vec<u32>,
		params: SamplingParams,
		adapter: Option<Arc<LoraAdapter>>,
		scope: Option<[u8; 32]>,
		held: Option<u64>,
	) -> Result<mpsc::Receiver<Event>, SubmitError> {
		if !self.health.alive() {
			return Err(SubmitError::Stopped);
		}
		if prompt.is_empty() {
			return Err(SubmitError::EmptyPrompt);
		}
		// The most positions the sequence can reach; it must fit the pool alone (then it always
		// finishes: whoever else holds blocks can be preempted).
		let need = prompt.len().saturating_add(params.max_tokens).min(self.max_len.max(prompt.len()));
		let total = self.kv_blocks * self.kv_block_size;
		if need > total {
			let kib = |tokens: usize| tokens.saturating_mul(self.kv_bytes_per_token).div_ceil(1024);
			return Err(SubmitError::KvTooLarge { need: kib(need), total: kib(total) });
		}
		let permit = self.slots.clone().try_acquire_owned().map_err(|_| SubmitError::Busy(self.capacity))?;
		// Room for every event the sequence can produce, so the engine never blocks on a client.
		let (events, rx) = mpsc::channel(params.max_tokens.min(self.max_len).saturating_add(2));
		self.tx
			.send(Msg::Arrive(GenRequest { prompt, adapter, params, events, scope, held, _permit: permit }))
			.map_err(|_| SubmitError::Stopped)?;
		Ok(rx)
	}

	/// Requests running or queued now.
	pub fn in_flight(&self) -> usize {
		self.capacity - self.slots.available_permits()
	}
}

/// The prefix-sharing domain of a request of `tenant`.
fn scope_of(prefix_cache: PrefixCache, tenant: Option<&[u8]>) -> Option<[u8; 32]> {
	use sha2::{Digest, Sha256};
	match (prefix_cache, tenant) {
		(PrefixCache::Off, _) | (PrefixCache::Tenant, None) => None,
		(PrefixCache::Global, _) => Some([0; 32]),
		(PrefixCache::Tenant, Some(t)) => {
			let mut h = Sha256::new();
			h.update(b"openledger:kv-tenant:v1");
			h.update((t.len() as u64).to_le_bytes());
			h.update(t);
			Some(h.finalize().into())
		},
	}
}

struct Seq {
	req: GenRequest,
	/// Unique while the engine runs, in order of arrival.
	id: u64,
	sampler: Sampler,
	decoder: IncrementalDecoder,
	stop: StopFilter,
	generated: Vec<u32>,
	/// Positions of `prompt ++ generated` whose keys and values are in the sequence's blocks
	/// (the prompt may take several steps; a preempted sequence starts again from 0).
	fed: usize,
	/// Tokens fed this step.
	feed: Vec<u32>,
	/// The block table: position `p` lives in `blocks[p / block_size]`.
	blocks: Vec<u32>,
	/// Content keys of the first `keys.len()` blocks (full ones, shareable).
	keys: Vec<BlockKey>,
	/// Order of (latest) admission: the newest is preempted first.
	admitted: u64,
	/// Whether its prompt tokens were counted (a preempted sequence is not counted again).
	counted: bool,
	/// Its keys and values, swapped out when it was preempted (it holds no blocks then).
	swapped: Option<SwappedKv>,
}

impl Seq {
	/// Tokens of the sequence so far: the prompt, then what it generated.
	fn len(&self) -> usize {
		self.req.prompt.len() + self.generated.len()
	}
	fn tokens(&self, from: usize, to: usize) -> Vec<u32> {
		let p = self.req.prompt.len();
		let mut out = Vec::with_capacity(to - from);
		if from < p {
			out.extend_from_slice(&self.req.prompt[from..to.min(p)]);
		}
		if to > p {
			out.extend_from_slice(&self.generated[from.max(p) - p..to - p]);
		}
		out
	}
	/// Whether this step's feed reaches the last known token: then the sequence samples after it.
	fn samples(&self) -> bool {
		self.fed + self.feed.len() >= self.len()
	}
	/// The content key of the block of positions `from‥from + bs`, after the block keyed `prev`.
	fn block_key(&self, prev: Option<&BlockKey>, from: usize, bs: usize) -> BlockKey {
		let scope = self.req.scope.as_ref().expect("only scoped sequences key blocks; qed");
		block_key(prev, scope, self.req.adapter.as_deref().map(|a| &a.id), &self.tokens(from, from + bs))
	}
}

struct Scheduler<B: Backend> {
	backend: B,
	blocks: BlockManager,
	next_id: u64,
	admissions: u64,
	/// Ids set to −∞ in every logits row before sampling.
	never: Vec<u32>,
	max_pos: usize,
	tokenizer: Arc<TextTokenizer>,
	cfg: EngineConfig,
	metrics: Metrics,
	eos: Vec<u32>,
	/// Bytes of K and V per position (what a swapped position costs).
	kv_bytes_per_token: usize,
	/// Arrived or preempted, not running: they hold no blocks.
	waiting: VecDeque<Seq>,
	active: Vec<Seq>,
	/// Ended this step, blocks given back, dropped at the next publication.
	retired: Vec<Seq>,
	health: Arc<EngineHealth>,
}

#[cfg(test)]
pub(crate) static PANIC_ON_SEED: AtomicU64 = AtomicU64::new(u64::MAX);
/// A step with a sequence of this seed panics before its forward pass (the whole step fails).
#[cfg(test)]
pub(crate) static PANIC_STEP_ON_SEED: AtomicU64 = AtomicU64::new(u64::MAX);

impl<B: Backend> Scheduler<B> {
	fn arrive(&mut self, req: GenRequest) {
		self.next_id += 1;
		self.waiting.push_back(Seq {
			id: self.next_id - 1,
			sampler: Sampler::new(req.params.clone()),
			stop: StopFilter::new(req.params.stop.clone()),
			req,
			decoder: IncrementalDecoder::default(),
			generated: Vec::new(),
			fed: 0,
			feed: Vec::new(),
			blocks: Vec::new(),
			keys: Vec::new(),
			admitted: 0,
			counted: false,
			swapped: None,
		});
	}

	/// Gives back a sequence's blocks (it ends, or is preempted).
	fn free_blocks(blocks: &mut BlockManager, s: &mut Seq) {
		// Tail first: the least recently released go first, so a chain's root outlives its tail
		// (a cached tail without its root can never be found).
		for b in s.blocks.drain(..).rev() {
			blocks.release(b);
		}
		s.keys.clear();
		s.fed = 0;
	}

	/// Takes a sequence out for good: its blocks go back now; it (its event sender and its slot)
	/// is dropped after the pool's state is published, so nobody sees the slot free while the
	/// blocks still count as held.
	fn retire(&mut self, mut s: Seq) {
		Self::free_blocks(&mut self.blocks, &mut s);
		self.retired.push(s);
	}

	fn publish_kv(&mut self) {
		let (used, cached) = (self.blocks.used(), self.blocks.cached());
		self.health.kv_used.store(used, Ordering::SeqCst);
		self.health.kv_cached.store(cached, Ordering::SeqCst);
		self.metrics.kv_blocks_used.set(used as i64);
		self.metrics.kv_blocks_cached.set(cached as i64);
		self.metrics.kv_swap_bytes.set(self.swap_used() as i64);
		self.retired.clear();
	}

	/// Fails every active sequence with `message`, and forgets the pool's contents (blocks
	/// may be half-written).
	fn fail_active(&mut self, message: &str) {
		for s in std::mem::take(&mut self.active) {
			let _ = s.req.events.try_send(Event::Error(message.to_string()));
			self.retire(s);
		}
		self.blocks.reset();
		self.publish_kv();
		self.metrics.running.set(0);
	}

	fn receive(&mut self, m: Msg) {
		match m {
			Msg::Arrive(r) => self.arrive(r),
			Msg::Open { ticket, adapter, scope } => {
				// Not found: its client left, and it was dropped from the line.
				if let Some(s) = self.waiting.iter_mut().find(|s| s.req.held == Some(ticket)) {
					(s.req.adapter, s.req.scope, s.req.held) = (adapter, scope, None);
				}
			},
			Msg::Cancel(ticket) => {
				if let Some(i) = self.waiting.iter().position(|s| s.req.held == Some(ticket)) {
					// It holds no blocks: dropped here, its slot is free.
					self.waiting.remove(i);
					self.metrics.cancelled.inc();
					self.metrics.waiting.set(self.waiting.len() as i64);
				}
			},
		}
	}

	fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
		loop {
			// Nothing can run (no sequence, or only held ones): wait for a message.
			if self.active.is_empty() && self.waiting.iter().all(|s| s.req.held.is_some()) {
				match rx.blocking_recv() {
					Some(m) => self.receive(m),
					None => return,
				}
			}
			while let Ok(m) = rx.try_recv() {
				self.receive(m);
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

	/// Admission in arrival order (a preempted sequence goes first again) while the batch has
	/// room, this step's token budget is not spent and the pool has blocks for the sequence's
	/// whole known text (prompt, and what it generated before a preemption). Full blocks of a
	/// prefix already in the pool (same adapter, same tokens) are shared, not recomputed.
	/// Prompts are fed in chunks (chunked prefill), so a long prompt neither waits for the
	/// running sequences to finish nor stalls them. Held requests ([`Engine::hold`]) are
	/// passed over until opened.
	fn admit(&mut self) {
		let before = self.waiting.len();
		self.waiting.retain(|s| !s.req.events.is_closed());
		self.metrics.cancelled.inc_by((before - self.waiting.len()) as u64);
		let committed: usize = self.active.iter().map(|s| (s.len() - s.fed).max(1)).sum();
		let mut budget = self.cfg.max_step_tokens.saturating_sub(committed);
		let bs = self.blocks.block_size();
		// Headroom for the running sequences' next blocks (each may need one in the next step),
		// so admitting does not at once force a preemption.
		let headroom = self.active.len();
		while self.active.len() < self.cfg.max_batch && (budget > 0 || self.active.is_empty()) {
			// Held requests keep their place but hold back no one.
			let Some(at) = self.waiting.iter().position(|s| s.req.held.is_none()) else { break };
			let s = &mut self.waiting[at];
			let len = s.len();
			// Shared prefix: whole blocks only, and never the last token (it must be fed to
			// sample). A swapped-out sequence brings its own.
			let (mut held, mut keys) = (Vec::new(), Vec::new());
			let shareable = if s.req.scope.is_some() && s.swapped.is_none() { (len - 1) / bs } else { 0 };
			for i in 0..shareable {
				let key = s.block_key(keys.last(), i * bs, bs);
				match self.blocks.lookup(&key) {
					Some(b) => {
						held.push(b);
						keys.push(key);
					},
					None => break,
				}
			}
			let need = self.blocks.blocks_for(len) - held.len();
			if need + headroom > self.blocks.available() {
				for b in held {
					self.blocks.release(b);
				}
				break; // first come, first served: nobody overtakes it
			}
			let mut s = self.waiting.remove(at).expect("found above; qed");
			for _ in 0..need {
				held.push(self.blocks.allocate().expect("counted as available; qed"));
			}
			s.fed = keys.len() * bs;
			s.blocks = held;
			s.keys = keys;
			if let Some(kv) = s.swapped.take() {
				let positions = kv.positions;
				match self.backend.swap_in(kv, &s.blocks) {
					Ok(()) => s.fed = positions,
					// Its blocks are private and fed from 0 again: recomputed.
					Err(e) => tracing::warn!("swapping sequence {} back in failed ({e:#}); recomputing it", s.id),
				}
			}
			budget = budget.saturating_sub(len - s.fed);
			if !s.counted {
				// First admission only (a preempted sequence re-reading its own blocks is not a
				// prefix hit).
				self.metrics.prefix_cached_tokens.inc_by(s.fed as u64);
				self.metrics.prompt_tokens.inc_by(s.req.prompt.len() as u64);
				s.counted = true;
			}
			self.admissions += 1;
			s.admitted = self.admissions;
			self.active.push(s);
		}
		self.metrics.waiting.set(self.waiting.len() as i64);
		self.metrics.running.set(self.active.len() as i64);
	}

	/// Bytes of host memory that swapped-out sequences hold.
	fn swap_used(&self) -> usize {
		self.waiting.iter().filter_map(|s| s.swapped.as_ref()).map(|kv| kv.positions * self.kv_bytes_per_token).sum()
	}

	/// Preempts the newest active sequence: its computed keys and values are swapped out to
	/// host memory when they fit what is left of `kv_swap_bytes` (else it is recomputed on
	/// readmission), its blocks go back to the pool (full ones stay cached, so a recomputation
	/// may find them), it waits first in line, and its sampler, text and stop state are kept: it
	/// resumes where it was.
	fn preempt_newest(&mut self) {
		let i = (0..self.active.len()).max_by_key(|&i| self.active[i].admitted).expect("a sequence to preempt; qed");
		let mut s = self.active.remove(i);
		let bytes = s.fed.saturating_mul(self.kv_bytes_per_token);
		if s.fed > 0 && self.swap_used().saturating_add(bytes) <= self.cfg.kv_swap_bytes {
			match self.backend.swap_out(&s.blocks, s.fed) {
				Ok(kv) => {
					s.swapped = Some(kv);
					self.metrics.kv_swaps.inc();
					self.health.swaps.fetch_add(1, Ordering::SeqCst);
				},
				Err(e) => tracing::warn!("swapping sequence {} out failed ({e:#}); it will be recomputed", s.id),
			}
		}
		Self::free_blocks(&mut self.blocks, &mut s);
		s.feed.clear();
		self.metrics.preemptions.inc();
		self.health.preemptions.fetch_add(1, Ordering::SeqCst);
		self.waiting.push_front(s);
		self.metrics.waiting.set(self.waiting.len() as i64);
		self.metrics.running.set(self.active.len() as i64);
	}

	/// Chooses each sequence's tokens for this step: decode rows first (one token each, a new
	/// block when the last is full, preempting the newest sequences when the pool has none),
	/// then prompt chunks in admission order from what is left of the budget.
	fn plan(&mut self) {
		self.active.sort_by_key(|s| s.admitted);
		let bs = self.blocks.block_size();
		let mut i = 0;
		while i < self.active.len() {
			let s = &self.active[i];
			if s.len() - s.fed == 1 && s.blocks.len() * bs == s.fed {
				// A decode row whose blocks are full needs one more.
				if self.blocks.available() == 0 {
					// The newest goes (this one, when it is the newest); look at index i again.
					self.preempt_newest();
					continue;
				}
				let b = self.blocks.allocate().expect("available; qed");
				self.active[i].blocks.push(b);
			}
			i += 1;
		}
		let mut budget = self.cfg.max_step_tokens;
		for s in self.active.iter_mut() {
			s.feed.clear();
			if s.len() - s.fed == 1 {
				s.feed = s.tokens(s.fed, s.fed + 1);
				budget = budget.saturating_sub(1);
			}
		}
		for s in self.active.iter_mut().filter(|s| s.len() - s.fed > 1) {
			let n = (s.len() - s.fed).min(budget);
			s.feed = s.tokens(s.fed, s.fed + n);
			budget -= n;
		}
		// Never an empty step: the oldest prefill gets at least one token.
		if self.active.iter().all(|s| s.feed.is_empty()) {
			if let Some(s) = self.active.first_mut() {
				s.feed = s.tokens(s.fed, s.fed + 1);
			}
		}
	}

	/// Keys the sequence's blocks that this step filled, so later sequences may share them.
	fn register_full_blocks(blocks: &mut BlockManager, s: &mut Seq) {
		let bs = blocks.block_size();
		while (s.keys.len() + 1) * bs <= s.fed {
			let i = s.keys.len();
			let key = s.block_key(s.keys.last(), i * bs, bs);
			blocks.register(s.blocks[i], key);
			s.keys.push(key);
		}
	}

	fn step(&mut self) {
		let mut closed = Vec::new();
		for i in (0..self.active.len()).rev() {
			if self.active[i].req.events.is_closed() {
				closed.push(self.active.swap_remove(i));
			}
		}
		self.metrics.cancelled.inc_by(closed.len() as u64);
		for s in closed {
			self.retire(s);
		}
		self.admit();
		if self.active.is_empty() {
			self.publish_kv();
			return;
		}
		self.plan();
		self.publish_kv();
		#[cfg(test)]
		if self.active.iter().any(|s| s.req.params.seed == Some(PANIC_STEP_ON_SEED.load(Ordering::SeqCst))) {
			panic!("injected step fault");
		}
		// A step writes only blocks its row holds alone and nobody has keyed (shared prefix
		// blocks are read, never written): a broken invariant fails the step, not another
		// tenant's cached prefix.
		for s in self.active.iter().filter(|s| !s.feed.is_empty()) {
			let bs = self.blocks.block_size();
			for p in (s.fed / bs)..(s.fed + s.feed.len()).div_ceil(bs) {
				assert!(self.blocks.is_private(s.blocks[p]), "sequence {} would write shared block {}", s.id, s.blocks[p]);
			}
		}
		let started = std::time::Instant::now();
		let rows: Vec<StepRow<'_>> = self
			.active
			.iter()
			.filter(|s| !s.feed.is_empty())
			.map(|s| StepRow {
				id: s.id,
				tokens: &s.feed,
				pos: s.fed,
				blocks: &s.blocks,
				adapter: s.req.adapter.as_deref(),
				// Only rows that reach their last token sample: the others get no logits.
				sample: s.samples(),
			})
			.collect();
		let n_rows = rows.len();
		let n_sample = rows.iter().filter(|r| r.sample).count();
		let logits = self.backend.step(&rows).and_then(|l| {
			anyhow::ensure!(l.len() == n_sample, "the backend gave {} logits rows for {n_sample} sampling rows", l.len());
			Ok(l)
		});
		drop(rows);
		self.metrics.step_seconds.observe(started.elapsed().as_secs_f64());
		self.metrics.batch_rows.observe(n_rows as f64);
		let logits = match logits {
			Ok(l) => l,
			Err(e) => {
				// The rows of this step may hold half-written blocks: they fail; sequences that
				// fed nothing this step go on.
				tracing::error!("forward step failed: {e:#}");
				let (failed, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.active).into_iter().partition(|s| !s.feed.is_empty());
				self.active = kept;
				for s in failed {
					let _ = s.req.events.try_send(Event::Error(format!("{e:#}")));
					self.retire(s);
				}
				self.metrics.running.set(self.active.len() as i64);
				self.publish_kv();
				return;
			},
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
			s.fed += s.feed.len();
			s.feed.clear();
			if s.req.scope.is_some() {
				Self::register_full_blocks(&mut self.blocks, s);
			}
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
			let s = self.active.swap_remove(i);
			self.retire(s); // its permit (a slot) frees up once the pool is published
		}
		self.metrics.running.set(self.active.len() as i64);
		self.publish_kv();
	}

	/// Takes the step's logits row for `s` (fed already advanced): samples, detokenizes, sends
	/// the event(s). True when the sequence is done.
	fn advance(s: &mut Seq, row_logits: Option<Vec<f32>>, eos: &[u32], tokenizer: &TextTokenizer, metrics: &Metrics, max_pos: usize) -> bool {
		if s.fed < s.len() {
			return false; // more prompt to feed before the next sample
		}
		let Some(row_logits) = row_logits else {
			unreachable!("a sequence that has fed all its tokens samples, so it was given logits; qed")
		};
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
		(dir, Engine::start(model, tokenizer, cfg, Metrics::new()).unwrap())
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

	/// The pool is sized in blocks of bytes per token × block size: a request whose prompt +
	/// `max_tokens` could never fit it alone is refused at once; others are queued (admission by
	/// free blocks happens in the engine); an empty prompt is refused. (A handle whose engine
	/// never runs.)
	#[test]
	fn a_request_that_could_never_fit_the_pool_is_refused() {
		let (tx, _rx) = mpsc::unbounded_channel();
		let cfg = EngineConfig { kv_cache_bytes: Some(100 * 64 * 16 + 1000), kv_block_size: 16, ..Default::default() };
		let e = Engine::handle(tx, &cfg, 4096, 64).unwrap();
		assert_eq!((e.kv_blocks, e.kv_block_size), (100, 16));
		assert!(matches!(e.submit(vec![1; 1000], None, greedy(601, 1)), Err(SubmitError::KvTooLarge { need: 101, total: 100 })));
		for _ in 0..5 {
			// Each alone fits; together they are far past the pool: they queue.
			assert!(e.submit(vec![1; 1000], None, greedy(600, 1)).is_ok());
		}
		assert_eq!(e.submit(vec![], None, greedy(4, 1)).unwrap_err(), SubmitError::EmptyPrompt);
		// `max_tokens` past the context counts only up to the context.
		let (tx, _rx2) = mpsc::unbounded_channel();
		let short = Engine::handle(tx, &cfg, 1600, 64).unwrap();
		assert!(short.submit(vec![1; 10], None, greedy(usize::MAX, 1)).is_ok());
		let e = Engine::handle(mpsc::unbounded_channel().0, &EngineConfig::default(), 512, 64).unwrap();
		assert_eq!(e.kv_blocks, 32 * 32, "no budget: max_batch whole contexts");
		let tiny = EngineConfig { kv_cache_bytes: Some(64 * 15), ..Default::default() };
		assert!(Engine::handle(mpsc::unbounded_channel().0, &tiny, 512, 64).is_err(), "a pool without a block");
	}
}
