//! Command-line interface.

use sc_cli::RunCmd;
use std::{fmt, str::FromStr};

/// How the node authors blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sealing {
	/// Aura slots (6 s) and GRANDPA finality: every real network.
	#[default]
	Aura,
	/// A block (finalized at once) as soon as a transaction enters the pool: tests and demos.
	Instant,
	/// Only when asked through the `engine_createBlock` RPC.
	Manual,
	/// A block (finalized at once) every N milliseconds, transactions or not.
	Interval(u64),
}

impl FromStr for Sealing {
	type Err = String;

	fn from_str(s: &str) -> Result<Self, Self::Err> {
		match s {
			"aura" => Ok(Self::Aura),
			"instant" => Ok(Self::Instant),
			"manual" => Ok(Self::Manual),
			ms => match ms.parse::<u64>() {
				Ok(0) => Err("the sealing interval must be at least 1 ms".into()),
				Ok(n) => Ok(Self::Interval(n)),
				Err(_) => Err(format!(
					"unknown sealing mode `{s}`: expected aura, instant, manual or an interval in ms"
				)),
			},
		}
	}
}

impl fmt::Display for Sealing {
	fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
		match self {
			Self::Aura => f.write_str("aura"),
			Self::Instant => f.write_str("instant"),
			Self::Manual => f.write_str("manual"),
			Self::Interval(ms) => write!(f, "{ms}"),
		}
	}
}

/// The node's command line.
#[derive(Debug, clap::Parser)]
pub struct Cli {
	#[command(subcommand)]
	pub subcommand: Option<Subcommand>,

	#[clap(flatten)]
	pub run: RunCmd,

	/// Block authoring: `aura` (default; Aura + GRANDPA), `instant` (a block per transaction,
	/// finalized at once), `manual` (blocks on `engine_createBlock`), or a number: a block every
	/// that many milliseconds. Modes other than `aura` are for single-node development chains.
	#[arg(long, default_value_t = Sealing::Aura)]
	pub sealing: Sealing,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum Subcommand {
	/// Key management utilities.
	#[command(subcommand)]
	Key(sc_cli::KeySubcommand),

	/// Build a chain specification (plain or `--raw`).
	BuildSpec(sc_cli::BuildSpecCmd),

	/// Validate blocks.
	CheckBlock(sc_cli::CheckBlockCmd),

	/// Export blocks.
	ExportBlocks(sc_cli::ExportBlocksCmd),

	/// Export the state of a given block into a chain spec.
	ExportState(sc_cli::ExportStateCmd),

	/// Import blocks.
	ImportBlocks(sc_cli::ImportBlocksCmd),

	/// Remove the whole chain.
	PurgeChain(sc_cli::PurgeChainCmd),

	/// Revert the chain to a previous state.
	Revert(sc_cli::RevertCmd),

	/// Database meta columns information.
	ChainInfo(sc_cli::ChainInfoCmd),
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn sealing_parses() {
		assert_eq!("aura".parse(), Ok(Sealing::Aura));
		assert_eq!("instant".parse(), Ok(Sealing::Instant));
		assert_eq!("manual".parse(), Ok(Sealing::Manual));
		assert_eq!("500".parse(), Ok(Sealing::Interval(500)));
		assert!("0".parse::<Sealing>().is_err());
		assert!("fast".parse::<Sealing>().unwrap_err().contains("unknown sealing mode"));
		for s in [Sealing::Aura, Sealing::Instant, Sealing::Manual, Sealing::Interval(7)] {
			assert_eq!(s.to_string().parse(), Ok(s));
		}
	}
}
