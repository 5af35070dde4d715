//! The node's own JSON-RPC methods, merged with the standard ones (`system_*`, `chain_*`,
//! `state_*`, `author_*`, ... added by `sc-service`):
//!
//! - `system_accountNextIndex` (substrate-frame-rpc-system),
//! - `payment_queryInfo`, `payment_queryFeeDetails` (pallet-transaction-payment-rpc),
//! - `engine_createBlock`, `engine_finalizeBlock` on manual-seal development nodes,
//! - `openledger_tokenInfo`: the OPEN token as the runtime sees it,
//! - `datanets_*`: Datanets, contributions, snapshots and Merkle proofs ([`datanets`]),
//! - `models_*`: models with versions and lineage, listings ([`models`]),
//! - `attribution_*`: receipts, earnings, model usage, escrow ([`attribution`]).
//!
//! Each OpenLedger pallet adds its module here.

#![warn(missing_docs)]

pub mod attribution;
pub mod datanets;
pub mod models;

use std::sync::Arc;

use jsonrpsee::{
	core::{async_trait, RpcResult},
	proc_macros::rpc,
	types::ErrorObjectOwned,
	RpcModule,
};
use openledger_primitives::{currency::TOKEN_SYMBOL, OpenLedgerApi};
use openledger_runtime::{opaque::Block, AccountId, Balance, Nonce};
use sc_consensus_manual_seal::{
	rpc::{ManualSeal, ManualSealApiServer},
	EngineCommand,
};
use sc_transaction_pool_api::TransactionPool;
use sp_api::ProvideRuntimeApi;
use sp_block_builder::BlockBuilder;
use sp_blockchain::{Error as BlockChainError, HeaderBackend, HeaderMetadata};

type Hash = <Block as sp_runtime::traits::Block>::Hash;

/// Full client dependencies.
pub struct FullDeps<C, P> {
	/// The client instance to use.
	pub client: Arc<C>,
	/// Transaction pool instance.
	pub pool: Arc<P>,
	/// Channel to the manual-seal engine, on development nodes that seal on demand.
	pub manual_seal: Option<futures::channel::mpsc::Sender<EngineCommand<Hash>>>,
}

/// The OPEN token as reported by `openledger_tokenInfo`. Amounts are decimal strings, because
/// JSON numbers lose precision above 2^53 and OPEN has 18 decimals.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
	/// Ticker.
	pub symbol: String,
	/// Decimal places.
	pub decimals: u8,
	/// OPEN in existence, in the smallest unit.
	pub total_issuance: String,
	/// Existential deposit, in the smallest unit.
	pub existential_deposit: String,
}

/// OpenLedger chain-wide queries.
#[rpc(client, server)]
pub trait OpenLedgerRpc {
	/// The native token: symbol, decimals, total issuance and existential deposit, at block `at`
	/// (the best block if omitted).
	#[method(name = "openledger_tokenInfo")]
	async fn token_info(&self, at: Option<Hash>) -> RpcResult<TokenInfo>;
}

/// Error codes of the `openledger_*` methods.
pub mod error {
	/// A runtime API call failed.
	pub const RUNTIME_ERROR: i32 = 9000;
}

/// Implements [`OpenLedgerRpcServer`] over a client.
pub struct OpenLedger<C> {
	client: Arc<C>,
}

#[async_trait]
impl<C> OpenLedgerRpcServer for OpenLedger<C>
where
	C: ProvideRuntimeApi<Block> + HeaderBackend<Block> + Send + Sync + 'static,
	C::Api: OpenLedgerApi<Block>,
{
	async fn token_info(&self, at: Option<Hash>) -> RpcResult<TokenInfo> {
		let at = at.unwrap_or_else(|| self.client.info().best_hash);
		let info = self.client.runtime_api().token_info(at).map_err(|e| {
			ErrorObjectOwned::owned(error::RUNTIME_ERROR, "runtime API call failed", Some(e.to_string()))
		})?;
		Ok(TokenInfo {
			symbol: String::from_utf8(info.symbol.to_vec()).unwrap_or_else(|_| TOKEN_SYMBOL.into()),
			decimals: info.decimals,
			total_issuance: info.total_issuance.to_string(),
			existential_deposit: info.existential_deposit.to_string(),
		})
	}
}

/// Instantiates all of the node's own RPC extensions.
pub fn create_full<C, P>(
	deps: FullDeps<C, P>,
) -> Result<RpcModule<()>, Box<dyn std::error::Error + Send + Sync>>
where
	C: ProvideRuntimeApi<Block>,
	C: HeaderBackend<Block> + HeaderMetadata<Block, Error = BlockChainError> + 'static,
	C: Send + Sync + 'static,
	C::Api: substrate_frame_rpc_system::AccountNonceApi<Block, AccountId, Nonce>,
	C::Api: pallet_transaction_payment_rpc::TransactionPaymentRuntimeApi<Block, Balance>,
	C::Api: BlockBuilder<Block>,
	C::Api: OpenLedgerApi<Block>,
	C::Api: pallet_datanets_runtime_api::DatanetsApi<
		Block,
		AccountId,
		pallet_datanets::DatanetOf<openledger_runtime::Runtime>,
		pallet_datanets::ContributionOf<openledger_runtime::Runtime>,
		openledger_runtime::BlockNumber,
	>,
	C::Api: pallet_models_runtime_api::ModelsApi<
		Block,
		AccountId,
		pallet_models::ModelInfo<openledger_runtime::Runtime>,
		pallet_models::VersionInfo<openledger_runtime::Runtime>,
	>,
	C::Api: pallet_attribution_runtime_api::AttributionApi<
		Block,
		AccountId,
		Balance,
		openledger_runtime::BlockNumber,
		pallet_attribution::ReceiptRecord<openledger_runtime::Runtime>,
	>,
	P: TransactionPool + 'static,
{
	use pallet_transaction_payment_rpc::{TransactionPayment, TransactionPaymentApiServer};
	use substrate_frame_rpc_system::{System, SystemApiServer};

	let mut module = RpcModule::new(());
	let FullDeps { client, pool, manual_seal } = deps;

	module.merge(System::new(client.clone(), pool).into_rpc())?;
	module.merge(TransactionPayment::new(client.clone()).into_rpc())?;
	module.merge(OpenLedger { client: client.clone() }.into_rpc())?;
	module.merge(datanets::DatanetsRpcServer::into_rpc(datanets::Datanets::new(client.clone())))?;
	module.merge(models::ModelsRpcServer::into_rpc(models::Models::new(client.clone())))?;
	module.merge(attribution::AttributionRpcServer::into_rpc(attribution::Attribution::new(client)))?;
	if let Some(sink) = manual_seal {
		module.merge(ManualSeal::new(sink).into_rpc())?;
	}

	Ok(module)
}
