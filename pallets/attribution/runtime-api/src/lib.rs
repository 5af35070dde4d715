//! Runtime API of the attribution pallet. The node's `attribution_*` JSON-RPC methods call it.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

use codec::{Codec, Decode, Encode};
pub use pallet_attribution::{ContributionRef, Dispute, DisputeKind, RequestId};
use openledger_primitives::{DatanetId, ModelId};

/// A span dispute as `disputes` returns it (the API's version 3 shape): no bond.
#[derive(Clone, Encode, Decode, scale_info::TypeInfo, PartialEq, Eq, Debug)]
pub struct DisputeV1<AccountId, BlockNumber> {
	pub challenger: AccountId,
	pub deadline: BlockNumber,
}

sp_api::decl_runtime_apis! {
	/// Receipts, earnings and usage. `Record` is the runtime's `pallet_attribution::ReceiptRecord`.
	#[api_version(4)]
	pub trait AttributionApi<AccountId, Balance, BlockNumber, Record>
	where
		AccountId: Codec,
		Balance: Codec,
		BlockNumber: Codec,
		Record: Codec,
	{
		/// A settled receipt by request id (until pruned).
		fn receipt(id: RequestId) -> Option<Record>;
		/// `(accrued, claimed, unclaimed, pending)` earnings of an account: vested, claimed,
		/// vested but unclaimed (with its settled staking rewards), and not yet vested.
		fn earnings(who: AccountId) -> (Balance, Balance, Balance, Balance);
		/// Earnings of one contribution.
		fn contribution_earnings(c: ContributionRef) -> Balance;
		/// Earnings of a Datanet (its contributors' and owner's).
		fn datanet_earnings(datanet: DatanetId) -> Balance;
		/// `(requests, tokens, revenue)` of a model.
		fn model_usage(model: ModelId) -> (u64, u64, Balance);
		/// `(held, pending withdrawal amount, unlock block)` of a payer's escrow.
		fn escrow(who: AccountId) -> (Balance, Option<(Balance, BlockNumber)>);
		/// The open span disputes of a worker's receipts (what it must answer, and by when),
		/// without their bonds: kept for nodes that predate `open_disputes` (since version 3).
		fn disputes(worker: AccountId) -> alloc::vec::Vec<(RequestId, DisputeKind, DisputeV1<AccountId, BlockNumber>)>;
		/// The open span disputes of a worker's receipts, with the bond each holds.
		#[api_version(4)]
		fn open_disputes(worker: AccountId) -> alloc::vec::Vec<(RequestId, DisputeKind, Dispute<AccountId, BlockNumber, Balance>)>;
	}
}
