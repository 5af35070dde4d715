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
}
