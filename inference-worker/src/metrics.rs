//! Prometheus metrics of the worker (served at `/metrics`).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
	pub registry: Registry,
	pub requests: IntCounterVec,
	pub rejected_busy: IntCounter,
	pub cancelled: IntCounter,
	pub prompt_tokens: IntCounter,
	pub generated_tokens: IntCounter,
	pub waiting: IntGauge,
	pub running: IntGauge,
	pub batch_rows: Histogram,
	pub step_seconds: Histogram,
	pub kv_blocks_total: IntGauge,
	pub kv_blocks_used: IntGauge,
	pub kv_blocks_cached: IntGauge,
	pub preemptions: IntCounter,
	pub kv_swaps: IntCounter,
	pub kv_swap_bytes: IntGauge,
	pub prefix_cached_tokens: IntCounter,
	pub adapter_loads: IntCounter,
	pub adapter_hits: IntCounter,
	pub adapter_evictions: IntCounter,
	pub adapter_cache_bytes: IntGauge,
	pub adapter_load_seconds: Histogram,
	pub receipts: IntCounterVec,
	pub receipt_retries: IntCounter,
	pub receipts_queued: IntGauge,
	pub settle_seconds: Histogram,
}

impl Metrics {
	pub fn new() -> Self {
		let registry = Registry::new_custom(Some("openledger_worker".into()), None).expect("static prefix; qed");
		let requests = IntCounterVec::new(Opts::new("requests_total", "HTTP generation requests by outcome"), &["outcome"])
			.expect("static; qed");
		let c = |n: &str, h: &str| IntCounter::new(n, h).expect("static; qed");
		let g = |n: &str, h: &str| IntGauge::new(n, h).expect("static; qed");
		let hist = |n: &str, h: &str, b: Vec<f64>| Histogram::with_opts(HistogramOpts::new(n, h).buckets(b)).expect("static; qed");
		let m = Self {
			registry,
			requests,
			rejected_busy: c("rejected_busy_total", "requests refused with 429 because the queue was full"),
			cancelled: c("cancelled_total", "sequences cancelled because the client went away"),
			prompt_tokens: c("prompt_tokens_total", "prompt tokens processed"),
			generated_tokens: c("generated_tokens_total", "tokens generated"),
			waiting: g("waiting_sequences", "sequences queued, not yet admitted"),
			running: g("running_sequences", "sequences in the running batch"),
			batch_rows: hist("batch_rows", "rows per forward step", prometheus::exponential_buckets(1.0, 2.0, 11).expect("static; qed")),
			step_seconds: hist("step_seconds", "seconds per forward step", prometheus::exponential_buckets(0.0005, 2.0, 16).expect("static; qed")),
			kv_blocks_total: g("kv_blocks_total", "blocks in the KV pool"),
			kv_blocks_used: g("kv_blocks_used", "KV blocks held by sequences"),
			kv_blocks_cached: g("kv_blocks_cached", "KV blocks nobody holds that keep a prompt prefix for reuse"),
			preemptions: c("preemptions_total", "sequences preempted for KV blocks (swapped out, or recomputed later)"),
			kv_swaps: c("kv_swaps_total", "preempted sequences whose keys and values were swapped to host memory (not recomputed)"),
			kv_swap_bytes: g("kv_swap_bytes", "bytes of host memory holding swapped-out keys and values"),
			prefix_cached_tokens: c("prefix_cached_tokens_total", "prompt tokens whose keys and values came from shared prefix blocks"),
			adapter_loads: c("adapter_loads_total", "adapters loaded from the store"),
			adapter_hits: c("adapter_cache_hits_total", "adapter requests served from memory"),
			adapter_evictions: c("adapter_evictions_total", "adapters evicted from memory (LRU)"),
			adapter_cache_bytes: g("adapter_cache_bytes", "bytes of adapter weights in memory"),
			adapter_load_seconds: hist("adapter_load_seconds", "adapter cold-load time", prometheus::exponential_buckets(0.0001, 2.0, 16).expect("static; qed")),
			receipts: IntCounterVec::new(Opts::new("receipts_total", "receipts by outcome (queued, settled, rejected)"), &["outcome"])
				.expect("static; qed"),
			receipt_retries: c("receipt_submit_retries_total", "failed receipt submissions, retried with backoff"),
			receipts_queued: g("receipts_queued", "receipts on disk waiting for settlement"),
			settle_seconds: hist("settle_seconds", "seconds from submitting a receipt batch to its finalized block", prometheus::exponential_buckets(0.01, 2.0, 14).expect("static; qed")),
		};
		for col in [
			Box::new(m.requests.clone()) as Box<dyn prometheus::core::Collector>,
			Box::new(m.rejected_busy.clone()),
			Box::new(m.cancelled.clone()),
			Box::new(m.prompt_tokens.clone()),
			Box::new(m.generated_tokens.clone()),
			Box::new(m.waiting.clone()),
			Box::new(m.running.clone()),
			Box::new(m.batch_rows.clone()),
			Box::new(m.step_seconds.clone()),
			Box::new(m.kv_blocks_total.clone()),
			Box::new(m.kv_blocks_used.clone()),
			Box::new(m.kv_blocks_cached.clone()),
			Box::new(m.preemptions.clone()),
			Box::new(m.kv_swaps.clone()),
			Box::new(m.kv_swap_bytes.clone()),
			Box::new(m.prefix_cached_tokens.clone()),
			Box::new(m.adapter_loads.clone()),
			Box::new(m.adapter_hits.clone()),
			Box::new(m.adapter_evictions.clone()),
			Box::new(m.adapter_cache_bytes.clone()),
			Box::new(m.adapter_load_seconds.clone()),
			Box::new(m.receipts.clone()),
			Box::new(m.receipt_retries.clone()),
			Box::new(m.receipts_queued.clone()),
			Box::new(m.settle_seconds.clone()),
		] {
			m.registry.register(col).expect("distinct names; qed");
		}
		m
	}

	pub fn render(&self) -> String {
		use prometheus::Encoder;
		let mut buf = Vec::new();
		prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding; qed");
		String::from_utf8(buf).expect("prometheus text is UTF-8; qed")
	}
}

impl Default for Metrics {
	fn default() -> Self {
		Self::new()
	}
}
