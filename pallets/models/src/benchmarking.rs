//! Benchmarks (v2): lineage length `l` is the component; names, URIs and modules are longest.

use super::*;
use alloc::vec;
use frame_benchmarking::v2::*;
use frame_support::{
	traits::{fungible::Mutate, EnsureOrigin, Get},
	BoundedVec,
};
use frame_system::RawOrigin;
use openledger_primitives::DatanetSnapshots;
use sp_core::H256;
use sp_runtime::{traits::Bounded, Perbill};

fn funded<T: Config>(name: &'static str) -> T::AccountId {
	let who: T::AccountId = account(name, 0, 0);
	let _ = T::Currency::set_balance(&who, BalanceOf::<T>::max_value() / 4u32.into());
	who
}

fn bytes(len: u32) -> Vec<u8> {
	vec![b'x'; len as usize]
}

/// A lineage of `l` existing snapshots whose weights sum to 100 %.
fn lineage<T: Config>(l: u32) -> LineageOf<T> {
	let mut out = Vec::new();
	let mut left = Perbill::one().deconstruct();
	for i in 0..l {
		T::Snapshots::benchmark_snapshot(i, 1);
		let w = if i + 1 == l { left } else { Perbill::one().deconstruct() / l };
		left -= w;
		out.push(LineageEntry { datanet: i, version: 1, weight: Perbill::from_parts(w) });
	}
	BoundedVec::truncate_from(out)
}

fn modules<T: Config>() -> TargetModulesOf<T> {
	BoundedVec::truncate_from(
		(0..T::MaxTargetModules::get()).map(|_| BoundedVec::truncate_from(bytes(T::MaxModuleNameLen::get()))).collect(),
	)
}

fn new_base<T: Config>(owner: &T::AccountId) -> ModelId {
	let id = NextModelId::<T>::get();
	Pallet::<T>::register_base(
		RawOrigin::Signed(owner.clone()).into(),
		bytes(T::MaxNameLen::get()),
		bytes(T::MaxNameLen::get()),
		bytes(T::MaxNameLen::get()),
		H256::repeat_byte(0xba),
		bytes(T::MaxUriLen::get()),
		BoundedVec::new(),
		H256::zero(),
	)
	.expect("funded owner registers a base");
	id
}

fn new_adapter<T: Config>(owner: &T::AccountId) -> ModelId {
	let base = new_base::<T>(owner);
	let id = NextModelId::<T>::get();
	Pallet::<T>::register_adapter(
		RawOrigin::Signed(owner.clone()).into(),
		base,
		bytes(T::MaxNameLen::get()),
		bytes(T::MaxNameLen::get()),
		16,
		32,
		modules::<T>(),
		H256::repeat_byte(0xad),
		bytes(T::MaxUriLen::get()),
		lineage::<T>(1),
		H256::zero(),
	)
	.expect("valid adapter");
	id
}

#[benchmarks]
mod benchmarks {
	use super::*;

	#[benchmark]
	fn register_base(l: Linear<0, { T::MaxLineage::get() }>) {
		let owner = funded::<T>("owner");
		let lin = lineage::<T>(l);
		#[extrinsic_call]
		_(
			RawOrigin::Signed(owner),
			bytes(T::MaxNameLen::get()),
			bytes(T::MaxNameLen::get()),
			bytes(T::MaxNameLen::get()),
			H256::repeat_byte(1),
			bytes(T::MaxUriLen::get()),
			lin,
			H256::zero(),
		);
		assert_eq!(NextModelId::<T>::get(), 1);
	}

	#[benchmark]
	fn register_adapter(l: Linear<1, { T::MaxLineage::get() }>) {
		let owner = funded::<T>("owner");
		let base = new_base::<T>(&owner);
		let lin = lineage::<T>(l);
		#[extrinsic_call]
		_(
			RawOrigin::Signed(owner),
			base,
			bytes(T::MaxNameLen::get()),
			bytes(T::MaxNameLen::get()),
			16,
			32,
			modules::<T>(),
			H256::repeat_byte(2),
			bytes(T::MaxUriLen::get()),
			lin,
			H256::zero(),
		);
		assert_eq!(NextModelId::<T>::get(), 2);
	}

	#[benchmark]
	fn publish_version(l: Linear<1, { T::MaxLineage::get() }>) {
		let owner = funded::<T>("owner");
		let model = new_adapter::<T>(&owner);
		let lin = lineage::<T>(l);
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), model, H256::repeat_byte(3), bytes(T::MaxUriLen::get()), lin, H256::zero());
		assert_eq!(Models::<T>::get(model).map(|m| m.latest_version), Some(2));
	}

	#[benchmark]
	fn deprecate_version() {
		let owner = funded::<T>("owner");
		let model = new_adapter::<T>(&owner);
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), model, 1);
		assert_eq!(Versions::<T>::get(model, 1).map(|v| v.deprecated), Some(true));
	}

	#[benchmark]
	fn set_pricing() {
		let owner = funded::<T>("owner");
		let model = new_base::<T>(&owner);
		let pricing = Pricing { per_1k_tokens: 1000u32.into(), per_request: 1u32.into() };
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), model, pricing);
	}

	#[benchmark]
	fn set_revenue_split() {
		let owner = funded::<T>("owner");
		let model = new_base::<T>(&owner);
		let split = T::DefaultSplit::get();
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), model, split);
	}

	#[benchmark]
	fn transfer_ownership() {
		let owner = funded::<T>("owner");
		let model = new_base::<T>(&owner);
		let to: T::AccountId = account("new", 0, 0);
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), model, to.clone());
		assert_eq!(Models::<T>::get(model).map(|m| m.owner), Some(to));
	}

	#[benchmark]
	fn set_min_split() -> Result<(), BenchmarkError> {
		let origin = T::GovernanceOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
		let min = RevenueSplit {
			owner: Perbill::from_percent(10),
			data: Perbill::from_percent(10),
			worker: Perbill::from_percent(10),
			treasury: Perbill::from_percent(10),
		};
		#[extrinsic_call]
		_(origin as T::RuntimeOrigin, min);
		Ok(())
	}

	impl_benchmark_test_suite!(Pallet, crate::mock::new_test_ext(), crate::mock::Test);
}
