//! `tokenizer.json` (HF `tokenizers`), the chat template of `tokenizer_config.json` (Jinja, via
//! minijinja) and incremental detokenization for streaming.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct ChatMessage {
	pub role: String,
	pub content: String,
}

/// `bos_token`/`eos_token` are strings or `{"content": ...}` objects in `tokenizer_config.json`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SpecialToken {
	Plain(String),
	Object { content: String },
}

impl SpecialToken {
	fn content(self) -> String {
		match self {
			SpecialToken::Plain(s) | SpecialToken::Object { content: s } => s,
		}
	}
}

#[derive(Deserialize, Default)]
struct TokenizerConfig {
	#[serde(default)]
	chat_template: Option<serde_json::Value>,
	#[serde(default)]
	bos_token: Option<SpecialToken>,
	#[serde(default)]
	eos_token: Option<SpecialToken>,
	/// Llama's `add_bos_token` (HF `LlamaTokenizer`): prompts start with BOS.
	#[serde(default)]
	add_bos_token: Option<bool>,
}

pub struct TextTokenizer {
	pub inner: tokenizers::Tokenizer,
	chat_template: Option<String>,
	add_bos_token: bool,
	pub bos_token: Option<String>,
	pub eos_token: Option<String>,
}

impl TextTokenizer {
	pub fn load(dir: &Path) -> anyhow::Result<Self> {
		let inner = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json"))
			.map_err(|e| anyhow::anyhow!("loading {}/tokenizer.json: {e}", dir.display()))?;
		let cfg_path = dir.join("tokenizer_config.json");
		let cfg: TokenizerConfig = if cfg_path.exists() {
			serde_json::from_slice(&std::fs::read(&cfg_path)?).context("tokenizer_config.json")?
		} else {
			TokenizerConfig::default()
		};
		// A template is a string, or a list of named templates ("default", "tool_use", ...).
		let chat_template = match cfg.chat_template {
			Some(serde_json::Value::String(s)) => Some(s),
			Some(serde_json::Value::Array(list)) => list.iter().find_map(|t| {
				(t.get("name")?.as_str()? == "default").then(|| t.get("template")?.as_str().map(String::from))?
			}),
			_ => None,
		};
		Ok(Self {
			inner,
			chat_template,
			add_bos_token: cfg.add_bos_token.unwrap_or(false),
			bos_token: cfg.bos_token.map(SpecialToken::content),
			eos_token: cfg.eos_token.map(SpecialToken::content),
		})
	}

	pub fn encode(&self, text: &str) -> anyhow::Result<Vec<u32>> {
		Ok(self.inner.encode(text, false).map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?.get_ids().to_vec())
	}

	/// A raw prompt (`/v1/completions`) as the model was trained to see one: with the special
	/// tokens the tokenizer's post-processor adds (Llama's BOS), and BOS first where
	/// `tokenizer_config.json` asks for it. Chat prompts come from a template that writes its
	/// own special tokens, so they go through [`Self::encode`].
	pub fn encode_prompt(&self, text: &str) -> anyhow::Result<Vec<u32>> {
		let mut ids = self.inner.encode(text, true).map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?.get_ids().to_vec();
		if self.add_bos_token {
			if let Some(bos) = self.bos_token.as_deref().and_then(|t| self.token_id(t)) {
				if ids.first() != Some(&bos) {
					ids.insert(0, bos);
				}
			}
		}
		Ok(ids)
	}

	pub fn decode(&self, ids: &[u32]) -> anyhow::Result<String> {
		self.inner.decode(ids, true).map_err(|e| anyhow::anyhow!("detokenizing: {e}"))
	}

	/// The text of every added token (special or not): strings the tokenizer turns into those
	/// tokens wherever they appear in input text.
	pub fn added_tokens(&self) -> Vec<String> {
		self.inner.get_added_tokens_decoder().into_values().map(|t| t.content).collect()
	}

	pub fn token_id(&self, token: &str) -> Option<u32> {
		self.inner.token_to_id(token)
	}

	/// Renders `messages` with the model's chat template (a plain "role: content" transcript when
	/// the model has none), ending with the assistant's turn.
	pub fn apply_chat_template(&self, messages: &[ChatMessage]) -> anyhow::Result<String> {
		let Some(template) = &self.chat_template else {
			let mut s = String::new();
			for m in messages {
				s.push_str(&format!("{}: {}\n", m.role, m.content));
			}
			s.push_str("assistant:");
			return Ok(s);
		};
		let mut env = minijinja::Environment::new();
		env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
			Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
		});
		env.add_template("chat", template).context("the model's chat template does not parse")?;
		let out = env
			.get_template("chat")?
			.render(minijinja::context! {
				messages => messages,
				add_generation_prompt => true,
				bos_token => self.bos_token.clone().unwrap_or_default(),
				eos_token => self.eos_token.clone().unwrap_or_default(),
			})
			.map_err(|e| anyhow::anyhow!("chat template: {e}"))?;
		Ok(out)
	}
}

/// Turns a growing list of token ids into text deltas, holding back bytes that do not yet form
/// whole characters (a multi-byte character split over tokens).
#[derive(Default)]
pub struct IncrementalDecoder {
	tokens: Vec<u32>,
	prefix_offset: usize,
	read_offset: usize,
}

impl IncrementalDecoder {
	pub fn push(&mut self, tk: &TextTokenizer, token: u32) -> anyhow::Result<Option<String>> {
		self.tokens.push(token);
		let prefix = tk.decode(&self.tokens[self.prefix_offset..self.read_offset])?;
		let full = tk.decode(&self.tokens[self.prefix_offset..])?;
		if full.len() > prefix.len() && !full.ends_with('\u{FFFD}') && full.is_char_boundary(prefix.len()) {
			let delta = full[prefix.len()..].to_string();
			self.prefix_offset = self.read_offset;
			self.read_offset = self.tokens.len();
			Ok(Some(delta))
		} else {
			Ok(None)
		}
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn generated_tokenizer_round_trips_and_renders_chat() {
		let dir = tempfile::tempdir().unwrap();
		let tk = crate::model::synthetic::train_tokenizer(crate::model::synthetic::CORPUS, 400, dir.path()).unwrap();
		tk.save(dir.path().join("tokenizer.json"), false).unwrap();
		std::fs::write(
			dir.path().join("tokenizer_config.json"),
			serde_json::json!({"chat_template": crate::model::synthetic::CHATML_TEMPLATE, "eos_token": {"content": "<|im_end|>"}})
				.to_string(),
		)
		.unwrap();
		let tk = TextTokenizer::load(dir.path()).unwrap();
		assert_eq!(tk.eos_token.as_deref(), Some("<|im_end|>"));
		let text = "A datanet is a living dataset. Ünïcode ✓ too.";
		let ids = tk.encode(text).unwrap();
		assert_eq!(tk.decode(&ids).unwrap(), text);
		assert_eq!(tk.encode_prompt(text).unwrap(), ids, "no BOS unless the tokenizer asks for one");
		// Llama-style `add_bos_token`: a completion prompt starts with BOS, once.
		let cfg = serde_json::json!({"bos_token": "<s>", "add_bos_token": true});
		std::fs::write(dir.path().join("tokenizer_config.json"), cfg.to_string()).unwrap();
		let llama = TextTokenizer::load(dir.path()).unwrap();
		let bos = llama.token_id("<s>").unwrap();
		assert_eq!(llama.encode_prompt(text).unwrap(), [vec![bos], ids.clone()].concat());
		assert_eq!(llama.encode_prompt(&format!("<s>{text}")).unwrap(), [vec![bos], ids.clone()].concat());
		std::fs::write(
			dir.path().join("tokenizer_config.json"),
			serde_json::json!({"chat_template": crate::model::synthetic::CHATML_TEMPLATE, "eos_token": {"content": "<|im_end|>"}}).to_string(),
		)
		.unwrap();

		// Streaming deltas add up to the whole text, even across split multi-byte characters.
		let mut dec = IncrementalDecoder::default();
		let mut streamed = String::new();
		for id in &ids {
			if let Some(d) = dec.push(&tk, *id).unwrap() {
				streamed.push_str(&d);
			}
		}
		assert_eq!(streamed, text);

		let chat = tk
			.apply_chat_template(&[ChatMessage { role: "user".into(), content: "hi".into() }])
			.unwrap();
		assert_eq!(chat, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
		let ids = tk.encode(&chat).unwrap();
		assert_eq!(ids[0], tk.token_id("<|im_start|>").unwrap(), "special tokens stay whole");
	}
}
