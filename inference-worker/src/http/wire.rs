//! OpenAI wire types (only what crosses HTTP) and their validation into engine requests.

use crate::engine::sampling::SamplingParams;
use crate::engine::FinishReason;
use crate::tokenizer::ChatMessage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A string or a list of strings (`prompt`, `stop`).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
	One(String),
	Many(Vec<String>),
}

impl StringOrList {
	pub fn into_vec(self) -> Vec<String> {
		match self {
			StringOrList::One(s) => vec![s],
			StringOrList::Many(v) => v,
		}
	}
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct StreamOptions {
	#[serde(default)]
	pub include_usage: bool,
}

/// Fields shared by both endpoints.
#[derive(Clone, Debug, Deserialize)]
pub struct CommonParams {
	pub model: String,
	#[serde(default)]
	pub max_tokens: Option<usize>,
	#[serde(default)]
	pub max_completion_tokens: Option<usize>,
	#[serde(default)]
	pub temperature: Option<f32>,
	#[serde(default)]
	pub top_p: Option<f32>,
	/// Not in OpenAI's schema; accepted as an extension (vLLM, TGI do the same).
	#[serde(default)]
	pub top_k: Option<usize>,
	#[serde(default)]
	pub seed: Option<u64>,
	#[serde(default)]
	pub stop: Option<StringOrList>,
	#[serde(default)]
	pub stream: bool,
	#[serde(default)]
	pub stream_options: Option<StreamOptions>,
	#[serde(default)]
	pub n: Option<usize>,
	#[serde(default)]
	pub user: Option<String>,
	/// How the answer is attributed (an OpenLedger extension): `span` (matches in the
	/// lineage's corpus), `influence` (the adapter's training examples, DataInf), `retrieval`
	/// (passages of the lineage's corpus retrieved into the prompt, credited and cited) or
	/// `auto` (influence for adapters small enough, spans otherwise; the default).
	#[serde(default)]
	pub attribution: Option<String>,
	/// Options of `attribution: "retrieval"` (an OpenLedger extension).
	#[serde(default)]
	pub retrieval: Option<RetrievalOptions>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrievalOptions {
	/// Passages put into the prompt: 1 to 8 (default 3).
	#[serde(default)]
	pub top_k: Option<usize>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CompletionRequest {
	pub prompt: StringOrList,
	#[serde(flatten)]
	pub common: CommonParams,
	/// Every other field: refused unless null, a default value or harmless (see [`check_extra`]).
	#[serde(flatten)]
	pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ChatRequest {
	pub messages: Vec<ChatMessageIn>,
	#[serde(flatten)]
	pub common: CommonParams,
	#[serde(flatten)]
	pub extra: BTreeMap<String, serde_json::Value>,
}

/// Fields of OpenAI's API this worker does not implement: sent with their "off" value
/// ([`is_off`]) they are accepted, any other value is refused rather than ignored, so a client
/// never believes it got what it asked for.
const UNSUPPORTED: &[&str] = &[
	"logprobs",
	"top_logprobs",
	"presence_penalty",
	"frequency_penalty",
	"repetition_penalty",
	"logit_bias",
	"echo",
	"best_of",
	"suffix",
	"tools",
	"tool_choice",
	"parallel_tool_calls",
	"functions",
	"function_call",
	"response_format",
	"modalities",
	"audio",
	"prediction",
	"reasoning_effort",
	"web_search_options",
];

/// Fields that change nothing here and are accepted as sent.
const IGNORED: &[&str] = &["metadata", "store", "service_tier"];

/// Whether `v` is the "off" value of an unsupported field: false, 0, 1 for `best_of`, empty.
fn is_off(name: &str, v: &serde_json::Value) -> bool {
	use serde_json::Value::*;
	match v {
		Null | Bool(false) => true,
		Number(n) => n.as_f64() == Some(0.0) || (name == "best_of" && n.as_f64() == Some(1.0)),
		String(s) => s.is_empty() || (name == "tool_choice" && s == "none"),
		Array(a) => a.is_empty(),
		Object(o) => o.is_empty() || (name == "response_format" && o.get("type").and_then(|t| t.as_str()) == Some("text")),
		_ => false,
	}
}

/// Refuses fields that would be silently ignored: OpenAI's fields this worker does not
/// implement (unless sent with their "off" value) and fields no API here knows.
pub fn check_extra(extra: &BTreeMap<String, serde_json::Value>) -> Result<(), ApiError> {
	for (name, value) in extra {
		if IGNORED.contains(&name.as_str()) {
			continue;
		}
		if let Some(known) = UNSUPPORTED.iter().find(|n| **n == name.as_str()) {
			if is_off(name, value) {
				continue;
			}
			return Err(ApiError {
				code: Some("unsupported_parameter"),
				..ApiError::invalid(format!("`{name}` is not supported by this worker; leave it out"), known)
			});
		}
		let shown: String = name.chars().take(64).collect();
		return Err(ApiError {
			code: Some("unknown_parameter"),
			param: None,
			..ApiError::invalid(format!("unrecognized request argument supplied: {shown}"), "body")
		});
	}
	Ok(())
}

/// Chat content is a string or a list of parts (`{"type": "text", "text": ...}`).
#[derive(Clone, Debug, Deserialize)]
pub struct ChatMessageIn {
	pub role: String,
	#[serde(default)]
	pub content: Option<serde_json::Value>,
}

/// A request error, in OpenAI's terms.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
	pub status: u16,
	pub kind: &'static str,
	pub message: String,
	pub param: Option<&'static str>,
	pub code: Option<&'static str>,
}

impl ApiError {
	pub fn invalid(message: impl Into<String>, param: &'static str) -> Self {
		Self { status: 400, kind: "invalid_request_error", message: message.into(), param: Some(param), code: None }
	}
	pub fn body(&self) -> serde_json::Value {
		serde_json::json!({ "error": { "message": self.message, "type": self.kind, "param": self.param, "code": self.code } })
	}
}

pub const MAX_STOP: usize = 4;
/// Bytes of one stop sequence.
pub const MAX_STOP_BYTES: usize = 256;
/// Bytes of a request body.
pub const MAX_BODY_BYTES: usize = 2 << 20;
/// `top_k` beyond the vocabulary is the vocabulary; this bounds the number itself.
pub const MAX_TOP_K: usize = 1 << 20;

impl CommonParams {
	/// Validates sampling fields into engine parameters; `prompt_len` and `max_len` bound
	/// `max_tokens`.
	pub fn sampling(&self, prompt_len: usize, max_len: usize) -> Result<SamplingParams, ApiError> {
		if let Some(n) = self.n {
			if n != 1 {
				return Err(ApiError::invalid("only n = 1 is supported", "n"));
			}
		}
		let temperature = self.temperature.unwrap_or(1.0);
		if !(0.0..=2.0).contains(&temperature) {
			return Err(ApiError::invalid("temperature must be between 0 and 2", "temperature"));
		}
		let top_p = self.top_p.unwrap_or(1.0);
		if !(top_p > 0.0 && top_p <= 1.0) {
			return Err(ApiError::invalid("top_p must be in (0, 1]", "top_p"));
		}
		let stop = self.stop.clone().map(StringOrList::into_vec).unwrap_or_default();
		if stop.len() > MAX_STOP {
			return Err(ApiError::invalid(format!("at most {MAX_STOP} stop sequences"), "stop"));
		}
		if stop.iter().any(|s| s.len() > MAX_STOP_BYTES) {
			return Err(ApiError::invalid(format!("a stop sequence is at most {MAX_STOP_BYTES} bytes"), "stop"));
		}
		if self.top_k.is_some_and(|k| k > MAX_TOP_K) {
			return Err(ApiError::invalid(format!("top_k is at most {MAX_TOP_K}"), "top_k"));
		}
		if prompt_len == 0 {
			return Err(ApiError::invalid("the prompt is empty", "prompt"));
		}
		let room = max_len.saturating_sub(prompt_len);
		let max_tokens = self.max_completion_tokens.or(self.max_tokens);
		if max_tokens == Some(0) {
			return Err(ApiError::invalid("max_tokens must be at least 1", "max_tokens"));
		}
		// Saturating: a client's `max_tokens` may be any u64.
		let requested = prompt_len.saturating_add(max_tokens.unwrap_or(1));
		if requested > max_len {
			return Err(ApiError {
				code: Some("context_length_exceeded"),
				..ApiError::invalid(
					format!(
						"This model's maximum context length is {max_len} tokens. However, you requested {} tokens ({prompt_len} in the prompt, {} for the completion).",
						requested,
						max_tokens.unwrap_or(1)
					),
					"messages",
				)
			});
		}
		Ok(SamplingParams {
			temperature,
			top_p,
			top_k: self.top_k.unwrap_or(0),
			seed: self.seed,
			max_tokens: max_tokens.unwrap_or(room.min(256)),
			stop,
		})
	}
}

impl ChatMessageIn {
	pub fn to_message(&self) -> Result<ChatMessage, ApiError> {
		if !matches!(self.role.as_str(), "system" | "developer" | "user" | "assistant" | "tool") {
			return Err(ApiError::invalid(format!("unknown role {:?}", self.role), "messages"));
		}
		let content = match &self.content {
			None | Some(serde_json::Value::Null) => String::new(),
			Some(serde_json::Value::String(s)) => s.clone(),
			Some(serde_json::Value::Array(parts)) => {
				let mut s = String::new();
				for p in parts {
					match (p.get("type").and_then(|t| t.as_str()), p.get("text").and_then(|t| t.as_str())) {
						(Some("text"), Some(t)) => s.push_str(t),
						_ => return Err(ApiError::invalid("only text content parts are supported", "messages")),
					}
				}
				s
			},
			Some(_) => return Err(ApiError::invalid("content must be a string or a list of parts", "messages")),
		};
		let role = if self.role == "developer" { "system".to_string() } else { self.role.clone() };
		Ok(ChatMessage { role, content })
	}
}

#[derive(Clone, Debug, Serialize)]
pub struct Usage {
	pub prompt_tokens: usize,
	pub completion_tokens: usize,
	pub total_tokens: usize,
}

impl Usage {
	pub fn new(prompt: usize, completion: usize) -> Self {
		Self { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
	}
}

#[derive(Clone, Debug, Serialize)]
pub struct CompletionChoice {
	pub index: usize,
	pub text: String,
	pub logprobs: Option<()>,
	pub finish_reason: Option<FinishReason>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CompletionResponse {
	pub id: String,
	pub object: &'static str,
	pub created: u64,
	pub model: String,
	pub choices: Vec<CompletionChoice>,
	#[serde(skip_serializing_if = "Option::is_none")]
	pub usage: Option<Usage>,
	/// Extension: which contributions the answer's spans come from (when the worker has an index).
	#[serde(skip_serializing_if = "Option::is_none")]
	pub attribution: Option<serde_json::Value>,
	/// Extension: the receipt of a paid request (request id, fee, status).
	#[serde(skip_serializing_if = "Option::is_none")]
	pub receipt: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AssistantMessage {
	pub role: &'static str,
	pub content: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChatChoice {
	pub index: usize,
	pub message: AssistantMessage,
	pub logprobs: Option<()>,
	pub finish_reason: Option<FinishReason>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChatResponse {
	pub id: String,
	pub object: &'static str,
	pub created: u64,
	pub model: String,
	pub choices: Vec<ChatChoice>,
	pub usage: Usage,
	#[serde(skip_serializing_if = "Option::is_none")]
	pub attribution: Option<serde_json::Value>,
	#[serde(skip_serializing_if = "Option::is_none")]
	pub receipt: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Delta {
	#[serde(skip_serializing_if = "Option::is_none")]
	pub role: Option<&'static str>,
	#[serde(skip_serializing_if = "Option::is_none")]
	pub content: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChatChunkChoice {
	pub index: usize,
	pub delta: Delta,
	pub logprobs: Option<()>,
	pub finish_reason: Option<FinishReason>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChatChunk {
	pub id: String,
	pub object: &'static str,
	pub created: u64,
	pub model: String,
	pub choices: Vec<ChatChunkChoice>,
	#[serde(skip_serializing_if = "Option::is_none")]
	pub usage: Option<Usage>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelCard {
	pub id: String,
	pub object: &'static str,
	pub created: u64,
	pub owned_by: String,
	/// Extension: the base model this adapter applies to (absent for the base).
	#[serde(skip_serializing_if = "Option::is_none")]
	pub parent: Option<String>,
	/// Extension, on a worker that bills on chain: what a voucher for this name must say.
	#[serde(skip_serializing_if = "Option::is_none")]
	pub openledger: Option<OnChainModel>,
}

/// How a served model name is billed on chain: the voucher's `worker`, `model` and
/// `model_version`, and the `terms` it must name (all checked against the chain by a careful
/// payer: the registry is the authority, this is a convenience).
#[derive(Clone, Debug, Serialize)]
pub struct OnChainModel {
	/// The worker's account (SS58).
	pub worker: String,
	pub model: u32,
	pub version: u32,
	pub terms: String,
	/// Price as registered: smallest units, decimal strings.
	pub price_per_request: String,
	pub price_per_1k_tokens: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelList {
	pub object: &'static str,
	pub data: Vec<ModelCard>,
}
