//! `attribution_*` JSON-RPC methods over `pallet_attribution_runtime_api::AttributionApi`.
//!
//! Amounts are decimal strings, shares parts per billion, hashes `0x` hex, accounts SS58.

use std::sync::Arc;

use jsonrpsee::{core::RpcResult, proc_macros::rpc, types::ErrorObjectOwned};
use openledger_runtime::{opaque::Block, AccountId, Balance, BlockNumber};
use pallet_attribution::{ContributionRef, ReceiptRecord, RequestId};
use pallet_attribution_runtime_api::AttributionApi;
use serde::{Deserialize, Serialize};
use sp_api::{ApiExt, ProvideRuntimeApi};
use sp_blockchain::HeaderBackend;
use sp_core::crypto::Ss58Codec;

use super::datanets::h256;

type Hash = <Block as sp_runtime::traits::Block>::Hash;
type Runtime = openledger_runtime::Runtime;
type Record = ReceiptRecord<Runtime>;

/// Error codes of the `attribution_*` methods.
pub mod error {
	/// A runtime API call failed.
	pub const RUNTIME_ERROR: i32 = 9300;
	/// No such receipt (never settled, or pruned).
	pub const NOT_FOUND: i32 = 9301;
	/// A bad parameter.
	pub const BAD_PARAM: i32 = 9302;
}

/// An attributed contribution of a receipt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ShareJson {
	pub datanet: u32,
	pub version: u32,
	pub index: u32,
	pub share_perbill: u32,
}

/// A pending payout of a receipt (it vests when the receipt is pruned after its challenge
/// window).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PayoutJson {
	pub account: String,
	pub amount: String,
	/// `owner`, `worker`, `treasury`, `contribution` or `datanet`.
	pub kind: String,
	/// The contribution `(datanet, version, index)` of a `contribution` payout.
	pub contribution: Option<(u32, u32, u32)>,
	/// The Datanet of a `contribution` or `datanet` payout.
	pub datanet: Option<u32>,
}

/// A settled receipt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptJson {
	pub request_id: String,
	pub payer: String,
	pub worker: String,
	pub model: u32,
	pub model_version: u32,
	pub fee: String,
	pub prompt_tokens: u32,
	pub completion_tokens: u32,
	/// Bytes of the output.
	pub output_len: u32,
	/// Content root of the output (byte ranges of it are proven against it).
	pub output_root: String,
	/// Root of the span claims, and their number.
	pub claims_root: String,
	pub claims: u32,
	/// `spanMatch`, `influence` or `retrieval`.
	pub method: String,
	pub attribution: Vec<ShareJson>,
	pub payouts: Vec<PayoutJson>,
	pub settled_at: BlockNumber,
	pub challenger: Option<String>,
	/// `valid` or `false` once judged.
	pub verdict: Option<String>,
	/// Its open span disputes.
	pub disputes: Vec<DisputeJson>,
}

/// An open span dispute of a receipt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DisputeJson {
	pub request_id: String,
	/// `share` (the contribution's share is disputed) or `omission` (output bytes
	/// `[outputStart, outputStart + len)` were proven to occur in the uncredited contribution).
	pub kind: String,
	/// `[datanet, version, index]`.
	pub contribution: (u32, u32, u32),
	pub output_start: Option<u32>,
	pub len: Option<u32>,
	/// Who holds the bond.
	pub challenger: String,
	/// Last block at which it can be answered.
	pub deadline: BlockNumber,
	/// The bond it holds; `null` on runtimes before spec 107, where every dispute held the
	/// constant `ChallengeBond`.
	pub bond: Option<String>,
}

fn dispute_json(id: &RequestId, k: &pallet_attribution::DisputeKind, d: &pallet_attribution::Dispute<AccountId, BlockNumber, Option<Balance>>) -> DisputeJson {
	use pallet_attribution::DisputeKind;
	let (kind, c, output_start, len) = match *k {
		DisputeKind::Share(c) => ("share", c, None, None),
		DisputeKind::Omission { contribution, output_start, len } => ("omission", contribution, Some(output_start), Some(len)),
	};
	DisputeJson {
		request_id: h256(id),
		kind: kind.into(),
		contribution: (c.datanet, c.version, c.index),
		output_start,
		len,
		challenger: d.challenger.to_ss58check(),
		deadline: d.deadline,
		bond: d.bond.map(|b| b.to_string()),
	}
}

/// Earnings of an account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EarningsJson {
	/// Ever vested.
	pub accrued: String,
	/// Ever claimed.
	pub claimed: String,
	/// Vested, not claimed yet (claimable now).
	pub unclaimed: String,
	/// Payouts of receipts still in their challenge window (claimable once they vest).
	pub pending: String,
}

/// Usage and revenue of a model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UsageJson {
	pub requests: u64,
	pub tokens: u64,
	pub revenue: String,
}

/// A payer's escrow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EscrowJson {
	pub held: String,
	pub pending_withdrawal: Option<String>,
	pub unlock_at: Option<BlockNumber>,
}

/// Attribution queries.
#[rpc(client, server)]
pub trait AttributionRpc {
	/// A settled receipt by request id (`0x` + 32 bytes).
	#[method(name = "attribution_getReceipt")]
	fn get_receipt(&self, request_id: RequestId, at: Option<Hash>) -> RpcResult<ReceiptJson>;
	/// Earnings of an account.
	#[method(name = "attribution_earnings")]
	fn earnings(&self, account: String, at: Option<Hash>) -> RpcResult<EarningsJson>;
	/// Earnings of a contribution `(datanet, version, index)`.
	#[method(name = "attribution_contributionEarnings")]
	fn contribution_earnings(&self, datanet: u32, version: u32, index: u32, at: Option<Hash>) -> RpcResult<String>;
	/// Earnings of a Datanet.
	#[method(name = "attribution_datanetEarnings")]
	fn datanet_earnings(&self, datanet: u32, at: Option<Hash>) -> RpcResult<String>;
	/// Usage and revenue of a model.
	#[method(name = "attribution_modelUsage")]
	fn model_usage(&self, model: u32, at: Option<Hash>) -> RpcResult<UsageJson>;
	/// A payer's escrow.
	#[method(name = "attribution_escrow")]
	fn escrow(&self, account: String, at: Option<Hash>) -> RpcResult<EscrowJson>;
	/// The open span disputes of a worker's receipts.
	#[method(name = "attribution_disputes")]
	fn disputes(&self, worker: String, at: Option<Hash>) -> RpcResult<Vec<DisputeJson>>;
}

/// Implements [`AttributionRpcServer`] over a client.
pub struct Attribution<C> {
	client: Arc<C>,
}

impl<C> Attribution<C> {
	/// Over `client`.
	pub fn new(client: Arc<C>) -> Self {
		Self { client }
	}
}

fn runtime_error(e: impl std::fmt::Display) -> ErrorObjectOwned {
	ErrorObjectOwned::owned(error::RUNTIME_ERROR, "runtime API call failed", Some(e.to_string()))
}

fn account(s: &str) -> RpcResult<AccountId> {
	AccountId::from_ss58check(s)
		.map_err(|e| ErrorObjectOwned::owned(error::BAD_PARAM, format!("bad account {s}: {e:?}"), None::<()>))
}

impl<C> Attribution<C>
where
	C: HeaderBackend<Block>,
{
	fn at(&self, at: Option<Hash>) -> Hash {
		at.unwrap_or_else(|| self.client.info().best_hash)
	}
}

/// Open disputes as the runtime at a block lists them, with their bonds where it records them.
type OpenDispute = (RequestId, pallet_attribution::DisputeKind, pallet_attribution::Dispute<AccountId, BlockNumber, Option<Balance>>);

impl<C> Attribution<C>
where
	C: ProvideRuntimeApi<Block> + HeaderBackend<Block> + Send + Sync + 'static,
	C::Api: AttributionApi<Block, AccountId, Balance, BlockNumber, Record>,
{
	/// The open span disputes of `worker`'s receipts at `at`: through `open_disputes` on runtimes
	/// with version 4 of the API (spec 107 on), through `disputes` (no bonds) before.
	fn open_disputes(&self, at: Hash, worker: AccountId) -> RpcResult<Vec<OpenDispute>> {
		let api = self.client.runtime_api();
		let version = api
			.api_version::<dyn AttributionApi<Block, AccountId, Balance, BlockNumber, Record>>(at)
			.map_err(runtime_error)?
			.ok_or_else(|| runtime_error("the runtime has no attribution API"))?;
		Ok(if version >= 4 {
			let list = api.open_disputes(at, worker).map_err(runtime_error)?;
			list.into_iter()
				.map(|(id, k, d)| (id, k, pallet_attribution::Dispute { challenger: d.challenger, deadline: d.deadline, bond: Some(d.bond) }))
				.collect()
		} else {
			let list = api.disputes(at, worker).map_err(runtime_error)?;
			list.into_iter()
				.map(|(id, k, d)| (id, k, pallet_attribution::Dispute { challenger: d.challenger, deadline: d.deadline, bond: None }))
				.collect()
		})
	}
}

impl<C> AttributionRpcServer for Attribution<C>
where
	C: ProvideRuntimeApi<Block> + HeaderBackend<Block> + Send + Sync + 'static,
	C::Api: AttributionApi<Block, AccountId, Balance, BlockNumber, Record>,
{
	fn get_receipt(&self, request_id: RequestId, at: Option<Hash>) -> RpcResult<ReceiptJson> {
		let r = self.client.runtime_api().receipt(self.at(at), request_id).map_err(runtime_error)?;
		let r = r.ok_or_else(|| ErrorObjectOwned::owned(error::NOT_FOUND, format!("no receipt {request_id:?}"), None::<()>))?;
		let disputes = if r.disputes > 0 {
			self.open_disputes(self.at(at), r.worker.clone())?
				.iter()
				.filter(|(id, _, _)| *id == request_id)
				.map(|(id, c, d)| dispute_json(id, c, d))
				.collect()
		} else {
			Vec::new()
		};
		Ok(ReceiptJson {
			request_id: h256(&request_id),
			payer: r.payer.to_ss58check(),
			worker: r.worker.to_ss58check(),
			model: r.model,
			model_version: r.model_version,
			fee: r.fee.to_string(),
			prompt_tokens: r.prompt_tokens,
			completion_tokens: r.completion_tokens,
			output_len: r.output_len,
			output_root: h256(&r.output_root),
			claims_root: h256(&r.claims_root),
			claims: r.claims,
			method: match r.method {
				openledger_primitives::receipt::AttributionMethod::SpanMatch => "spanMatch",
				openledger_primitives::receipt::AttributionMethod::Influence => "influence",
				openledger_primitives::receipt::AttributionMethod::Retrieval => "retrieval",
			}
			.into(),
			attribution: r
				.attribution
				.iter()
				.map(|s| ShareJson {
					datanet: s.contribution.datanet,
					version: s.contribution.version,
					index: s.contribution.index,
					share_perbill: s.share.deconstruct(),
				})
				.collect(),
			payouts: r
				.payouts
				.iter()
				.map(|p| {
					use pallet_attribution::PayoutKind;
					let (kind, contribution, datanet) = match p.kind {
						PayoutKind::Owner => ("owner", None, None),
						PayoutKind::Worker => ("worker", None, None),
						PayoutKind::Treasury => ("treasury", None, None),
						PayoutKind::Contribution(c) => ("contribution", Some((c.datanet, c.version, c.index)), Some(c.datanet)),
						PayoutKind::Datanet(d) => ("datanet", None, Some(d)),
					};
					PayoutJson { account: p.who.to_ss58check(), amount: p.amount.to_string(), kind: kind.into(), contribution, datanet }
				})
				.collect(),
			settled_at: r.settled_at,
			challenger: r.challenger.map(|c| c.to_ss58check()),
			verdict: r.verdict.map(|v| match v {
				pallet_attribution::Verdict::Valid => "valid".into(),
				pallet_attribution::Verdict::False => "false".into(),
			}),
			disputes,
		})
	}

	fn earnings(&self, who: String, at: Option<Hash>) -> RpcResult<EarningsJson> {
		let (accrued, claimed, unclaimed, pending) =
			self.client.runtime_api().earnings(self.at(at), account(&who)?).map_err(runtime_error)?;
		Ok(EarningsJson {
			accrued: accrued.to_string(),
			claimed: claimed.to_string(),
			unclaimed: unclaimed.to_string(),
			pending: pending.to_string(),
		})
	}

	fn contribution_earnings(&self, datanet: u32, version: u32, index: u32, at: Option<Hash>) -> RpcResult<String> {
		let c = ContributionRef { datanet, version, index };
		let e = self.client.runtime_api().contribution_earnings(self.at(at), c).map_err(runtime_error)?;
		Ok(e.to_string())
	}

	fn datanet_earnings(&self, datanet: u32, at: Option<Hash>) -> RpcResult<String> {
		let e = self.client.runtime_api().datanet_earnings(self.at(at), datanet).map_err(runtime_error)?;
		Ok(e.to_string())
	}

	fn model_usage(&self, model: u32, at: Option<Hash>) -> RpcResult<UsageJson> {
		let (requests, tokens, revenue) =
			self.client.runtime_api().model_usage(self.at(at), model).map_err(runtime_error)?;
		Ok(UsageJson { requests, tokens, revenue: revenue.to_string() })
	}

	fn escrow(&self, who: String, at: Option<Hash>) -> RpcResult<EscrowJson> {
		let (held, pending) = self.client.runtime_api().escrow(self.at(at), account(&who)?).map_err(runtime_error)?;
		Ok(EscrowJson {
			held: held.to_string(),
			pending_withdrawal: pending.map(|(a, _)| a.to_string()),
			unlock_at: pending.map(|(_, b)| b),
		})
	}

	fn disputes(&self, worker: String, at: Option<Hash>) -> RpcResult<Vec<DisputeJson>> {
		let list = self.open_disputes(self.at(at), account(&worker)?)?;
		Ok(list.iter().map(|(id, c, d)| dispute_json(id, c, d)).collect())
	}
}
