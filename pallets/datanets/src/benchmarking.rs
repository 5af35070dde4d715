//! Benchmarks (v2). Each call runs in its worst case: longest fields, a Datanet with the most
//! curators, a withdrawal that moves a leaf, a snapshot over `n` leaves.

use super::*;
use alloc::vec;
use frame_benchmarking::v2::*;
use frame_support::traits::{fungible::Mutate, Get};
use frame_system::RawOrigin;
use sp_core::H256;
use sp_runtime::traits::Bounded;

fn funded<T: Config>(name: &'static str, index: u32) -> T::AccountId {
	let who: T::AccountId = account(name, index, 0);
	let _ = T::Currency::set_balance(&who, BalanceOf::<T>::max_value() / 4u32.into());
	who
}

fn bytes(len: u32) -> Vec<u8> {
	vec![b'x'; len as usize]
}

fn min_policy<T: Config>() -> DepositPolicy<BalanceOf<T>> {
	DepositPolicy {
		base: T::MinContributionDepositBase::get(),
		per_byte: T::MinContributionDepositPerByte::get(),
	}
}

fn new_datanet<T: Config>(owner: &T::AccountId, curation: CurationMode) -> DatanetId {
	let id = NextDatanetId::<T>::get();
	Pallet::<T>::create_datanet(
		RawOrigin::Signed(owner.clone()).into(),
		bytes(T::MaxNameLen::get()),
		bytes(T::MaxUriLen::get()),
		bytes(T::MaxLicenseLen::get()),
		curation,
		min_policy::<T>(),
	)
	.expect("funded owner creates a datanet");
	id
}

fn hash(i: u64) -> H256 {
	let mut bytes = [0u8; 32];
	bytes[..8].copy_from_slice(&(i + 1).to_le_bytes());
	H256(bytes)
}

fn contribute_max<T: Config>(who: &T::AccountId, datanet: DatanetId, i: u64) -> ContributionId {
	let id = NextContributionId::<T>::get();
	Pallet::<T>::contribute(
		RawOrigin::Signed(who.clone()).into(),
		datanet,
		hash(i),
		1024,
		256,
		bytes(T::MaxUriLen::get()),
		Some(bytes(T::MaxLicenseLen::get())),
		Some(bytes(T::MaxMetadataLen::get())),
	)
	.expect("valid contribution");
	id
}

#[benchmarks]
mod benchmarks {
	use super::*;

	#[benchmark]
	fn create_datanet() {
		let owner = funded::<T>("owner", 0);
		#[extrinsic_call]
		_(
			RawOrigin::Signed(owner.clone()),
			bytes(T::MaxNameLen::get()),
			bytes(T::MaxUriLen::get()),
			bytes(T::MaxLicenseLen::get()),
			CurationMode::Curated,
			min_policy::<T>(),
		);
		assert_eq!(Datanets::<T>::get(0).map(|d| d.owner), Some(owner));
	}

	#[benchmark]
	fn update_metadata() {
		let owner = funded::<T>("owner", 0);
		let d = new_datanet::<T>(&owner, CurationMode::Curated);
		#[extrinsic_call]
		_(
			RawOrigin::Signed(owner),
			d,
			Some(bytes(T::MaxNameLen::get())),
			Some(bytes(T::MaxUriLen::get())),
			Some(bytes(T::MaxLicenseLen::get())),
		);
	}

	#[benchmark]
	fn add_curator() {
		let owner = funded::<T>("owner", 0);
		let d = new_datanet::<T>(&owner, CurationMode::Curated);
		for i in 0..T::MaxCurators::get().saturating_sub(1) {
			Pallet::<T>::add_curator(RawOrigin::Signed(owner.clone()).into(), d, account("curator", i, 0))
				.unwrap();
		}
		let curator: T::AccountId = account("new", 0, 0);
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), d, curator.clone());
		assert!(Curators::<T>::contains_key(d, curator));
	}

	#[benchmark]
	fn remove_curator() {
		let owner = funded::<T>("owner", 0);
		let d = new_datanet::<T>(&owner, CurationMode::Curated);
		let curator: T::AccountId = account("curator", 0, 0);
		Pallet::<T>::add_curator(RawOrigin::Signed(owner.clone()).into(), d, curator.clone()).unwrap();
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), d, curator.clone());
		assert!(!Curators::<T>::contains_key(d, curator));
	}

	#[benchmark]
	fn archive() {
		let owner = funded::<T>("owner", 0);
		let d = new_datanet::<T>(&owner, CurationMode::Curated);
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), d);
		assert_eq!(Datanets::<T>::get(d).map(|d| d.status), Some(DatanetStatus::Archived));
	}

	/// Worst case: an open Datanet (the contribution is also accepted) and the longest fields.
	#[benchmark]
	fn contribute() {
		let owner = funded::<T>("owner", 0);
		let who = funded::<T>("contributor", 0);
		let d = new_datanet::<T>(&owner, CurationMode::Open);
		#[extrinsic_call]
		_(
			RawOrigin::Signed(who),
			d,
			hash(0),
			1024,
			256,
			bytes(T::MaxUriLen::get()),
			Some(bytes(T::MaxLicenseLen::get())),
			Some(bytes(T::MaxMetadataLen::get())),
		);
		assert_eq!(Datanets::<T>::get(d).map(|d| d.leaf_count), Some(1));
	}

	#[benchmark]
	fn accept() {
		let owner = funded::<T>("owner", 0);
		let who = funded::<T>("contributor", 0);
		let d = new_datanet::<T>(&owner, CurationMode::Curated);
		let c = contribute_max::<T>(&who, d, 0);
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), c);
		assert_eq!(Datanets::<T>::get(d).map(|d| d.leaf_count), Some(1));
	}

	#[benchmark]
	fn reject() {
		let owner = funded::<T>("owner", 0);
		let who = funded::<T>("contributor", 0);
		let d = new_datanet::<T>(&owner, CurationMode::Curated);
		let c = contribute_max::<T>(&who, d, 0);
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), c, 7);
		assert!(Contributions::<T>::get(c).is_none());
	}

	/// Worst case: the withdrawn contribution is an accepted leaf that is not the last, so the
	/// last leaf moves into its index.
	#[benchmark]
	fn withdraw() {
		let owner = funded::<T>("owner", 0);
		let who = funded::<T>("contributor", 0);
		let d = new_datanet::<T>(&owner, CurationMode::Open);
		let first = contribute_max::<T>(&who, d, 0);
		let last = contribute_max::<T>(&who, d, 1);
		#[extrinsic_call]
		_(RawOrigin::Signed(who), first);
		assert_eq!(
			Contributions::<T>::get(last).map(|c| c.status),
			Some(ContributionStatus::Accepted { leaf: 0 })
		);
	}

	#[benchmark]
	fn snapshot(n: Linear<1, { T::MaxLeaves::get() }>) {
		let owner = funded::<T>("owner", 0);
		let d = new_datanet::<T>(&owner, CurationMode::Open);
		// Leaves written directly: the contributions' records are not read by a snapshot.
		for i in 0..n {
			Leaves::<T>::insert(d, i, Leaf { contribution: i as u64, content_hash: hash(i as u64) });
		}
		Datanets::<T>::mutate(d, |x| x.as_mut().map(|x| x.leaf_count = n));
		#[extrinsic_call]
		_(RawOrigin::Signed(owner), d);
		assert_eq!(Snapshots::<T>::get(d, 1).map(|s| s.leaf_count), Some(n));
	}

	impl_benchmark_test_suite!(Pallet, crate::mock::new_test_ext(), crate::mock::Test);
}
