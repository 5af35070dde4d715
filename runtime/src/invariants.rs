//! Runtime-wide invariants, checked after every block in the runtime tests and by `try_state`
//! (try-runtime). Each OpenLedger pallet adds its own `do_try_state` call here.

use crate::{AccountId, Balance, Balances, Runtime};
use frame_support::traits::fungible::Inspect;

/// Checks every runtime-wide invariant: the balances below, then each OpenLedger pallet's own.
pub fn check() -> Result<(), &'static str> {
	check_balances()?;
	check_reserves()?;
	check_challenge_bonds()?;
	pallet_datanets::Pallet::<Runtime>::do_try_state().map_err(|e| match e {
		sp_runtime::DispatchError::Other(msg) => msg,
		_ => "datanets invariant violated",
	})?;
	pallet_models::Pallet::<Runtime>::do_try_state().map_err(|e| match e {
		sp_runtime::DispatchError::Other(msg) => msg,
		_ => "models invariant violated",
	})?;
	pallet_open_staking::Pallet::<Runtime>::do_try_state().map_err(|e| match e {
		sp_runtime::DispatchError::Other(msg) => msg,
		_ => "staking invariant violated",
	})?;
	pallet_attribution::Pallet::<Runtime>::do_try_state().map_err(|e| match e {
		sp_runtime::DispatchError::Other(msg) => msg,
		_ => "attribution invariant violated",
	})?;
	Ok(())
}

/// Checks that the OPEN on record adds up:
/// - the sum of every account's free and reserved (which includes held) balance equals the total
///   issuance;
/// - no account exists below the existential deposit.
pub fn check_balances() -> Result<(), &'static str> {
	let mut sum: Balance = 0;
	for (_, info) in frame_system::Account::<Runtime>::iter() {
		let data = info.data;
		let total = data.free.checked_add(data.reserved).ok_or("account balance overflows")?;
		if total != 0 && total < crate::EXISTENTIAL_DEPOSIT {
			return Err("an account exists below the existential deposit");
		}
		sum = sum.checked_add(total).ok_or("sum of balances overflows")?;
	}
	if sum != <Balances as Inspect<AccountId>>::total_issuance() {
		return Err("sum of account balances differs from total issuance");
	}
	Ok(())
}

/// Checks that the OPEN held as challenge bonds, over all accounts, is exactly the bonds of the
/// open challenges (the constant `ChallengeBond` each) and span disputes (the bond each records):
/// none is left on hold after its challenge or dispute closed. (The attribution pallet's own check
/// compares per challenger, but only for accounts with something open.)
pub fn check_challenge_bonds() -> Result<(), &'static str> {
	let reason = crate::RuntimeHoldReason::Attribution(pallet_attribution::HoldReason::ChallengeBond);
	let mut held: Balance = 0;
	for (_, holds) in pallet_balances::Holds::<Runtime>::iter() {
		for h in holds.iter().filter(|h| h.id == reason) {
			held = held.checked_add(h.amount).ok_or("challenge bonds overflow")?;
		}
	}
	let bond = <Runtime as pallet_attribution::Config>::ChallengeBond::get();
	let mut owed: Balance = 0;
	for _ in pallet_attribution::Receipts::<Runtime>::iter_values().filter(|r| r.challenger.is_some()) {
		owed = owed.checked_add(bond).ok_or("challenge bonds overflow")?;
	}
	for d in pallet_attribution::Disputes::<Runtime>::iter_values() {
		owed = owed.checked_add(d.bond).ok_or("challenge bonds overflow")?;
	}
	if held != owed {
		return Err("OPEN held as challenge bonds differs from the bonds of open challenges and disputes");
	}
	Ok(())
}

/// Checks that every OPEN reserved outside holds is a referendum deposit on record (submission or
/// decision deposit, not yet refunded or slashed), and that every such deposit is reserved from
/// its owner: for each account, `reserved − held = its referendum deposits`. (Preimage deposits
/// and every OpenLedger pallet's deposits are holds.)
pub fn check_reserves() -> Result<(), &'static str> {
	use alloc::collections::BTreeMap;
	use pallet_referenda::ReferendumInfo::*;
	let mut deposits: BTreeMap<AccountId, Balance> = BTreeMap::new();
	for (_, info) in pallet_referenda::ReferendumInfoFor::<Runtime>::iter() {
		let (submission, decision) = match info {
			Ongoing(status) => (Some(status.submission_deposit), status.decision_deposit),
			Approved(_, s, d) | Rejected(_, s, d) | Cancelled(_, s, d) | TimedOut(_, s, d) => (s, d),
			Killed(_) => (None, None),
		};
		for deposit in [submission, decision].into_iter().flatten() {
			let owed = deposits.entry(deposit.who).or_default();
			*owed = owed.checked_add(deposit.amount).ok_or("referendum deposits overflow")?;
		}
	}
	for (who, info) in frame_system::Account::<Runtime>::iter() {
		let held = pallet_balances::Holds::<Runtime>::get(&who)
			.iter()
			.try_fold(0 as Balance, |sum, h| sum.checked_add(h.amount))
			.ok_or("holds overflow")?;
		let reserved = info.data.reserved.checked_sub(held).ok_or("an account holds more than it has reserved")?;
		if reserved != deposits.remove(&who).unwrap_or(0) {
			return Err("reserved OPEN differs from the account's referendum deposits");
		}
	}
	if !deposits.is_empty() {
		return Err("a referendum deposit belongs to an account that does not exist");
	}
	Ok(())
}
