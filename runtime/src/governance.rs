//! Governance by OPEN holders: the referendum tracks, the origins they dispatch with, and the
//! chain's governance timing.
//!
//! Decisions are taken by `pallet-referenda` with votes of `pallet-conviction-voting` (OPEN
//! locked with conviction). Each track dispatches with its own origin, which only the calls of
//! its domain accept:
//!
//! | id | track | origin | what it may decide |
//! |---|---|---|---|
//! | 0 | `root` | `Root` | anything: runtime upgrades (`system.authorizeUpgrade`), migrations |
//! | 1 | `parameters` | `ParametersAdmin` | `parameters.setParameter`, `models.setMinSplit`, `openStaking.setUnbondingPeriod` |
//! | 2 | `treasurer` | `Treasurer` | `treasury.spend` up to 1,000,000 OPEN each (paid with `treasury.payout`) |
//! | 3 | `disputes` | `DisputeResolver` | `attribution.resolveChallenge` (influence and retrieval receipts) |
//! | 4 | `validators` | `ValidatorAdmin` | `validatorSet.addValidator` / `removeValidator` |
//! | 5 | `canceller` | `ReferendumCanceller` | `referenda.cancel` (deposits refunded) |
//! | 6 | `killer` | `ReferendumKiller` | `referenda.kill` (deposits slashed to the treasury) |
//!
//! The periods and curves of each track are in [`tracks`]. Every period exists twice: the real
//! one and a fast one (blocks instead of hours and days) for development and local test chains,
//! chosen once at genesis by [`pallet_origins::GenesisConfig::timing`] and fixed for the chain's
//! life (no call of its own changes it; a root referendum could rewrite storage). The curves are the
//! same in both.

use crate::{currency::OPEN, time::{DAYS, HOURS, MINUTES}, Balance, BlockNumber, RuntimeOrigin};
use alloc::borrow::Cow;
use pallet_referenda::{Curve, Track, TrackInfo};
use sp_runtime::{str_array as s, Perbill};

pub use pallet_origins::{GovernanceTiming, Origin};

/// The origins of the tracks other than root, and the chain's governance timing.
#[frame_support::pallet]
pub mod pallet_origins {
	use frame_support::pallet_prelude::*;

	#[pallet::config]
	pub trait Config: frame_system::Config {}

	#[pallet::pallet]
	pub struct Pallet<T>(_);

	/// The origin a referendum on a track other than root dispatches with.
	#[derive(
		PartialEq, Eq, Clone, Copy, MaxEncodedLen, Encode, Decode, DecodeWithMemTracking, TypeInfo, RuntimeDebug,
	)]
	#[pallet::origin]
	pub enum Origin {
		/// Governable parameters: fees, deposits, bonds, the minimum revenue split, unbonding.
		ParametersAdmin,
		/// Treasury spends up to `MAX_TREASURER_SPEND` per call.
		Treasurer,
		/// Verdicts on challenged influence and retrieval receipts.
		DisputeResolver,
		/// The validator set.
		ValidatorAdmin,
		/// Cancels a referendum (its deposits are refunded).
		ReferendumCanceller,
		/// Kills a referendum (its deposits go to the treasury).
		ReferendumKiller,
	}

	/// Which periods the tracks, vote locks and sessions use.
	#[derive(
		PartialEq, Eq, Clone, Copy, Default, MaxEncodedLen, Encode, Decode, DecodeWithMemTracking, TypeInfo,
		RuntimeDebug, serde::Serialize, serde::Deserialize,
	)]
	pub enum GovernanceTiming {
		/// Hours and days: every public network.
		#[default]
		Real,
		/// Blocks: development and local test chains, so that a referendum passes in a minute.
		Fast,
	}

	/// The timing chosen at genesis. No call changes it.
	#[pallet::storage]
	pub type Timing<T> = StorageValue<_, GovernanceTiming, ValueQuery>;

	#[pallet::genesis_config]
	#[derive(frame_support::DefaultNoBound)]
	pub struct GenesisConfig<T: Config> {
		pub timing: GovernanceTiming,
		#[serde(skip)]
		pub _config: core::marker::PhantomData<T>,
	}

	#[pallet::genesis_build]
	impl<T: Config> BuildGenesisConfig for GenesisConfig<T> {
		fn build(&self) {
			Timing::<T>::put(self.timing);
		}
	}

	macro_rules! ensure_origin {
		($name:ident, $variant:ident) => {
			#[doc = concat!("Accepts the `", stringify!($variant), "` origin only.")]
			pub struct $name;
			impl<O: OriginTrait + From<Origin>> EnsureOrigin<O> for $name
			where
				for<'a> &'a O::PalletsOrigin: TryInto<&'a Origin>,
			{
				type Success = ();
				fn try_origin(o: O) -> Result<Self::Success, O> {
					let matches = matches!(o.caller().try_into(), Ok(Origin::$variant));
					if matches {
						Ok(())
					} else {
						Err(o)
					}
				}
				#[cfg(feature = "runtime-benchmarks")]
				fn try_successful_origin() -> Result<O, ()> {
					Ok(O::from(Origin::$variant))
				}
			}
		};
	}
	ensure_origin!(ParametersAdmin, ParametersAdmin);
	ensure_origin!(Treasurer, Treasurer);
	ensure_origin!(DisputeResolver, DisputeResolver);
	ensure_origin!(ValidatorAdmin, ValidatorAdmin);
	ensure_origin!(ReferendumCanceller, ReferendumCanceller);
	ensure_origin!(ReferendumKiller, ReferendumKiller);
}

/// The timing of this chain (real when genesis set none).
pub fn timing() -> GovernanceTiming {
	pallet_origins::Timing::<crate::Runtime>::get()
}

/// `real` on public networks, `fast` on development and local test chains.
pub fn pick(real: BlockNumber, fast: BlockNumber) -> BlockNumber {
	match timing() {
		GovernanceTiming::Real => real,
		GovernanceTiming::Fast => fast,
	}
}

/// Declares `pub struct $name`, a `Get<BlockNumber>` that reads [`pick`]`($real, $fast)`.
#[macro_export]
macro_rules! timed_period {
	($(#[$doc:meta])* $name:ident = real $real:expr, fast $fast:expr) => {
		$(#[$doc])*
		pub struct $name;
		impl frame_support::traits::Get<$crate::BlockNumber> for $name {
			fn get() -> $crate::BlockNumber {
				$crate::governance::pick($real, $fast)
			}
		}
	};
}

/// Track ids.
pub mod track {
	pub const ROOT: u16 = 0;
	pub const PARAMETERS: u16 = 1;
	pub const TREASURER: u16 = 2;
	pub const DISPUTES: u16 = 3;
	pub const VALIDATORS: u16 = 4;
	pub const CANCELLER: u16 = 5;
	pub const KILLER: u16 = 6;
}

/// The least conviction-weighted share of aye votes: 100 % at the start of the decision period,
/// falling linearly to 50 % at its end.
const APPROVAL: Curve = Curve::LinearDecreasing {
	length: Perbill::one(),
	floor: Perbill::from_percent(50),
	ceil: Perbill::from_percent(100),
};

/// The least support (aye OPEN, without conviction, as a share of the active issuance), falling
/// linearly from `ceil` to `floor` over the decision period.
const fn support(ceil_percent: u32, floor_permill: u32) -> Curve {
	Curve::LinearDecreasing {
		length: Perbill::one(),
		floor: Perbill::from_parts(floor_permill * 1_000),
		ceil: Perbill::from_percent(ceil_percent),
	}
}

/// Periods of a track, real and fast: `(prepare, decision, confirm, min_enactment)`.
struct Periods {
	real: [BlockNumber; 4],
	fast: [BlockNumber; 4],
}

struct TrackSpec {
	id: u16,
	name: &'static str,
	max_deciding: u32,
	decision_deposit: Balance,
	periods: Periods,
	min_support: Curve,
}

/// Fast periods: a referendum that gets its decision deposit and enough votes is decided within
/// about 10 blocks and enacted 1 block after.
const FAST: [BlockNumber; 4] = [1, 8, 1, 1];

const TRACKS: [TrackSpec; 7] = [
	TrackSpec {
		id: track::ROOT,
		name: "root",
		max_deciding: 1,
		decision_deposit: 100_000 * OPEN,
		periods: Periods { real: [2 * HOURS, 14 * DAYS, DAYS, DAYS], fast: FAST },
		// 50 % falling to 0.5 %.
		min_support: support(50, 5),
	},
	TrackSpec {
		id: track::PARAMETERS,
		name: "parameters",
		max_deciding: 10,
		decision_deposit: 10_000 * OPEN,
		periods: Periods { real: [HOURS, 7 * DAYS, 3 * HOURS, 10 * MINUTES], fast: FAST },
		min_support: support(25, 5),
	},
	TrackSpec {
		id: track::TREASURER,
		name: "treasurer",
		max_deciding: 10,
		decision_deposit: 1_000 * OPEN,
		periods: Periods { real: [2 * HOURS, 14 * DAYS, DAYS, DAYS], fast: FAST },
		min_support: support(25, 5),
	},
	TrackSpec {
		id: track::DISPUTES,
		name: "disputes",
		max_deciding: 50,
		decision_deposit: 100 * OPEN,
		periods: Periods { real: [10 * MINUTES, 3 * DAYS, HOURS, 1], fast: FAST },
		// 10 % falling to 0.1 %: disputes interest few holders.
		min_support: support(10, 1),
	},
	TrackSpec {
		id: track::VALIDATORS,
		name: "validators",
		max_deciding: 5,
		decision_deposit: 10_000 * OPEN,
		periods: Periods { real: [HOURS, 7 * DAYS, 3 * HOURS, 10 * MINUTES], fast: FAST },
		min_support: support(25, 5),
	},
	// Cancelling or killing a referendum must not wait behind the one it stops (the root track
	// decides one at a time): many at once, decided within hours.
	TrackSpec {
		id: track::CANCELLER,
		name: "canceller",
		max_deciding: 100,
		decision_deposit: 10_000 * OPEN,
		periods: Periods { real: [HOURS, 7 * DAYS, 3 * HOURS, 10 * MINUTES], fast: FAST },
		min_support: support(10, 1),
	},
	TrackSpec {
		id: track::KILLER,
		name: "killer",
		max_deciding: 100,
		decision_deposit: 50_000 * OPEN,
		periods: Periods { real: [HOURS, 7 * DAYS, 3 * HOURS, 10 * MINUTES], fast: FAST },
		min_support: support(10, 1),
	},
];

/// The tracks of `pallet-referenda`.
pub struct TracksInfo;
impl pallet_referenda::TracksInfo<Balance, BlockNumber> for TracksInfo {
	type Id = u16;
	type RuntimeOrigin = <RuntimeOrigin as frame_support::traits::OriginTrait>::PalletsOrigin;

	fn tracks() -> impl Iterator<Item = Cow<'static, Track<Self::Id, Balance, BlockNumber>>> {
		let fast = timing() == GovernanceTiming::Fast;
		TRACKS.iter().map(move |t| {
			let [prepare_period, decision_period, confirm_period, min_enactment_period] =
				if fast { t.periods.fast } else { t.periods.real };
			Cow::Owned(Track {
				id: t.id,
				info: TrackInfo {
					name: s(t.name),
					max_deciding: t.max_deciding,
					decision_deposit: t.decision_deposit,
					prepare_period,
					decision_period,
					confirm_period,
					min_enactment_period,
					min_approval: APPROVAL,
					min_support: t.min_support.clone(),
				},
			})
		})
	}

	fn track_for(id: &Self::RuntimeOrigin) -> Result<Self::Id, ()> {
		if let Ok(system_origin) = frame_system::RawOrigin::try_from(id.clone()) {
			return match system_origin {
				frame_system::RawOrigin::Root => Ok(track::ROOT),
				_ => Err(()),
			};
		}
		match Origin::try_from(id.clone()) {
			Ok(Origin::ParametersAdmin) => Ok(track::PARAMETERS),
			Ok(Origin::Treasurer) => Ok(track::TREASURER),
			Ok(Origin::DisputeResolver) => Ok(track::DISPUTES),
			Ok(Origin::ValidatorAdmin) => Ok(track::VALIDATORS),
			Ok(Origin::ReferendumCanceller) => Ok(track::CANCELLER),
			Ok(Origin::ReferendumKiller) => Ok(track::KILLER),
			Err(_) => Err(()),
		}
	}
}
