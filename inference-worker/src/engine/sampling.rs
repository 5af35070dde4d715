//! Token sampling: temperature, top-k, top-p, seeded; plus stop-string handling for streams.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
	/// 0 means greedy.
	pub temperature: f32,
	/// 1.0 disables nucleus sampling.
	pub top_p: f32,
	/// 0 disables top-k.
	pub top_k: usize,
	pub seed: Option<u64>,
	pub max_tokens: usize,
	pub stop: Vec<String>,
}

impl Default for SamplingParams {
	fn default() -> Self {
		Self { temperature: 1.0, top_p: 1.0, top_k: 0, seed: None, max_tokens: 16, stop: vec![] }
	}
}

pub struct Sampler {
	rng: ChaCha8Rng,
	params: SamplingParams,
}

impl Sampler {
	pub fn new(params: SamplingParams) -> Self {
		let rng = match params.seed {
			Some(s) => ChaCha8Rng::seed_from_u64(s),
			None => ChaCha8Rng::from_entropy(),
		};
		Self { rng, params }
	}

	/// Samples one token. Costs O(vocab) plus a sort of only the candidates that matter: greedy
	/// is an argmax; top-k selects k (`select_nth`) and sorts them; top-p alone sorts a growing
	/// head (64, 256, … tokens) until it holds the nucleus; plain sampling sorts nothing.
	/// A NaN logit counts as −∞ (never drawn); a temperature so small that 1/T overflows is
	/// greedy.
	pub fn sample(&mut self, logits: &[f32]) -> u32 {
		let p = &self.params;
		let inv_t = 1.0 / p.temperature;
		if p.temperature <= 0.0 || !inv_t.is_finite() || p.top_k == 1 || logits.is_empty() {
			return argmax(logits);
		}
		let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l));
		if !max.is_finite() {
			return argmax(logits);
		}
		// exp(−∞) = 0; NaN (a NaN logit) → 0 as well.
		let weight = |l: f32| {
			let w = ((l - max) * inv_t).exp();
			if w.is_nan() {
				0.0
			} else {
				w
			}
		};
		// Highest first; ties by lower token id, so results never depend on sort stability.
		let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
		let mut cand: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
		if p.top_k > 0 && p.top_k < cand.len() {
			cand.select_nth_unstable_by(p.top_k - 1, by_logit);
			cand.truncate(p.top_k);
			cand.sort_unstable_by(by_logit);
		}
		let total: f32 = cand.iter().map(|c| weight(c.1)).sum();
		let keep = if p.top_p < 1.0 {
			// The nucleus: the fewest highest-weight tokens whose mass reaches top_p.
			let goal = p.top_p * total;
			let mut head = 64.min(cand.len());
			loop {
				if head < cand.len() && p.top_k == 0 {
					cand.select_nth_unstable_by(head - 1, by_logit);
				}
				cand[..head].sort_unstable_by(by_logit);
				let mut acc = 0.0;
				let found = cand[..head].iter().position(|c| {
					acc += weight(c.1);
					acc >= goal
				});
				match found {
					Some(i) => break i + 1,
					None if head == cand.len() => break head,
					None => head = (head * 4).min(cand.len()),
				}
			}
		} else {
			cand.len()
		};
		// The mass is summed in the order of the draw below, so rounding cannot leave the draw
		// past the last candidate; were it to, the best candidate is taken, never a zero-weight one.
		let cand = &cand[..keep];
		let mass: f32 = cand.iter().map(|c| weight(c.1)).sum();
		let r: f32 = self.rng.gen::<f32>() * mass;
		let mut acc = 0.0;
		for c in cand {
			let w = weight(c.1);
			acc += w;
			if w > 0.0 && r < acc {
				return c.0;
			}
		}
		argmax(logits)
	}
}

/// The index of the largest logit (the first of equals); NaN logits are never chosen unless
/// every logit is NaN.
pub fn argmax(logits: &[f32]) -> u32 {
	let mut best: Option<usize> = None;
	for (i, l) in logits.iter().enumerate() {
		if !l.is_nan() && best.is_none_or(|b| *l > logits[b]) {
			best = Some(i);
		}
	}
	best.unwrap_or(0) as u32
}

/// Releases generated text as it streams, holding back a tail that may be the start of a stop
/// string and cutting the text at the first stop string.
#[derive(Default)]
pub struct StopFilter {
	stops: Vec<String>,
	text: String,
	emitted: usize,
}

impl StopFilter {
	pub fn new(stops: Vec<String>) -> Self {
		Self { stops: stops.into_iter().filter(|s| !s.is_empty()).collect(), ..Default::default() }
	}

	/// Adds a delta; returns the text that may be released now and whether a stop string hit.
	pub fn push(&mut self, delta: &str) -> (String, bool) {
		// A stop string may straddle what was emitted and the delta: search from its longest
		// length back, moved down to a character boundary (the text is UTF-8, the lengths bytes).
		let mut search_from = self.emitted.saturating_sub(self.stops.iter().map(|s| s.len()).max().unwrap_or(0));
		while !self.text.is_char_boundary(search_from) {
			search_from -= 1;
		}
		self.text.push_str(delta);
		let hit = self
			.stops
			.iter()
			.filter_map(|s| self.text[search_from..].find(s.as_str()).map(|i| i + search_from))
			.min();
		if let Some(at) = hit {
			let out = self.text[self.emitted.min(at)..at].to_string();
			self.emitted = at;
			return (out, true);
		}
		let mut hold = 0;
		for s in &self.stops {
			for k in (1..s.len()).rev() {
				if s.is_char_boundary(k) && self.text.ends_with(&s[..k]) {
					hold = hold.max(k);
					break;
				}
			}
		}
		let until = (self.text.len() - hold).max(self.emitted);
		let out = self.text[self.emitted..until].to_string();
		self.emitted = until;
		(out, false)
	}

	/// What was held back, released when the sequence ends for another reason.
	pub fn flush(&mut self) -> String {
		let out = self.text[self.emitted..].to_string();
		self.emitted = self.text.len();
		out
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn greedy_topk1_and_seeds() {
		let logits = [0.1, 2.0, 1.9, -1.0];
		let mut g = Sampler::new(SamplingParams { temperature: 0.0, ..Default::default() });
		assert_eq!(g.sample(&logits), 1);
		let mut k1 = Sampler::new(SamplingParams { top_k: 1, seed: Some(1), ..Default::default() });
		assert_eq!(k1.sample(&logits), 1);
		let run = |seed| {
			let mut s = Sampler::new(SamplingParams { seed: Some(seed), ..Default::default() });
			(0..32).map(|_| s.sample(&logits)).collect::<Vec<_>>()
		};
		assert_eq!(run(7), run(7));
		assert_ne!(run(7), run(8));
		// top-k 2 never picks outside the two best; a tight top-p only the best.
		let mut k2 = Sampler::new(SamplingParams { top_k: 2, seed: Some(3), ..Default::default() });
		assert!((0..200).map(|_| k2.sample(&logits)).all(|t| t == 1 || t == 2));
		let mut p = Sampler::new(SamplingParams { top_p: 0.3, seed: Some(3), ..Default::default() });
		assert!((0..200).map(|_| p.sample(&logits)).all(|t| t == 1));
	}

	/// The distribution sampled equals the brute-force one (sort everything, cut at top-k, cut at
	/// top-p, renormalize) on a 5,000-token vocabulary, where the nucleus (~3,000 tokens) is past
	/// the first heads the sampler sorts, and with top-k: frequencies of 60,000 draws within 4
	/// standard deviations of each token's probability, nothing outside the kept set drawn.
	#[test]
	fn sampled_frequencies_match_the_brute_force_distribution() {
		use rand::Rng;
		let mut rng = ChaCha8Rng::seed_from_u64(11);
		let logits: Vec<f32> = (0..5000).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
		for (case, (top_k, top_p, temperature)) in [(0, 0.7, 1.3), (0, 1.0, 0.8), (40, 0.9, 1.0), (300, 1.0, 1.0), (0, 0.05, 1.0)].into_iter().enumerate() {
			let mut order: Vec<usize> = (0..logits.len()).collect();
			order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
			if top_k > 0 {
				order.truncate(top_k);
			}
			let max = logits[order[0]];
			let w: Vec<f64> = order.iter().map(|&i| (((logits[i] - max) / temperature) as f64).exp()).collect();
			let total: f64 = w.iter().sum();
			let mut keep = order.len();
			let mut acc = 0.0;
			for (j, x) in w.iter().enumerate() {
				acc += x / total;
				if top_p < 1.0 && acc >= top_p as f64 {
					keep = j + 1;
					break;
				}
			}
			let mass: f64 = w[..keep].iter().sum();
			let mut want = vec![0.0f64; logits.len()];
			for j in 0..keep {
				want[order[j]] = w[j] / mass;
			}
			let draws = 60_000;
			let mut s = Sampler::new(SamplingParams { top_k, top_p, temperature, seed: Some(5), ..Default::default() });
			let mut got = vec![0usize; logits.len()];
			for _ in 0..draws {
				got[s.sample(&logits) as usize] += 1;
			}
			for (t, (&n, &p)) in got.iter().zip(&want).enumerate() {
				if p == 0.0 {
					assert_eq!(n, 0, "token {t} is outside the kept set ({top_k}, {top_p})");
					continue;
				}
				// 5.5 σ per token: over ~8,500 kept tokens a correct sampler passes with
				// probability > 0.9997, whatever the seed.
				let sd = (draws as f64 * p * (1.0 - p)).sqrt();
				assert!((n as f64 - draws as f64 * p).abs() <= 5.5 * sd + 1.0, "token {t}: {n} draws, expected {:.1} ({top_k}, {top_p})", draws as f64 * p);
			}
			if case == 0 {
				assert!(keep > 256, "the nucleus is past the first heads the sampler sorts: {keep}");
			}
		}
	}

	/// Ids at −∞ (suppressed) or NaN are never drawn, whatever the knobs; a temperature whose
	/// inverse overflows is greedy.
	#[test]
	fn suppressed_and_nan_logits_are_never_drawn() {
		let mut logits = vec![f32::NEG_INFINITY; 1000];
		logits[10] = 0.5;
		logits[20] = 0.4;
		logits[30] = f32::NAN;
		logits[0] = f32::NAN;
		for (top_k, top_p, temperature) in [(0, 1.0, 1.0), (0, 0.999_999, 1.0), (5, 1.0, 3.0), (0, 0.5, 1e-39), (0, 1.0, 1e-30), (2000, 1.0, 100.0)] {
			let mut s = Sampler::new(SamplingParams { top_k, top_p, temperature, seed: Some(1), ..Default::default() });
			for _ in 0..2000 {
				let t = s.sample(&logits);
				assert!(t == 10 || t == 20, "drew {t} with ({top_k}, {top_p}, {temperature})");
			}
		}
		let mut s = Sampler::new(SamplingParams { temperature: 1e-39, seed: Some(1), ..Default::default() });
		assert_eq!(s.sample(&logits), 10, "greedy");
		assert_eq!(argmax(&[f32::NAN, 1.0, 2.0, f32::NAN]), 2);
	}

	#[test]
	fn stop_strings_cut_and_hold_back() {
		let mut f = StopFilter::new(vec!["\n\n".into(), "END".into()]);
		assert_eq!(f.push("hello E"), ("hello ".into(), false));
		assert_eq!(f.push("N"), ("".into(), false));
		assert_eq!(f.push("Xtra"), ("ENXtra".into(), false));
		assert_eq!(f.push(" done\n"), (" done".into(), false));
		assert_eq!(f.push("\nmore"), ("".into(), true));
		let mut f = StopFilter::new(vec!["END".into()]);
		assert_eq!(f.push("abcEN"), ("abc".into(), false));
		assert_eq!(f.flush(), "EN");
	}

	/// Multi-byte output with stop strings: the search start used to land inside a character
	/// ("é" is two bytes, "日本" six) and the slice panicked on the engine thread.
	#[test]
	fn multi_byte_text_never_splits_a_character() {
		// Emitted 4 bytes, longest stop 3: the old search started at byte 1, inside "é".
		let mut f = StopFilter::new(vec!["xyz".into()]);
		assert_eq!(f.push("éé"), ("éé".into(), false));
		assert_eq!(f.push("a"), ("a".into(), false));
		let mut f = StopFilter::new(vec!["xyz".into()]);
		assert_eq!(f.push("é"), ("é".into(), false));
		assert_eq!(f.push("日本"), ("日本".into(), false));
		assert_eq!(f.push("語x"), ("語".into(), false));
		assert_eq!(f.push("y"), ("".into(), false));
		assert_eq!(f.push("z!"), ("".into(), true));
		// Multi-byte stop strings, held back across deltas and cut exactly.
		let mut f = StopFilter::new(vec!["終わり".into(), "ab".into()]);
		assert_eq!(f.push("ñandú終"), ("ñandú".into(), false));
		assert_eq!(f.push("わ"), ("".into(), false));
		assert_eq!(f.push("x"), ("終わx".into(), false));
		assert_eq!(f.push("€終わり🙂"), ("€".into(), true));
		// Every split of a mixed string into deltas: never a panic, always the same text.
		let text = "aé日🙂bé終わりc";
		let chars: Vec<char> = text.chars().collect();
		for cut in 0..chars.len() {
			let (a, b): (String, String) = (chars[..cut].iter().collect(), chars[cut..].iter().collect());
			let mut f = StopFilter::new(vec!["わり".into(), "🙂🙂".into(), "éé".into()]);
			let (mut out, mut hit) = f.push(&a);
			if !hit {
				let (o2, h2) = f.push(&b);
				out.push_str(&o2);
				hit = h2;
			}
			assert!(hit, "cut {cut}");
			assert_eq!(out, "aé日🙂bé終", "cut {cut}");
		}
	}
}
