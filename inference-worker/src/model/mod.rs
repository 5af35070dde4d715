//! The base model (candle, Llama family) and LoRA adapters.
pub mod config;
pub mod gemm;
pub mod gemv;
pub mod paged_attn;
pub mod llama;
pub mod lora;
pub mod ops;
pub mod synthetic;
