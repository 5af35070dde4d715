//! The fee split, as pure arithmetic (no storage), so it can be tested alone.
//!
//! For a fee `f` and a model's split `(owner, data, worker, treasury)`:
//! 1. `owner = owner% · f`, `worker = worker% · f`, `treasury = treasury% · f` (each rounded
//!    down); the **data** part is what is left, `f − owner − worker − treasury`, so rounding dust
//!    goes to the data.
//! 2. Each attributed contribution `i` with share `sᵢ` gets `sᵢ · data` (rounded down).
//! 3. The part of the data not attributed — shares below 100 % and rounding — goes to the owners
//!    of the Datanets in the model version's lineage by lineage weight (rounded down); what is
//!    still left (no lineage, rounding) goes to the treasury.
//!
//! Every unit of the fee lands somewhere: the payouts always sum to exactly `f`.

use alloc::vec::Vec;
use sp_runtime::{traits::AtLeast32BitUnsigned, Perbill};

pub use openledger_primitives::RevenueSplit;

/// Who gets what from one fee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payouts<A, B> {
	pub owner: B,
	pub worker: B,
	pub treasury: B,
	/// Per attributed contribution, in the order given.
	pub contributors: Vec<(A, B)>,
	/// Per lineage entry, in the order given.
	pub datanet_owners: Vec<(A, B)>,
}

impl<A, B: AtLeast32BitUnsigned + Copy> Payouts<A, B> {
	/// Sum of every payout.
	pub fn total(&self) -> B {
		self.contributors
			.iter()
			.chain(self.datanet_owners.iter())
			.fold(self.owner + self.worker + self.treasury, |acc, (_, b)| acc + *b)
	}
}

/// Splits `fee`. `attributed` shares must sum to at most 100 % and `lineage` weights to 100 %
/// (or be empty); the caller checks both.
pub fn split_fee<A: Clone, B: AtLeast32BitUnsigned + Copy>(
	fee: B,
	split: &RevenueSplit,
	attributed: &[(A, Perbill)],
	lineage: &[(A, Perbill)],
) -> Payouts<A, B> {
	let owner = split.owner.mul_floor(fee);
	let worker = split.worker.mul_floor(fee);
	let mut treasury = split.treasury.mul_floor(fee);
	let data = fee.saturating_sub(owner).saturating_sub(worker).saturating_sub(treasury);
	let mut rest = data;
	let contributors: Vec<(A, B)> = attributed
		.iter()
		.map(|(who, share)| {
			let amount = share.mul_floor(data).min(rest);
			rest -= amount;
			(who.clone(), amount)
		})
		.collect();
	let unattributed = rest;
	let datanet_owners: Vec<(A, B)> = lineage
		.iter()
		.map(|(who, weight)| {
			let amount = weight.mul_floor(unattributed).min(rest);
			rest -= amount;
			(who.clone(), amount)
		})
		.collect();
	treasury += rest;
	Payouts { owner, worker, treasury, contributors, datanet_owners }
}

#[cfg(test)]
mod tests {
	use super::*;

	fn split(o: u32, d: u32, w: u32, t: u32) -> RevenueSplit {
		RevenueSplit {
			owner: Perbill::from_percent(o),
			data: Perbill::from_percent(d),
			worker: Perbill::from_percent(w),
			treasury: Perbill::from_percent(t),
		}
	}

	#[test]
	fn worked_example() {
		// 1000 units, 40/30/20/10; contributions 60 % and 30 % of the data; lineage 50/50.
		let p = split_fee(
			1_000u128,
			&split(40, 30, 20, 10),
			&[("c1", Perbill::from_percent(60)), ("c2", Perbill::from_percent(30))],
			&[("d1", Perbill::from_percent(50)), ("d2", Perbill::from_percent(50))],
		);
		assert_eq!((p.owner, p.worker, p.treasury), (400, 200, 100));
		assert_eq!(p.contributors, vec![("c1", 180), ("c2", 90)]);
		assert_eq!(p.datanet_owners, vec![("d1", 15), ("d2", 15)]);
		assert_eq!(p.total(), 1_000);
	}

	#[test]
	fn without_lineage_the_unattributed_data_goes_to_the_treasury() {
		let p = split_fee(1_000u128, &split(40, 30, 20, 10), &[("c1", Perbill::from_percent(50))], &[]);
		assert_eq!(p.contributors, vec![("c1", 150)]);
		assert_eq!(p.treasury, 100 + 150);
		assert_eq!(p.total(), 1_000);
	}

	/// Property: for random fees, splits, shares and lineages the payouts sum to the fee, no
	/// attributed share gets more than its percentage of the data, and the owner/worker parts
	/// match their percentages rounded down.
	#[test]
	fn payouts_always_sum_to_the_fee() {
		let mut seed = 0x2545_f491_4f6c_dd1du64;
		let mut next = || {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			seed
		};
		for _ in 0..20_000 {
			let fee = (next() as u128) % 10u128.pow((next() % 28) as u32 + 1);
			let mut cuts = [next() % 1_000_000_001, next() % 1_000_000_001, next() % 1_000_000_001];
			cuts.sort();
			let parts = [cuts[0], cuts[1] - cuts[0], cuts[2] - cuts[1], 1_000_000_000 - cuts[2]];
			let s = RevenueSplit {
				owner: Perbill::from_parts(parts[0] as u32),
				data: Perbill::from_parts(parts[1] as u32),
				worker: Perbill::from_parts(parts[2] as u32),
				treasury: Perbill::from_parts(parts[3] as u32),
			};
			assert!(s.is_complete());
			let n = (next() % 9) as usize;
			let mut left = 1_000_000_000u64;
			let attributed: Vec<(u32, Perbill)> = (0..n)
				.map(|i| {
					let p = if left == 0 { 0 } else { next() % (left + 1) };
					left -= p;
					(i as u32, Perbill::from_parts(p as u32))
				})
				.collect();
			let m = (next() % 4) as usize;
			let mut wleft = 1_000_000_000u64;
			let lineage: Vec<(u32, Perbill)> = (0..m)
				.map(|i| {
					let p = if i + 1 == m { wleft } else { next() % (wleft + 1) };
					wleft -= p;
					(100 + i as u32, Perbill::from_parts(p as u32))
				})
				.collect();
			let p = split_fee(fee, &s, &attributed, &lineage);
			assert_eq!(p.total(), fee, "fee {fee}");
			assert_eq!(p.owner, s.owner.mul_floor(fee));
			assert_eq!(p.worker, s.worker.mul_floor(fee));
			let data = fee - p.owner - p.worker - s.treasury.mul_floor(fee);
			for ((_, share), (_, paid)) in attributed.iter().zip(&p.contributors) {
				assert!(*paid <= share.mul_floor(data));
			}
		}
	}
}
