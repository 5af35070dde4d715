//! Runtime-wide invariants, checked after every block in the runtime tests and by `try_state`
//! (try-runtime). Each OpenLedger pallet adds its own `do_try_state` call here.

use crate::{AccountId, Balance, Balances, Runtime};
use frame_support::traits::fungible::Inspect;

/// Checks every runtime-wide invariant: the balances below, then each OpenLedger pallet's own.
pub fn check() -> Result<(), &'static str> {
	check_balances()?;
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
