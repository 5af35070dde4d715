//! Benchmarks (v2): the worst case of each call is a full set of distinct accounts, the one
//! looked for at its end.

use super::*;
use frame_benchmarking::v2::*;

/// A set of `n` distinct validators, each with session keys of its own.
fn fill<T: Config>(n: u32) {
	let set: Vec<T::AccountId> = (0..n).map(|i| account("validator", i, 0)).collect();
	for v in &set {
		T::BenchmarkHelper::register_keys(v);
	}
	Validators::<T>::put(BoundedVec::<_, T::MaxValidators>::truncate_from(set));
}

#[benchmarks]
mod benchmarks {
	use super::*;

	#[benchmark]
	fn add_validator() -> Result<(), BenchmarkError> {
		let origin = T::ManagerOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
		fill::<T>(T::MaxValidators::get() - 1);
		let who: T::AccountId = account("new", 0, 0);
		T::BenchmarkHelper::register_keys(&who);
		#[extrinsic_call]
		_(origin as T::RuntimeOrigin, who.clone());
		assert_eq!(Validators::<T>::get().last(), Some(&who));
		Ok(())
	}

	#[benchmark]
	fn remove_validator() -> Result<(), BenchmarkError> {
		let origin = T::ManagerOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
		let max = T::MaxValidators::get();
		fill::<T>(max);
		let who: T::AccountId = account("validator", max - 1, 0);
		#[extrinsic_call]
		_(origin as T::RuntimeOrigin, who.clone());
		assert!(!Validators::<T>::get().contains(&who));
		Ok(())
	}

	impl_benchmark_test_suite!(Pallet, crate::mock::new_test_ext(), crate::mock::Test);
}
