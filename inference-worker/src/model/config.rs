//! `config.json` of a Llama-family model (Llama, Mistral, Qwen2 — they share one layout).

use serde::{Deserialize, Serialize};

/// One id or several (`eos_token_id` is a list in some configs).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum TokenIds {
	One(u32),
	Many(Vec<u32>),
}

impl TokenIds {
	pub fn to_vec(&self) -> Vec<u32> {
		match self {
			TokenIds::One(id) => vec![*id],
			TokenIds::Many(ids) => ids.clone(),
		}
	}
}

/// The fields of a Hugging Face `config.json` the model needs.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct LlamaConfig {
	#[serde(default = "default_model_type")]
	pub model_type: String,
	pub hidden_size: usize,
	pub intermediate_size: usize,
	pub num_hidden_layers: usize,
	pub num_attention_heads: usize,
	#[serde(default)]
	pub num_key_value_heads: Option<usize>,
	#[serde(default)]
	pub head_dim: Option<usize>,
	pub vocab_size: usize,
	#[serde(default = "default_eps")]
	pub rms_norm_eps: f64,
	#[serde(default = "default_theta")]
	pub rope_theta: f64,
	#[serde(default = "default_max_pos")]
	pub max_position_embeddings: usize,
	#[serde(default)]
	pub tie_word_embeddings: bool,
	/// Qwen2 has biases on q/k/v; Llama may declare `attention_bias`.
	#[serde(default)]
	pub attention_bias: Option<bool>,
	#[serde(default)]
	pub bos_token_id: Option<TokenIds>,
	#[serde(default)]
	pub eos_token_id: Option<TokenIds>,
	#[serde(default)]
	pub torch_dtype: Option<String>,
	#[serde(default)]
	pub architectures: Vec<String>,
	/// Llama 3.1+ / long-context RoPE scaling: not implemented, so such configs are refused
	/// (wrong logits otherwise) unless it is absent, null or `{"rope_type": "default"}`.
	#[serde(default)]
	pub rope_scaling: Option<serde_json::Value>,
	/// Mistral / Qwen2 sliding-window attention: not implemented; refused when it would apply.
	#[serde(default)]
	pub sliding_window: Option<usize>,
	/// Qwen2 turns the window on with this flag.
	#[serde(default)]
	pub use_sliding_window: Option<bool>,
}

fn default_model_type() -> String {
	"llama".into()
}
fn default_eps() -> f64 {
	1e-6
}
fn default_theta() -> f64 {
	10_000.0
}
fn default_max_pos() -> usize {
	4096
}

impl LlamaConfig {
	pub fn kv_heads(&self) -> usize {
		self.num_key_value_heads.unwrap_or(self.num_attention_heads)
	}
	pub fn head_dim(&self) -> usize {
		self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
	}
	pub fn qkv_bias(&self) -> bool {
		self.attention_bias.unwrap_or(self.model_type == "qwen2")
	}
	pub fn eos_ids(&self) -> Vec<u32> {
		self.eos_token_id.as_ref().map(|t| t.to_vec()).unwrap_or_default()
	}

	/// Rejects configurations this implementation cannot run, with the reason.
	pub fn validate(&self) -> anyhow::Result<()> {
		anyhow::ensure!(
			matches!(self.model_type.as_str(), "llama" | "mistral" | "qwen2"),
			"model_type {:?} is not a Llama-family model (llama, mistral, qwen2)",
			self.model_type
		);
		anyhow::ensure!(self.num_attention_heads > 0 && self.kv_heads() > 0, "no attention heads");
		anyhow::ensure!(
			self.num_attention_heads % self.kv_heads() == 0,
			"num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
			self.num_attention_heads,
			self.kv_heads()
		);
		anyhow::ensure!(self.head_dim() % 2 == 0, "head_dim must be even for rotary embeddings");
		if let Some(scaling) = self.rope_scaling.as_ref().filter(|v| !v.is_null()) {
			let kind = scaling.get("rope_type").or_else(|| scaling.get("type")).and_then(|t| t.as_str()).unwrap_or("?");
			anyhow::ensure!(kind == "default", "rope_scaling {kind:?} is not supported by this worker (its logits would be wrong)");
		}
		// Qwen2 declares a window but uses it only with `use_sliding_window`; Mistral uses it when
		// set. A window at least the context length never applies.
		let window = match self.model_type.as_str() {
			"qwen2" if self.use_sliding_window != Some(true) => None,
			_ => self.sliding_window,
		};
		if let Some(w) = window {
			anyhow::ensure!(
				w >= self.max_position_embeddings,
				"sliding_window {w} < max_position_embeddings {}: sliding-window attention is not supported by this worker",
				self.max_position_embeddings
			);
		}
		Ok(())
	}

	/// The shape (out, in) of a projection by its module name, for checking adapters.
	pub fn projection_shape(&self, module: &str) -> Option<(usize, usize)> {
		let h = self.hidden_size;
		let q = self.num_attention_heads * self.head_dim();
		let kv = self.kv_heads() * self.head_dim();
		let i = self.intermediate_size;
		Some(match module {
			"q_proj" => (q, h),
			"k_proj" | "v_proj" => (kv, h),
			"o_proj" => (h, q),
			"gate_proj" | "up_proj" => (i, h),
			"down_proj" => (h, i),
			_ => return None,
		})
	}
}

/// The seven projections a LoRA adapter may target, in the order the model stores them.
pub const PROJECTIONS: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/// Index of a projection name in [`PROJECTIONS`].
pub fn projection_index(name: &str) -> Option<usize> {
	PROJECTIONS.iter().position(|p| *p == name)
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn parses_llama_qwen_and_mistral_shapes() {
		let llama: LlamaConfig = serde_json::from_str(
			r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":64,"intermediate_size":128,
			"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,
			"rms_norm_eps":1e-5,"bos_token_id":1,"eos_token_id":[2,3]}"#,
		)
		.unwrap();
		llama.validate().unwrap();
		assert_eq!(llama.kv_heads(), 2);
		assert_eq!(llama.head_dim(), 16);
		assert!(!llama.qkv_bias());
		assert_eq!(llama.eos_ids(), vec![2, 3]);
		assert_eq!(llama.projection_shape("k_proj"), Some((32, 64)));
		assert_eq!(llama.projection_shape("down_proj"), Some((64, 128)));

		let qwen: LlamaConfig = serde_json::from_str(
			r#"{"model_type":"qwen2","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
			"num_attention_heads":4,"vocab_size":100,"tie_word_embeddings":true,"eos_token_id":5}"#,
		)
		.unwrap();
		qwen.validate().unwrap();
		assert!(qwen.qkv_bias());
		assert_eq!(qwen.kv_heads(), 4);

		let gpt: LlamaConfig = serde_json::from_str(
			r#"{"model_type":"gpt2","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
			"num_attention_heads":4,"vocab_size":100}"#,
		)
		.unwrap();
		assert!(gpt.validate().unwrap_err().to_string().contains("gpt2"));
	}

	/// Configs whose attention this worker does not implement are refused at load instead of
	/// served with wrong logits; their "off" forms load.
	#[test]
	fn rope_scaling_and_sliding_windows_are_refused_not_ignored() {
		let with = |model_type: &str, extra: &str| -> anyhow::Result<()> {
			let json = format!(
				r#"{{"model_type":"{model_type}","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
				"num_attention_heads":4,"vocab_size":100,"max_position_embeddings":4096{extra}}}"#
			);
			serde_json::from_str::<LlamaConfig>(&json)?.validate()
		};
		let llama31 = r#","rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192,"rope_type":"llama3"}"#;
		assert!(with("llama", llama31).unwrap_err().to_string().contains("llama3"));
		assert!(with("llama", r#","rope_scaling":{"type":"linear","factor":2.0}"#).is_err());
		assert!(with("llama", r#","rope_scaling":null"#).is_ok());
		assert!(with("llama", r#","rope_scaling":{"rope_type":"default"}"#).is_ok());
		assert!(with("mistral", r#","sliding_window":4096"#).is_ok(), "a window as long as the context never applies");
		assert!(with("mistral", r#","sliding_window":null"#).is_ok());
		assert!(with("mistral", r#","sliding_window":1024"#).unwrap_err().to_string().contains("sliding"));
		assert!(with("qwen2", r#","sliding_window":1024,"use_sliding_window":false"#).is_ok(), "Qwen2 declares it off");
		assert!(with("qwen2", r#","sliding_window":1024,"use_sliding_window":true"#).is_err());
	}
}

/// `suppress_tokens` of a model folder's `generation_config.json` (Hugging Face's list of ids a
/// model must never generate); empty when the file or the field is absent.
pub fn suppress_tokens(dir: &std::path::Path) -> anyhow::Result<Vec<u32>> {
	let path = dir.join("generation_config.json");
	if !path.exists() {
		return Ok(Vec::new());
	}
	#[derive(Deserialize)]
	struct GenerationConfig {
		#[serde(default)]
		suppress_tokens: Option<Vec<u32>>,
	}
	let g: GenerationConfig = serde_json::from_slice(&std::fs::read(&path)?).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
	Ok(g.suppress_tokens.unwrap_or_default())
}
