//! Benchmarks (v2). Worst cases: full unbonding queues; `slash` over `d` delegators, each with an
//! unbonding chunk bonded to the worker.

use super::*;
use alloc::vec;
use frame_benchmarking::v2::*;
use frame_support::{
	traits::{fungible::Mutate, EnsureOrigin, Get},
	BoundedVec,
};
use frame_system::RawOrigin;
use sp_runtime::{
	traits::{Bounded, One, Saturating, Zero},
	Perbill,
};

fn funded<T: Config>(name: &'static str, i: u32) -> T::AccountId {
	let who: T::AccountId = account(name, i, 0);
	let _ = T::Currency::set_balance(&who, BalanceOf::<T>::max_value() / 1_000u32.into());
	who
}

fn endpoint<T: Config>(b: u8) -> BoundedVec<u8, T::MaxEndpointLen> {
	BoundedVec::truncate_from(vec![b; T::MaxEndpointLen::get() as usize])
}

/// As many existing models as a worker may serve (each is looked up).
fn models<T: Config>() -> BoundedVec<ModelId, T::MaxModelsPerWorker> {
	let models = T::BenchmarkHelper::models(T::MaxModelsPerWorker::get());
	assert_eq!(models.len() as u32, T::MaxModelsPerWorker::get(), "the helper registers every model asked for");
	BoundedVec::truncate_from(models)
}

fn bond<T: Config>(who: &T::AccountId, key: u8) {
	Pallet::<T>::bond_worker(
		RawOrigin::Signed(who.clone()).into(),
		T::MinWorkerBond::get().saturating_mul(4u32.into()),
		[key; 32],
		endpoint::<T>(b'x'),
		BoundedVec::new(),
		Perbill::from_percent(5),
	)
	.expect("funded account bonds");
}

/// Gives `worker`'s pool a non-zero reward per stake, so that every stake change settles a
/// position (the costlier path).
fn with_rewards<T: Config>(worker: &T::AccountId) {
	Pallet::<T>::accrue_reward(worker, T::MinWorkerBond::get());
	assert!(RewardPerStake::<T>::get(worker) > 0);
}

fn delegation<T: Config>() -> BalanceOf<T> {
	T::MinDelegation::get().saturating_mul(2u32.into())
}

/// Fills `who`'s unbonding queue but one slot with small self-unbonds.
fn fill_chunks<T: Config>(who: &T::AccountId) {
	for _ in 0..T::MaxUnbondingChunks::get().saturating_sub(1) {
		Pallet::<T>::unbond(RawOrigin::Signed(who.clone()).into(), One::one()).expect("room to unbond");
	}
}

#[benchmarks]
mod benchmarks {
	use super::*;

	#[benchmark]
	fn bond_worker() {
		let who = funded::<T>("worker", 0);
		let amount = T::MinWorkerBond::get();
		let models = models::<T>();
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), amount, [1u8; 32], endpoint::<T>(b'x'), models, Perbill::from_percent(5));
		assert!(Workers::<T>::contains_key(&who));
	}

	#[benchmark]
	fn update_worker() {
		let who = funded::<T>("worker", 0);
		bond::<T>(&who, 1);
		let models = models::<T>();
		// A raise: scheduled (the costlier branch).
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), Some([2u8; 32]), Some(endpoint::<T>(b'y')), Some(models), Some(Perbill::from_percent(7)));
		assert_eq!(Workers::<T>::get(&who).map(|w| w.signing_key), Some([2u8; 32]));
	}

	#[benchmark]
	fn bond_extra() {
		let who = funded::<T>("worker", 0);
		bond::<T>(&who, 1);
		with_rewards::<T>(&who);
		#[extrinsic_call]
		_(RawOrigin::Signed(who), T::MinWorkerBond::get());
	}

	#[benchmark]
	fn unbond() {
		let who = funded::<T>("worker", 0);
		bond::<T>(&who, 1);
		with_rewards::<T>(&who);
		fill_chunks::<T>(&who);
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), One::one());
		assert_eq!(Unbonding::<T>::get(&who).len() as u32, T::MaxUnbondingChunks::get());
	}

	#[benchmark]
	fn delegate() {
		let w = funded::<T>("worker", 0);
		bond::<T>(&w, 1);
		with_rewards::<T>(&w);
		let d = funded::<T>("delegator", 0);
		#[extrinsic_call]
		_(RawOrigin::Signed(d.clone()), w.clone(), delegation::<T>());
		assert!(Delegations::<T>::contains_key(&w, &d));
	}

	#[benchmark]
	fn undelegate() {
		let w = funded::<T>("worker", 0);
		bond::<T>(&w, 1);
		with_rewards::<T>(&w);
		let d = funded::<T>("delegator", 0);
		Pallet::<T>::delegate(RawOrigin::Signed(d.clone()).into(), w.clone(), delegation::<T>()).unwrap();
		#[extrinsic_call]
		_(RawOrigin::Signed(d.clone()), w.clone(), delegation::<T>());
		assert!(!Delegations::<T>::contains_key(&w, &d));
	}

	#[benchmark]
	fn rebond() {
		let who = funded::<T>("worker", 0);
		bond::<T>(&who, 1);
		with_rewards::<T>(&who);
		fill_chunks::<T>(&who);
		Pallet::<T>::unbond(RawOrigin::Signed(who.clone()).into(), One::one()).unwrap();
		let all = BalanceOf::<T>::from(T::MaxUnbondingChunks::get());
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), who.clone(), all);
		assert!(Unbonding::<T>::get(&who).is_empty());
	}

	/// A full queue of chunks, each from leaving a different worker: every worker's slot is
	/// freed.
	#[benchmark]
	fn withdraw_unbonded() {
		let who = funded::<T>("delegator", 0);
		for i in 0..T::MaxUnbondingChunks::get() {
			let w = funded::<T>("worker", i);
			bond::<T>(&w, i as u8);
			Pallet::<T>::delegate(RawOrigin::Signed(who.clone()).into(), w.clone(), delegation::<T>()).unwrap();
			Pallet::<T>::undelegate(RawOrigin::Signed(who.clone()).into(), w, delegation::<T>()).unwrap();
		}
		frame_system::Pallet::<T>::set_block_number(
			frame_system::Pallet::<T>::block_number().saturating_add(UnbondingPeriod::<T>::get()),
		);
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()));
		assert!(Unbonding::<T>::get(&who).is_empty());
		assert_eq!(Unbonders::<T>::iter().count(), 0);
	}

	#[benchmark]
	fn slash(d: Linear<0, { T::MaxDelegators::get() }>) -> Result<(), BenchmarkError> {
		let origin = T::SlashOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
		let w = funded::<T>("worker", 0);
		bond::<T>(&w, 1);
		with_rewards::<T>(&w);
		Pallet::<T>::unbond(RawOrigin::Signed(w.clone()).into(), One::one()).unwrap();
		// Every delegator still delegating and with a full queue of chunks bonded to the worker
		// (all started after the receipt: all slashed).
		let chunks = T::MaxUnbondingChunks::get();
		for i in 0..d {
			let who = funded::<T>("delegator", i);
			let total = delegation::<T>().saturating_mul((chunks + 1).into());
			Pallet::<T>::delegate(RawOrigin::Signed(who.clone()).into(), w.clone(), total).unwrap();
			for _ in 0..chunks {
				Pallet::<T>::undelegate(RawOrigin::Signed(who.clone()).into(), w.clone(), delegation::<T>()).unwrap();
			}
		}
		#[extrinsic_call]
		_(origin as T::RuntimeOrigin, w.clone(), Perbill::from_percent(10));
		assert_eq!(Workers::<T>::get(&w).map(|x| x.status), Some(WorkerStatus::Slashed));
		if d > 0 {
			let first = account::<T::AccountId>("delegator", 0, 0);
			assert!(Unbonding::<T>::get(&first).iter().all(|c| c.amount < delegation::<T>()), "every chunk cut");
		}
		Ok(())
	}

	/// A delegator settles its position in a pool that has accrued rewards, and is paid.
	#[benchmark]
	fn claim_staking_rewards() {
		let w = funded::<T>("worker", 0);
		bond::<T>(&w, 1);
		let d = funded::<T>("delegator", 0);
		Pallet::<T>::delegate(RawOrigin::Signed(d.clone()).into(), w.clone(), delegation::<T>()).unwrap();
		let reward = T::MinWorkerBond::get();
		Pallet::<T>::accrue_reward(&w, reward);
		T::BenchmarkHelper::fund_rewards(reward);
		assert!(!Pallet::<T>::pending_reward(&w, &d).is_zero());
		#[extrinsic_call]
		_(RawOrigin::Signed(d.clone()), w.clone());
		assert!(Pallet::<T>::pending_reward(&w, &d).is_zero());
	}

	#[benchmark]
	fn set_unbonding_period() -> Result<(), BenchmarkError> {
		let origin = T::GovernanceOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
		#[extrinsic_call]
		_(origin as T::RuntimeOrigin, T::MinUnbondingPeriod::get());
		Ok(())
	}

	impl_benchmark_test_suite!(Pallet, crate::mock::new_test_ext(), crate::mock::Test);
}
