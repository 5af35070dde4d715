//! Types stored by the staking pallet.

use crate::{BalanceOf, Config};
use codec::{Decode, Encode, MaxEncodedLen};
use frame_support::{BoundedVec, CloneNoBound, EqNoBound, PartialEqNoBound, RuntimeDebugNoBound};
use frame_system::pallet_prelude::BlockNumberFor;
use scale_info::TypeInfo;
use sp_runtime::{Perbill, RuntimeDebug};

pub use openledger_primitives::ModelId;

/// The sr25519 public key a worker signs attribution receipts with (not its stash key).
pub type SigningKey = [u8; 32];

/// Whether a worker may serve.
#[derive(Clone, Copy, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
pub enum WorkerStatus {
	/// Serving (eligible while its self-bond is at least the minimum).
	Active,
	/// Unbonded below the minimum on purpose; can bond again.
	Idle,
	/// Slashed: never eligible again; it may only unbond and leave.
	Slashed,
}

/// A worker as stored, keyed by its stash account.
#[derive(CloneNoBound, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEqNoBound, EqNoBound, RuntimeDebugNoBound)]
#[scale_info(skip_type_params(T))]
#[codec(mel_bound())]
pub struct WorkerInfo<T: Config> {
	/// Key that signs receipts.
	pub signing_key: SigningKey,
	/// Public endpoint (URL) of the worker's API.
	pub endpoint: BoundedVec<u8, T::MaxEndpointLen>,
	/// Models it serves.
	pub models: BoundedVec<ModelId, T::MaxModelsPerWorker>,
	/// Its own active stake.
	pub self_bond: BalanceOf<T>,
	/// Sum of active delegations to it.
	pub delegated: BalanceOf<T>,
	/// Number of accounts that delegate to it or have unbonding stake bonded to it (each holds
	/// a slot of `MaxDelegators` until that stake is withdrawn).
	pub delegators: u32,
	/// Its cut of rewards before delegators share the rest.
	pub commission: Perbill,
	/// A higher commission and the block it applies from.
	pub pending_commission: Option<(Perbill, BlockNumberFor<T>)>,
	pub status: WorkerStatus,
	pub registered_at: BlockNumberFor<T>,
}

/// Stake on its way out: still held (and slashable) until `unlock_at`.
#[derive(CloneNoBound, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEqNoBound, EqNoBound, RuntimeDebugNoBound)]
#[scale_info(skip_type_params(T))]
#[codec(mel_bound())]
pub struct UnbondChunk<T: Config> {
	/// The worker the stake was bonded to (the owner itself for a self-bond).
	pub worker: T::AccountId,
	pub amount: BalanceOf<T>,
	pub unlock_at: BlockNumberFor<T>,
	/// The block it started unbonding: from then on it backs no new receipt, so a slash for a
	/// receipt settled later does not touch it.
	pub since: BlockNumberFor<T>,
}

impl<T: Config> WorkerInfo<T> {
	/// The commission that applies at block `now`.
	pub fn commission_at(&self, now: BlockNumberFor<T>) -> Perbill {
		match self.pending_commission {
			Some((c, at)) if at <= now => c,
			_ => self.commission,
		}
	}

	/// Makes a scheduled commission current once its block has come.
	pub fn apply_due_commission(&mut self, now: BlockNumberFor<T>) {
		if let Some((c, at)) = self.pending_commission {
			if at <= now {
				self.commission = c;
				self.pending_commission = None;
			}
		}
	}
}
