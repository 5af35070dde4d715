//! The engine: back-pressure, arrival order, chunked prefill that keeps decodes flowing,
//! cancellation, and adapters served through the scheduler exactly as the model computes them.

mod common;

use candle_core::{DType, Device};
use openledger_worker::engine::sampling::SamplingParams;
use openledger_worker::engine::{Engine, EngineConfig, Event, FinishReason, PrefixCache, SubmitError};
use openledger_worker::model::synthetic::{write_base_model, BaseSpec};
use openledger_worker::metrics::Metrics;
use openledger_worker::model::llama::{KvCache, Llama, Row};
use openledger_worker::model::lora::LoraAdapter;
use openledger_worker::tokenizer::TextTokenizer;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;

struct Fixture {
	_dir: tempfile::TempDir,
	model: Arc<Llama>,
	tokenizer: Arc<TextTokenizer>,
}

fn fixture() -> Fixture {
	let dir = tempfile::tempdir().unwrap();
	let spec = BaseSpec { vocab: 300, hidden: 32, intermediate: 48, max_positions: 256, ..Default::default() };
	write_base_model(dir.path(), &spec, 1).unwrap();
	let model = Arc::new(Llama::load_dir(dir.path(), DType::F32, &Device::Cpu).unwrap());
	let tokenizer = Arc::new(TextTokenizer::load(dir.path()).unwrap());
	Fixture { _dir: dir, model, tokenizer }
}

fn start(f: &Fixture, cfg: EngineConfig) -> (Engine, Metrics) {
	let m = Metrics::new();
	(Engine::start(f.model.clone(), f.tokenizer.clone(), cfg, m.clone()).unwrap(), m)
}

/// Greedy, no EOS stop possible before `max_tokens` unless the model emits one.
fn greedy(max_tokens: usize) -> SamplingParams {
	SamplingParams { temperature: 0.0, max_tokens, ..Default::default() }
}

async fn drain(mut rx: Receiver<Event>) -> (Vec<u32>, String, FinishReason) {
	let (mut ids, mut text) = (vec![], String::new());
	while let Some(ev) = rx.recv().await {
		match ev {
			Event::Token { id, text: t } => {
				ids.push(id);
				text.push_str(&t);
			},
			Event::Done { reason, .. } => return (ids, text, reason),
			Event::Error(e) => panic!("engine error: {e}"),
		}
	}
	panic!("stream ended without Done");
}

async fn wait_idle(e: &Engine) {
	for _ in 0..500 {
		if e.in_flight() == 0 {
			return;
		}
		tokio::time::sleep(Duration::from_millis(10)).await;
	}
	panic!("engine never became idle: {} in flight", e.in_flight());
}

/// The model's own greedy continuation of `prompt` (optionally with an adapter), `n` tokens.
fn reference(model: &Llama, prompt: &[u32], adapter: Option<&LoraAdapter>, n: usize, eos: &[u32]) -> Vec<u32> {
	let mut cache = KvCache::default();
	let mut out = vec![];
	let mut feed = prompt.to_vec();
	while out.len() < n {
		let l = model.forward(&mut [Row { tokens: &feed, cache: &mut cache, adapter }]).unwrap();
		let t = openledger_worker::model::llama::argmax_row(&l, 0).unwrap();
		out.push(t);
		if eos.contains(&t) {
			break;
		}
		feed = vec![t];
	}
	out
}

#[tokio::test]
async fn full_queue_refuses_at_once_and_frees_slots_when_clients_leave() {
	let f = fixture();
	let (e, m) = start(&f, EngineConfig { max_batch: 1, max_step_tokens: 64, queue: 1, kv_cache_bytes: None, ..Default::default() });
	let mut long = greedy(200);
	long.stop = vec![];
	let a = e.submit(vec![5, 6, 7], None, long.clone()).unwrap();
	let b = e.submit(vec![5, 6, 8], None, long.clone()).unwrap();
	assert_eq!(e.submit(vec![1], None, long.clone()).unwrap_err(), SubmitError::Busy(2));
	assert_eq!(e.in_flight(), 2);
	drop(a);
	drop(b);
	wait_idle(&e).await;
	assert!(m.cancelled.get() >= 1, "dropping the receivers cancels the sequences");
	let c = e.submit(vec![1, 2], None, greedy(3)).unwrap();
	let (ids, _, _) = drain(c).await;
	assert!(!ids.is_empty() && ids.len() <= 3);
}

#[tokio::test]
async fn arrival_order_is_kept_when_the_batch_is_full() {
	let f = fixture();
	let (e, _) = start(&f, EngineConfig { max_batch: 1, max_step_tokens: 64, queue: 8, kv_cache_bytes: None, ..Default::default() });
	let mut first = e.submit(vec![9, 10, 11], None, greedy(6)).unwrap();
	let mut second = e.submit(vec![12, 13], None, greedy(6)).unwrap();
	// With one slot, `second` gets nothing until `first` is done.
	let mut first_done = false;
	loop {
		tokio::select! {
			biased;
			ev = first.recv(), if !first_done => if let Some(Event::Done { .. }) = ev { first_done = true },
			ev = second.recv() => {
				assert!(first_done, "the second request was served before the first finished: {ev:?}");
				break;
			}
		}
	}
}

/// A held request (its adapter still loading, its voucher not yet checked) keeps its place in
/// line but holds back no one, runs nothing before it is opened, runs with the adapter it is
/// opened with, and gives its slot back when dropped unopened or when its client leaves.
#[tokio::test]
async fn held_requests_wait_for_their_adapter_without_holding_back_the_line() {
	let f = fixture();
	let cfg = f.model.cfg.clone();
	let adapter = Arc::new(common::adapter(&cfg, 4, &["q_proj", "v_proj", "down_proj"], 7));
	let (e, m) = start(&f, EngineConfig { max_batch: 1, max_step_tokens: 64, queue: 4, kv_cache_bytes: None, ..Default::default() });
	let eos = {
		let mut v = cfg.eos_ids();
		v.extend(f.tokenizer.token_id("<|im_end|>"));
		v
	};
	let prompt = f.tokenizer.encode("A datanet is a living").unwrap();
	let n = 8;
	let (held, mut held_rx) = e.hold(prompt.clone(), greedy(n)).unwrap();
	// Behind it in line, with one batch slot: served while it is held.
	let behind = e.submit(vec![9, 10, 11], None, greedy(4)).unwrap();
	let (ids, _, _) = tokio::time::timeout(Duration::from_secs(30), drain(behind)).await.expect("the held request held back the one behind it");
	assert!(!ids.is_empty());
	assert!(matches!(held_rx.try_recv(), Err(tokio::sync::mpsc::error::TryRecvError::Empty)), "a held request ran before it was opened");
	assert_eq!(e.in_flight(), 1, "the held request keeps its slot");
	held.open(Some(adapter.clone()), None).unwrap();
	let (ids, _, _) = drain(held_rx).await;
	assert_eq!(ids, reference(&f.model.merged(&adapter).unwrap(), &prompt, None, n, &eos), "it runs with the adapter it was opened with");
	wait_idle(&e).await;

	// Dropped unopened (its preparation failed): cancelled, its slot back, nothing sent.
	let cancelled = m.cancelled.get();
	let (held, mut rx) = e.hold(prompt.clone(), greedy(n)).unwrap();
	drop(held);
	wait_idle(&e).await;
	assert_eq!(m.cancelled.get(), cancelled + 1);
	assert!(rx.recv().await.is_none(), "a cancelled request sends nothing");

	// Its client left before it was opened: opening it runs nothing, and the engine goes on.
	let (held, rx) = e.hold(prompt.clone(), greedy(n)).unwrap();
	drop(rx);
	held.open(Some(adapter.clone()), None).unwrap();
	wait_idle(&e).await;
	let (ids, _, _) = drain(e.submit(vec![3, 4], None, greedy(3)).unwrap()).await;
	assert!(!ids.is_empty() && ids.len() <= 3);
	assert_eq!(m.cancelled.get(), cancelled + 2);
}

#[tokio::test]
async fn a_long_prompt_is_prefilled_in_chunks_while_decodes_keep_going() {
	let f = fixture();
	let (e, m) = start(&f, EngineConfig { max_batch: 4, max_step_tokens: 8, queue: 8, kv_cache_bytes: None, ..Default::default() });
	let mut a = e.submit(vec![20, 21], None, greedy(60)).unwrap();
	// Let `a` start decoding.
	let mut a_tokens = 0;
	while a_tokens < 2 {
		if let Some(Event::Token { .. }) = a.recv().await {
			a_tokens += 1;
		}
	}
	let prompt: Vec<u32> = (30..70).collect(); // 40 tokens: at least 6 steps at 7 tokens per step
	let mut b = e.submit(prompt.clone(), None, greedy(2)).unwrap();
	let mut a_during_prefill = 0;
	let first = loop {
		tokio::select! {
			biased;
			ev = b.recv() => match ev { Some(Event::Token { id, .. }) => break id, other => panic!("{other:?}") },
			ev = a.recv() => if let Some(Event::Token { .. }) = ev { a_during_prefill += 1 },
		}
	};
	assert!(a_during_prefill >= 4, "the decoding sequence got only {a_during_prefill} tokens during a 40-token prefill");
	assert!(m.batch_rows.get_sample_count() >= 6);
	// Chunked prefill gives the same answer as feeding the prompt at once.
	let (rest, _, _) = drain(b).await;
	let ids: Vec<u32> = std::iter::once(first).chain(rest).collect();
	let want = reference(&f.model, &prompt, None, 2, &f.model.cfg.eos_ids());
	assert_eq!(ids, want);
}

#[tokio::test]
async fn adapters_in_one_batch_match_their_merged_models() {
	let f = fixture();
	let cfg = f.model.cfg.clone();
	let a1 = Arc::new(common::adapter(&cfg, 4, &["q_proj", "v_proj"], 1));
	let a2 = Arc::new(common::adapter(&cfg, 8, &["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], 2));
	let (e, _) = start(&f, EngineConfig { max_batch: 8, max_step_tokens: 64, queue: 8, kv_cache_bytes: None, ..Default::default() });
	let prompt = f.tokenizer.encode("A datanet is a living").unwrap();
	let n = 12;
	let eos = {
		let mut v = cfg.eos_ids();
		v.extend(f.tokenizer.token_id("<|im_end|>"));
		v
	};
	let jobs = vec![(None, prompt.clone()), (Some(a1.clone()), prompt.clone()), (Some(a2.clone()), prompt.clone()), (Some(a1.clone()), vec![3, 4, 5])];
	let rxs: Vec<_> = jobs.iter().map(|(a, p)| e.submit(p.clone(), a.clone(), greedy(n)).unwrap()).collect();
	let outs = futures::future::join_all(rxs.into_iter().map(drain)).await;
	for ((adapter, p), (ids, _, _)) in jobs.iter().zip(&outs) {
		let want = match adapter {
			Some(a) => reference(&f.model.merged(a).unwrap(), p, None, n, &eos),
			None => reference(&f.model, p, None, n, &eos),
		};
		assert_eq!(ids, &want, "adapter {:?}", adapter.as_ref().map(|a| a.name.clone()));
	}
	assert_ne!(outs[0].0, outs[1].0, "the adapter changes the answer");
	assert_ne!(outs[1].0, outs[2].0, "different adapters give different answers");
}

#[tokio::test]
async fn seeds_repeat_and_stop_strings_cut() {
	let f = fixture();
	let (e, _) = start(&f, EngineConfig::default());
	let p = f.tokenizer.encode("The river runs").unwrap();
	let sampled = |seed| SamplingParams { temperature: 1.0, top_p: 0.95, top_k: 50, seed: Some(seed), max_tokens: 24, stop: vec![] };
	let (x, tx, _) = drain(e.submit(p.clone(), None, sampled(1)).unwrap()).await;
	let (y, _, _) = drain(e.submit(p.clone(), None, sampled(1)).unwrap()).await;
	let (z, _, _) = drain(e.submit(p.clone(), None, sampled(2)).unwrap()).await;
	assert_eq!(x, y);
	assert_ne!(x, z);
	// Stop at a piece of the text the seeded run produced: output ends right before it.
	if let Some(cut) = tx.char_indices().map(|(i, _)| i).find(|&i| i >= 2 && tx[i..].chars().count() >= 2) {
		let stop: String = tx[cut..].chars().take(2).collect();
		let mut params = sampled(1);
		params.stop = vec![stop.clone()];
		let (_, text, reason) = drain(e.submit(p, None, params).unwrap()).await;
		assert_eq!(reason, FinishReason::Stop);
		assert_eq!(text, tx[..tx.find(&stop).unwrap()]);
	}
}

/// The scheduler against the backend test double: a long prompt is fed in chunks within the
/// step budget while short ones decode beside it; only a prompt's last chunk and decode rows
/// ask for logits; every answer is exactly what the script gives for what was fed.
#[tokio::test]
async fn the_scheduler_feeds_chunks_within_budget_and_asks_logits_only_to_sample() {
	use openledger_worker::engine::backend::ScriptedBackend;
	let f = fixture();
	let backend = ScriptedBackend::new(300, 256);
	let steps = backend.steps.clone();
	let script = ScriptedBackend::new(300, 256);
	let cfg = EngineConfig { max_batch: 4, max_step_tokens: 8, queue: 8, ..Default::default() };
	let e = Engine::start_with(backend, f.tokenizer.clone(), cfg, Metrics::new()).unwrap();
	let im_end = f.tokenizer.token_id("<|im_end|>").unwrap();
	let long: Vec<u32> = (10..40).collect();
	let prompts = [vec![5u32, 6], long.clone(), vec![7u32, 8, 9]];
	let rxs: Vec<_> = prompts.iter().map(|p| e.submit(p.clone(), None, greedy(6)).unwrap()).collect();
	for (p, rx) in prompts.iter().zip(rxs) {
		let (ids, _, reason) = drain(rx).await;
		let want = script_answer(&script, p, 6, im_end);
		assert_eq!(ids, want, "prompt {p:?}");
		assert_eq!(reason, if want.last() == Some(&im_end) { FinishReason::Stop } else { FinishReason::Length });
	}
	let steps = steps.lock().unwrap().clone();
	let mut long_chunks = vec![];
	for step in &steps {
		assert!(step.len() <= 4, "{} rows in a step", step.len());
		assert!(step.iter().map(|r| r.1.len()).sum::<usize>() <= 8, "step over budget: {step:?}");
		for (seq, tokens, before, sample, _) in step {
			if *seq == 1 && *before < long.len() {
				long_chunks.push((tokens.clone(), *sample));
			} else if *before >= prompts[*seq as usize].len() {
				assert!(*sample && tokens.len() == 1, "a decode row feeds one token and samples: {step:?}");
			}
		}
	}
	// The long prompt (the second sequence) went in several chunks, in order, and only the last
	// asked for logits.
	assert!(long_chunks.len() >= 4, "{long_chunks:?}");
	let fed: Vec<u32> = long_chunks.iter().flat_map(|c| c.0.clone()).collect();
	assert_eq!(fed, long);
	let samples: Vec<bool> = long_chunks.iter().map(|c| c.1).collect();
	assert_eq!(samples.iter().filter(|s| **s).count(), 1, "{long_chunks:?}");
	assert!(*samples.last().unwrap());
	// Decoding went on while the long prompt was fed: some step holds a chunk of it beside a decode row.
	assert!(steps.iter().any(|st| st.iter().any(|r| r.0 == 1 && r.2 < long.len() && !r.3) && st.iter().any(|r| r.0 != 1 && r.2 >= prompts[r.0 as usize].len())));
}

/// The script's answer to `prompt`: each token from every token before it, up to `n` or EOS.
fn script_answer(script: &openledger_worker::engine::backend::ScriptedBackend, prompt: &[u32], n: usize, eos: u32) -> Vec<u32> {
	let mut ctx = prompt.to_vec();
	let mut out = vec![];
	while out.len() < n {
		let t = script.next(&ctx);
		out.push(t);
		ctx.push(t);
		if t == eos {
			break;
		}
	}
	out
}

/// Every step of a log: no row writes into a block another row of the step holds (shared
/// blocks are only read), and every row's table covers what it feeds.
fn assert_private_writes(steps: &[openledger_worker::engine::backend::StepLog], bs: usize) {
	for step in steps {
		for (id, tokens, pos, _, blocks) in step {
			assert!(blocks.len() * bs >= pos + tokens.len(), "row {id}: table {blocks:?} for {} positions", pos + tokens.len());
			let written: std::collections::BTreeSet<u32> = (*pos..pos + tokens.len()).map(|p| blocks[p / bs]).collect();
			for (other, _, _, _, theirs) in step.iter().filter(|r| r.0 != *id) {
				assert!(theirs.iter().all(|b| !written.contains(b)), "row {id} writes into {written:?}, which row {other} holds: {step:?}");
			}
		}
	}
}

/// A pool far smaller than what the running sequences reach: decoding sequences that need a
/// block preempt the newest, whose blocks go back; the preempted sequence is recomputed from
/// its prompt and what it had generated, and every answer is still exactly the script's (which
/// reads every position back from the blocks). Afterwards no block is held, a cancelled
/// sequence included.
#[tokio::test]
async fn a_small_pool_preempts_the_newest_and_every_answer_stays_exact() {
	use openledger_worker::engine::backend::ScriptedBackend;
	let f = fixture();
	let mut backend = ScriptedBackend::new(300, 256);
	backend.step_time = Some(Duration::from_millis(3));
	let steps = backend.steps.clone();
	let script = ScriptedBackend::new(300, 256);
	// 12 blocks of 4 positions (the double's KV is 16 bytes a position): 48 positions.
	let cfg = EngineConfig {
		max_batch: 4,
		max_step_tokens: 16,
		queue: 8,
		kv_cache_bytes: Some(12 * 4 * 16),
		kv_block_size: 4,
		prefix_cache: PrefixCache::Global,
		..Default::default()
	};
	let m = Metrics::new();
	let e = Engine::start_with(backend, f.tokenizer.clone(), cfg, m.clone()).unwrap();
	assert_eq!(e.kv_blocks, 12);
	let im_end = f.tokenizer.token_id("<|im_end|>").unwrap();
	let mut long = greedy(38);
	long.stop = vec![];
	assert!(matches!(e.submit(vec![1; 11], None, long.clone()), Err(SubmitError::KvTooLarge { .. })), "49 positions never fit 48");
	// One that leaves while it runs (after its first token): its blocks come back.
	// (A prompt whose scripted answer runs all 38 tokens — 114 ms at least — so it is still
	// running when it leaves.)
	let leaving = (1..50u32).map(|t| vec![t; 8]).find(|p| !script_answer(&script, p, 38, im_end).contains(&im_end)).unwrap();
	let mut gone = e.submit(leaving, None, long.clone()).unwrap();
	assert!(matches!(gone.recv().await, Some(Event::Token { .. })));
	// (The pool is published at the end of the step that sent the token: poll.)
	let mut held = 0;
	for _ in 0..50 {
		held = e.health.kv_blocks().0;
		if held >= 2 {
			break;
		}
		tokio::time::sleep(Duration::from_millis(1)).await;
	}
	assert!(held >= 2, "it holds its prompt's blocks: {held}");
	drop(gone);
	let prompts: Vec<Vec<u32>> = (0..5u32).map(|i| (0..6).map(|j| 20 + 7 * i + j).collect()).collect();
	let rxs: Vec<_> = prompts.iter().map(|p| e.submit(p.clone(), None, long.clone()).unwrap()).collect();
	let outs = futures::future::join_all(rxs.into_iter().map(drain)).await;
	for (p, (ids, _, _)) in prompts.iter().zip(&outs) {
		assert_eq!(ids, &script_answer(&script, p, 38, im_end), "prompt {p:?}");
	}
	assert!(e.health.preemptions() >= 1, "five sequences of up to 44 positions in 48 preempt");
	wait_idle(&e).await;
	assert_eq!(e.health.kv_blocks().0, 0, "no block held once all are done, the one that left included");
	assert_eq!(m.cancelled.get(), 1);
	assert_eq!(m.prompt_tokens.get(), 38, "a recomputed prompt is not counted twice");
	let steps = steps.lock().unwrap().clone();
	assert_private_writes(&steps, 4);
	// Some sequence was fed from position 0 again after it had sampled: a recomputation.
	let recomputed = steps.iter().flatten().any(|(id, tokens, pos, _, _)| *pos == 0 && tokens.len() > 6 && *id < 5);
	assert!(recomputed, "a preempted sequence is recomputed with what it generated");
}

/// Swap preemption: with host memory for preempted sequences, a sequence preempted for blocks
/// is copied out and copied back into whatever blocks it gets on readmission, and resumes where
/// it was (never fed from position 0 again); the answers are still exactly the script's, which
/// reads every position back from the blocks, so a wrong copy changes them. With too little swap
/// memory, or a backend that refuses, sequences are recomputed instead, with the same answers.
/// The double forgets a swapped-out sequence's slots, so a swap-in that wrote nothing would
/// leave positions never written and fail the step.
#[tokio::test]
async fn preempted_sequences_are_swapped_out_and_back_when_swap_memory_allows() {
	use openledger_worker::engine::backend::ScriptedBackend;
	let f = fixture();
	let script = ScriptedBackend::new(300, 256);
	let im_end = f.tokenizer.token_id("<|im_end|>").unwrap();
	let mut long = greedy(38);
	long.stop = vec![];
	let prompts: Vec<Vec<u32>> = (0..5u32).map(|i| (0..6).map(|j| 20 + 7 * i + j).collect()).collect();
	// (swap bytes, refuse, whether swaps happen): 44 positions of 16 bytes fit 4 KiB; one
	// position (16 bytes) fits in 8 bytes never.
	for (swap, refuse, swaps) in [(4096, false, true), (8, false, false), (4096, true, false)] {
		let mut backend = ScriptedBackend::new(300, 256);
		backend.step_time = Some(Duration::from_millis(2));
		backend.refuse_swap = refuse;
		// The prompts are distinct: no block is shared, so a swapped-out sequence's slots may be
		// forgotten, and only a swap-in that writes them back gives the script's answers.
		backend.forget_swapped = true;
		let (steps, counts) = (backend.steps.clone(), backend.swaps.clone());
		let cfg = EngineConfig {
			max_batch: 4,
			max_step_tokens: 16,
			queue: 8,
			kv_cache_bytes: Some(12 * 4 * 16),
			kv_block_size: 4,
			kv_swap_bytes: swap,
			prefix_cache: PrefixCache::Global,
			..Default::default()
		};
		let m = Metrics::new();
		let e = Engine::start_with(backend, f.tokenizer.clone(), cfg, m.clone()).unwrap();
		let rxs: Vec<_> = prompts.iter().map(|p| e.submit(p.clone(), None, long.clone()).unwrap()).collect();
		let outs = futures::future::join_all(rxs.into_iter().map(drain)).await;
		for (p, (ids, _, _)) in prompts.iter().zip(&outs) {
			assert_eq!(ids, &script_answer(&script, p, 38, im_end), "swap {swap}, refuse {refuse}: prompt {p:?}");
		}
		wait_idle(&e).await;
		assert!(e.health.preemptions() >= 1, "five sequences of up to 44 positions in 48 preempt");
		let (outs_, ins) = *counts.lock().unwrap();
		let steps = steps.lock().unwrap().clone();
		assert_private_writes(&steps, 4);
		// A row fed from position 0 after that sequence had already been fed: a recomputation.
		let mut seen = std::collections::HashSet::new();
		let mut recomputed = 0;
		for (id, _, pos, _, _) in steps.iter().flatten() {
			if !seen.insert(*id) && *pos == 0 {
				recomputed += 1;
			}
		}
		if swaps {
			assert!(e.health.swaps() >= 1, "swapped: {}", e.health.swaps());
			assert_eq!(m.kv_swaps.get(), e.health.swaps(), "the Prometheus counter");
			assert_eq!((outs_ as u64, ins as u64), (e.health.swaps(), e.health.swaps()), "every swapped sequence came back");
			assert_eq!(e.health.preemptions(), e.health.swaps(), "every preemption swapped");
			assert_eq!(recomputed, 0, "no sequence was recomputed");
		} else {
			assert_eq!(e.health.swaps(), 0);
			assert_eq!(ins, 0);
			assert!(recomputed >= 1, "a preempted sequence is recomputed");
		}
		assert_eq!(m.prompt_tokens.get(), 30, "a resumed prompt is not counted twice");
	}
}

/// Clients that leave while their sequence is swapped out: the host copy is freed (the swap
/// gauge back to 0), no block stays held, nothing panics, and the next request gets the
/// script's answer.
#[tokio::test]
async fn clients_leaving_while_swapped_out_free_their_copy() {
	use openledger_worker::engine::backend::ScriptedBackend;
	let f = fixture();
	let script = ScriptedBackend::new(300, 256);
	let im_end = f.tokenizer.token_id("<|im_end|>").unwrap();
	let mut backend = ScriptedBackend::new(300, 256);
	backend.step_time = Some(Duration::from_millis(15));
	backend.forget_swapped = true;
	let cfg = EngineConfig {
		max_batch: 4,
		max_step_tokens: 16,
		queue: 8,
		kv_cache_bytes: Some(12 * 4 * 16),
		kv_block_size: 4,
		kv_swap_bytes: 4096,
		prefix_cache: PrefixCache::Global,
		..Default::default()
	};
	let m = Metrics::new();
	let e = Engine::start_with(backend, f.tokenizer.clone(), cfg, m.clone()).unwrap();
	let mut long = greedy(38);
	long.stop = vec![];
	let rxs: Vec<_> = (0..5u32).map(|i| e.submit((0..6).map(|j| 20 + 7 * i + j).collect(), None, long.clone()).unwrap()).collect();
	let mut swapped = false;
	for _ in 0..4000 {
		if m.kv_swap_bytes.get() > 0 {
			swapped = true;
			break;
		}
		tokio::time::sleep(Duration::from_millis(1)).await;
	}
	assert!(swapped, "a sequence was swapped out");
	drop(rxs);
	wait_idle(&e).await;
	// The gauge is published at the next step boundary after the sequences are dropped.
	for _ in 0..200 {
		if m.kv_swap_bytes.get() == 0 && e.health.kv_blocks().0 == 0 {
			break;
		}
		tokio::time::sleep(Duration::from_millis(5)).await;
	}
	assert_eq!(m.kv_swap_bytes.get(), 0, "the swapped-out copies are freed");
	assert_eq!(e.health.kv_blocks().0, 0, "no block stays held");
	assert!(m.cancelled.get() >= 1);
	assert!(e.health.alive() && e.health.panics() == 0);
	let prompt = vec![3, 4, 5, 6, 7];
	let (ids, _, _) = drain(e.submit(prompt.clone(), None, greedy(10)).unwrap()).await;
	assert_eq!(ids, script_answer(&script, &prompt, 10, im_end));
}

/// Full blocks of a prompt prefix are shared by a later request with the same prefix and the
/// same adapter (fed from the first unshared position), and not across adapters; the answers
/// are the script's, which reads the shared blocks back.
#[tokio::test]
async fn identical_prefixes_share_blocks_per_adapter() {
	use openledger_worker::engine::backend::ScriptedBackend;
	let f = fixture();
	let backend = ScriptedBackend::new(300, 256);
	let steps = backend.steps.clone();
	let script = ScriptedBackend::new(300, 256);
	let cfg = EngineConfig {
		max_batch: 4,
		max_step_tokens: 64,
		queue: 8,
		kv_cache_bytes: Some(64 * 4 * 16),
		kv_block_size: 4,
		prefix_cache: PrefixCache::Global,
		..Default::default()
	};
	let m = Metrics::new();
	let e = Engine::start_with(backend, f.tokenizer.clone(), cfg, m.clone()).unwrap();
	let im_end = f.tokenizer.token_id("<|im_end|>").unwrap();
	let adapter = Arc::new(common::adapter(&f.model.cfg, 4, &["q_proj"], 1));
	let system: Vec<u32> = (100..120).collect(); // five full blocks
	let ask = |tail: &[u32]| -> Vec<u32> { system.iter().chain(tail).copied().collect() };
	let mut params = greedy(3);
	params.stop = vec![];
	let run = |p: Vec<u32>, a: Option<Arc<LoraAdapter>>| {
		let rx = e.submit(p, a, params.clone()).unwrap();
		drain(rx)
	};
	let (first, _, _) = run(ask(&[1, 2, 3]), None).await;
	assert_eq!(first, script_answer(&script, &ask(&[1, 2, 3]), 3, im_end));
	assert_eq!(m.prefix_cached_tokens.get(), 0);
	let (second, _, _) = run(ask(&[4, 5]), None).await;
	assert_eq!(second, script_answer(&script, &ask(&[4, 5]), 3, im_end));
	assert_eq!(m.prefix_cached_tokens.get(), 20, "the five system blocks were shared");
	let (third, _, _) = run(ask(&[4, 5]), Some(adapter.clone())).await;
	assert_eq!(third, script_answer(&script, &ask(&[4, 5]), 3, im_end));
	assert_eq!(m.prefix_cached_tokens.get(), 20, "another adapter shares nothing");
	// A prompt that is exactly shared blocks still feeds its last token (it must sample).
	let (fourth, _, _) = run(system.clone(), None).await;
	assert_eq!(fourth, script_answer(&script, &system, 3, im_end));
	assert_eq!(m.prefix_cached_tokens.get(), 36);
	let steps = steps.lock().unwrap().clone();
	let first_rows: Vec<_> = [0u64, 1, 2, 3].iter().map(|id| steps.iter().flatten().find(|r| r.0 == *id).unwrap().clone()).collect();
	assert_eq!(first_rows[1].2, 20, "the second request is fed from position 20");
	assert_eq!(first_rows[1].4[..5], first_rows[0].4[..5], "on the first one's blocks");
	assert_eq!(first_rows[2].2, 0, "the adapter's request from 0");
	assert!(first_rows[2].4.iter().all(|b| !first_rows[0].4[..5].contains(b)));
	assert_eq!((first_rows[3].2, &first_rows[3].1), (16, &system[16..].to_vec()), "four blocks shared, the fifth recomputed");
	assert_private_writes(&steps, 4);
	wait_idle(&e).await;
	let (used, cached) = e.health.kv_blocks();
	assert_eq!(used, 0);
	assert!(cached >= 5, "finished prefixes stay cached for the next request: {cached}");
}

/// Under the default `tenant` scope a tenant's cached prefix serves that tenant only: another
/// tenant, and a request with no tenant, compute the whole prompt (a cached prefix answers
/// sooner, so sharing would let anyone probe for another's prompt); under `off` nobody shares.
#[tokio::test]
async fn cached_prefixes_are_shared_only_within_a_tenant() {
	use openledger_worker::engine::backend::ScriptedBackend;
	let f = fixture();
	let im_end = f.tokenizer.token_id("<|im_end|>").unwrap();
	let script = ScriptedBackend::new(300, 256);
	let prompt: Vec<u32> = (100..121).collect(); // five full blocks of 4, and one token
	let mut params = greedy(2);
	params.stop = vec![];
	for (scope, want) in [(PrefixCache::Tenant, vec![0u64, 20, 0, 0, 20]), (PrefixCache::Off, vec![0; 5])] {
		let cfg = EngineConfig { kv_cache_bytes: Some(64 * 4 * 16), kv_block_size: 4, prefix_cache: scope, ..Default::default() };
		let m = Metrics::new();
		let e = Engine::start_with(ScriptedBackend::new(300, 256), f.tokenizer.clone(), cfg, m.clone()).unwrap();
		let mut hits = vec![];
		for tenant in [Some(&b"alice"[..]), Some(b"alice"), Some(b"bob"), None, Some(b"bob")] {
			let before = m.prefix_cached_tokens.get();
			let (ids, _, _) = drain(e.submit_for(prompt.clone(), None, params.clone(), tenant).unwrap()).await;
			assert_eq!(ids, script_answer(&script, &prompt, 2, im_end));
			hits.push(m.prefix_cached_tokens.get() - before);
		}
		// Alice's second request reads her first one's five blocks; Bob's first reads none of
		// hers, the tenant-less one none at all, Bob's second his first one's.
		assert_eq!(hits, want, "{scope:?}");
	}
}

/// The candle model over a pool of 40 positions (10 blocks of 4) with `swap` bytes of swap
/// memory: four sequences of 33 positions (9-token prompts of ids `first + stride·i + j`, 24
/// greedy tokens), so some are preempted; every answer must equal the model's own continuation
/// computed alone with a private cache. Returns the engine, its metrics, the end ids and the
/// sampling parameters, for more requests.
async fn four_into_a_small_pool(f: &Fixture, swap: usize, prefix_cache: PrefixCache, first: u32, stride: u32) -> (Engine, Metrics, Vec<u32>, SamplingParams) {
	let per_token = 2 * f.model.cfg.num_hidden_layers * f.model.cfg.kv_heads() * f.model.cfg.head_dim() * 4;
	let cfg = EngineConfig {
		max_batch: 4,
		max_step_tokens: 32,
		queue: 8,
		kv_cache_bytes: Some(10 * 4 * per_token),
		kv_block_size: 4,
		kv_swap_bytes: swap,
		prefix_cache,
		..Default::default()
	};
	let (e, m) = start(f, cfg);
	let mut eos = f.model.cfg.eos_ids();
	eos.extend(f.tokenizer.token_id("<|im_end|>"));
	let prompts: Vec<Vec<u32>> = (0..4u32).map(|i| (0..9).map(|j| first + stride * i + j).collect()).collect();
	let mut p = greedy(24);
	p.stop = vec![];
	let rxs: Vec<_> = prompts.iter().map(|q| e.submit(q.clone(), None, p.clone()).unwrap()).collect();
	let outs = futures::future::join_all(rxs.into_iter().map(drain)).await;
	for (q, (ids, _, _)) in prompts.iter().zip(&outs) {
		assert_eq!(ids, &reference(&f.model, q, None, 24, &eos), "prompt {q:?}");
	}
	assert!(e.health.preemptions() >= 1, "four sequences of 33 positions in a pool of 40");
	(e, m, eos, p)
}

/// The candle model over a pool so small that sequences are preempted and recomputed, and a
/// later request sharing a prompt prefix: every greedy answer equals the model's own
/// continuation computed alone with a private cache.
#[tokio::test]
async fn the_model_over_a_small_shared_pool_answers_as_alone() {
	let f = fixture();
	let (e, m, eos, p) = four_into_a_small_pool(&f, 0, PrefixCache::Global, 40, 11).await;
	assert_eq!(e.health.swaps(), 0, "no swap memory: recomputed");
	// A prompt, then one that extends it: the second reads the first one's two full blocks.
	let first: Vec<u32> = (60..69).collect();
	let (ids, _, _) = drain(e.submit(first.clone(), None, p.clone()).unwrap()).await;
	assert_eq!(ids, reference(&f.model, &first, None, 24, &eos));
	let before = m.prefix_cached_tokens.get();
	let shared: Vec<u32> = first.iter().chain(&[7, 8, 9]).copied().collect();
	let (ids, _, _) = drain(e.submit(shared.clone(), None, p.clone()).unwrap()).await;
	assert_eq!(ids, reference(&f.model, &shared, None, 24, &eos));
	assert_eq!(m.prefix_cached_tokens.get() - before, 8, "the first prompt's two full blocks were shared");
}

/// The candle model with swap memory: preempted sequences' keys and values are copied out of
/// the pool and back into other blocks, and every greedy answer still equals the model's own
/// continuation computed alone (a copy put back in the wrong slots, or of the wrong layer,
/// changes the logits).
#[tokio::test]
async fn the_model_swapped_out_and_back_answers_as_alone() {
	let f = fixture();
	let (e, _m, _eos, _p) = four_into_a_small_pool(&f, 1 << 20, PrefixCache::Off, 41, 13).await;
	assert!(e.health.swaps() >= 1, "preempted sequences were swapped: {}", e.health.swaps());
}

/// A backend error fails the sequences of that step with the error, and the engine serves the
/// next request.
#[tokio::test]
async fn a_backend_error_fails_its_step_and_the_engine_goes_on() {
	use openledger_worker::engine::backend::ScriptedBackend;
	let f = fixture();
	let mut backend = ScriptedBackend::new(300, 256);
	backend.fail_on = Some(250);
	let e = Engine::start_with(backend, f.tokenizer.clone(), EngineConfig::default(), Metrics::new()).unwrap();
	// Two sequences admitted together share the failing step: both fail with its error.
	let rxs = [e.submit(vec![4, 250, 6], None, greedy(4)).unwrap(), e.submit(vec![4, 5, 7], None, greedy(4)).unwrap()];
	for mut rx in rxs {
		match rx.recv().await {
			Some(Event::Error(msg)) => assert!(msg.contains("scripted failure on token 250"), "{msg}"),
			other => panic!("expected the backend's error, got {other:?}"),
		}
	}
	let (ids, _, _) = drain(e.submit(vec![4, 5, 6], None, greedy(4)).unwrap()).await;
	assert!(!ids.is_empty());
	assert!(e.health.alive());
}
