//! Runtime APIs: the standard set (block building, Aura, GRANDPA, nonces, fees, genesis presets)
//! plus [`openledger_primitives::OpenLedgerApi`].

use alloc::vec::Vec;
use frame_support::{
	genesis_builder_helper::{build_state, get_preset},
	traits::fungible::Inspect,
	weights::Weight,
};
use openledger_primitives::{currency, TokenInfo};
use pallet_grandpa::AuthorityId as GrandpaId;
use sp_api::impl_runtime_apis;
use sp_consensus_aura::sr25519::AuthorityId as AuraId;
use sp_core::{crypto::KeyTypeId, OpaqueMetadata};
use sp_runtime::{
	traits::{Block as BlockT, NumberFor},
	transaction_validity::{TransactionSource, TransactionValidity},
	ApplyExtrinsicResult,
};
use sp_version::RuntimeVersion;

use super::{
	AccountId, Attribution, Aura, Balance, Balances, Block, BlockNumber, Datanets, Executive, Grandpa,
	InherentDataExt, Models, Nonce, Runtime,
	RuntimeCall, RuntimeGenesisConfig, SessionKeys, System, TransactionPayment, VERSION,
};

/// The token facts returned by `OpenLedgerApi::token_info`.
pub fn token_info() -> TokenInfo {
	let mut symbol = [0u8; 4];
	symbol.copy_from_slice(currency::TOKEN_SYMBOL.as_bytes());
	TokenInfo {
		symbol,
		decimals: currency::TOKEN_DECIMALS,
		total_issuance: <Balances as Inspect<AccountId>>::total_issuance(),
		existential_deposit: currency::EXISTENTIAL_DEPOSIT,
	}
}

impl_runtime_apis! {
	impl sp_api::Core<Block> for Runtime {
		fn version() -> RuntimeVersion {
			VERSION
		}

		fn execute_block(block: Block) {
			Executive::execute_block(block);
		}

		fn initialize_block(header: &<Block as BlockT>::Header) -> sp_runtime::ExtrinsicInclusionMode {
			Executive::initialize_block(header)
		}
	}

	impl sp_api::Metadata<Block> for Runtime {
		fn metadata() -> OpaqueMetadata {
			OpaqueMetadata::new(Runtime::metadata().into())
		}

		fn metadata_at_version(version: u32) -> Option<OpaqueMetadata> {
			Runtime::metadata_at_version(version)
		}

		fn metadata_versions() -> Vec<u32> {
			Runtime::metadata_versions()
		}
	}

	impl frame_support::view_functions::runtime_api::RuntimeViewFunction<Block> for Runtime {
		fn execute_view_function(
			id: frame_support::view_functions::ViewFunctionId,
			input: Vec<u8>,
		) -> Result<Vec<u8>, frame_support::view_functions::ViewFunctionDispatchError> {
			Runtime::execute_view_function(id, input)
		}
	}

	impl sp_block_builder::BlockBuilder<Block> for Runtime {
		fn apply_extrinsic(extrinsic: <Block as BlockT>::Extrinsic) -> ApplyExtrinsicResult {
			Executive::apply_extrinsic(extrinsic)
		}

		fn finalize_block() -> <Block as BlockT>::Header {
			Executive::finalize_block()
		}

		fn inherent_extrinsics(data: sp_inherents::InherentData) -> Vec<<Block as BlockT>::Extrinsic> {
			data.create_extrinsics()
		}

		fn check_inherents(
			block: Block,
			data: sp_inherents::InherentData,
		) -> sp_inherents::CheckInherentsResult {
			data.check_extrinsics(&block)
		}
	}

	impl sp_transaction_pool::runtime_api::TaggedTransactionQueue<Block> for Runtime {
		fn validate_transaction(
			source: TransactionSource,
			tx: <Block as BlockT>::Extrinsic,
			block_hash: <Block as BlockT>::Hash,
		) -> TransactionValidity {
			Executive::validate_transaction(source, tx, block_hash)
		}
	}

	impl sp_offchain::OffchainWorkerApi<Block> for Runtime {
		fn offchain_worker(header: &<Block as BlockT>::Header) {
			Executive::offchain_worker(header)
		}
	}

	impl sp_consensus_aura::AuraApi<Block, AuraId> for Runtime {
		fn slot_duration() -> sp_consensus_aura::SlotDuration {
			sp_consensus_aura::SlotDuration::from_millis(Aura::slot_duration())
		}

		fn authorities() -> Vec<AuraId> {
			pallet_aura::Authorities::<Runtime>::get().into_inner()
		}
	}

	impl sp_session::SessionKeys<Block> for Runtime {
		fn generate_session_keys(seed: Option<Vec<u8>>) -> Vec<u8> {
			SessionKeys::generate(seed)
		}

		fn decode_session_keys(encoded: Vec<u8>) -> Option<Vec<(Vec<u8>, KeyTypeId)>> {
			SessionKeys::decode_into_raw_public_keys(&encoded)
		}
	}

	impl sp_consensus_grandpa::GrandpaApi<Block> for Runtime {
		fn grandpa_authorities() -> sp_consensus_grandpa::AuthorityList {
			Grandpa::grandpa_authorities()
		}

		fn current_set_id() -> sp_consensus_grandpa::SetId {
			Grandpa::current_set_id()
		}

		fn submit_report_equivocation_unsigned_extrinsic(
			equivocation_proof: sp_consensus_grandpa::EquivocationProof<
				<Block as BlockT>::Hash,
				NumberFor<Block>,
			>,
			key_owner_proof: sp_consensus_grandpa::OpaqueKeyOwnershipProof,
		) -> Option<()> {
			let key_owner_proof = key_owner_proof.decode()?;
			Grandpa::submit_unsigned_equivocation_report(equivocation_proof, key_owner_proof)
		}

		fn generate_key_ownership_proof(
			_set_id: sp_consensus_grandpa::SetId,
			authority_id: GrandpaId,
		) -> Option<sp_consensus_grandpa::OpaqueKeyOwnershipProof> {
			use codec::Encode;
			use frame_support::traits::KeyOwnerProofSystem;
			// Proven against the historical record of the sessions kept (a week of real ones).
			crate::Historical::prove((sp_consensus_grandpa::KEY_TYPE, authority_id))
				.map(|p| p.encode())
				.map(sp_consensus_grandpa::OpaqueKeyOwnershipProof::new)
		}
	}

	impl frame_system_rpc_runtime_api::AccountNonceApi<Block, AccountId, Nonce> for Runtime {
		fn account_nonce(account: AccountId) -> Nonce {
			System::account_nonce(account)
		}
	}

	impl pallet_transaction_payment_rpc_runtime_api::TransactionPaymentApi<Block, Balance> for Runtime {
		fn query_info(
			uxt: <Block as BlockT>::Extrinsic,
			len: u32,
		) -> pallet_transaction_payment_rpc_runtime_api::RuntimeDispatchInfo<Balance> {
			TransactionPayment::query_info(uxt, len)
		}
		fn query_fee_details(
			uxt: <Block as BlockT>::Extrinsic,
			len: u32,
		) -> pallet_transaction_payment::FeeDetails<Balance> {
			TransactionPayment::query_fee_details(uxt, len)
		}
		fn query_weight_to_fee(weight: Weight) -> Balance {
			TransactionPayment::weight_to_fee(weight)
		}
		fn query_length_to_fee(length: u32) -> Balance {
			TransactionPayment::length_to_fee(length)
		}
	}

	impl pallet_transaction_payment_rpc_runtime_api::TransactionPaymentCallApi<Block, Balance, RuntimeCall>
		for Runtime
	{
		fn query_call_info(
			call: RuntimeCall,
			len: u32,
		) -> pallet_transaction_payment::RuntimeDispatchInfo<Balance> {
			TransactionPayment::query_call_info(call, len)
		}
		fn query_call_fee_details(
			call: RuntimeCall,
			len: u32,
		) -> pallet_transaction_payment::FeeDetails<Balance> {
			TransactionPayment::query_call_fee_details(call, len)
		}
		fn query_weight_to_fee(weight: Weight) -> Balance {
			TransactionPayment::weight_to_fee(weight)
		}
		fn query_length_to_fee(length: u32) -> Balance {
			TransactionPayment::length_to_fee(length)
		}
	}

	#[api_version(2)]
	impl pallet_datanets_runtime_api::DatanetsApi<
		Block,
		AccountId,
		pallet_datanets::DatanetOf<Runtime>,
		pallet_datanets::ContributionOf<Runtime>,
		BlockNumber,
	> for Runtime {
		fn datanet(id: pallet_datanets::DatanetId) -> Option<pallet_datanets::DatanetOf<Runtime>> {
			pallet_datanets::Datanets::<Runtime>::get(id)
		}
		fn contribution(id: pallet_datanets::ContributionId) -> Option<pallet_datanets::ContributionOf<Runtime>> {
			pallet_datanets::Contributions::<Runtime>::get(id)
		}
		fn contributions_of_datanet(
			datanet: pallet_datanets::DatanetId,
			after: Option<pallet_datanets::ContributionId>,
			limit: u32,
		) -> Vec<(pallet_datanets::ContributionId, pallet_datanets::ContributionOf<Runtime>)> {
			Datanets::contributions_of_datanet(datanet, after, limit)
		}
		fn contributions_of_account(
			who: AccountId,
			after: Option<pallet_datanets::ContributionId>,
			limit: u32,
		) -> Vec<(pallet_datanets::ContributionId, pallet_datanets::ContributionOf<Runtime>)> {
			Datanets::contributions_of_account(&who, after, limit)
		}
		fn snapshot(
			datanet: pallet_datanets::DatanetId,
			version: pallet_datanets::SnapshotVersion,
		) -> Option<pallet_datanets::SnapshotInfo<BlockNumber>> {
			pallet_datanets::Snapshots::<Runtime>::get(datanet, version)
		}
		fn snapshot_leaves(
			datanet: pallet_datanets::DatanetId,
			version: pallet_datanets::SnapshotVersion,
		) -> Option<Vec<pallet_datanets::Leaf>> {
			Datanets::snapshot_leaves(datanet, version)
		}
	}

	impl pallet_models_runtime_api::ModelsApi<
		Block,
		AccountId,
		pallet_models::ModelInfo<Runtime>,
		pallet_models::VersionInfo<Runtime>,
	> for Runtime {
		fn model(id: pallet_models::ModelId) -> Option<(
			pallet_models::ModelInfo<Runtime>,
			Vec<(pallet_models::ModelVersion, pallet_models::VersionInfo<Runtime>)>,
		)> {
			Models::model_with_versions(id)
		}
		fn by_weights_hash(hash: sp_core::H256) -> Option<(pallet_models::ModelId, pallet_models::ModelVersion)> {
			pallet_models::ByWeightsHash::<Runtime>::get(hash)
		}
		fn models_of_owner(owner: AccountId, after: Option<pallet_models::ModelId>, limit: u32) -> Vec<pallet_models::ModelId> {
			Models::models_of_owner(&owner, after, limit)
		}
		fn adapters_of_base(base: pallet_models::ModelId, after: Option<pallet_models::ModelId>, limit: u32) -> Vec<pallet_models::ModelId> {
			Models::adapters_of_base(base, after, limit)
		}
		fn models_of_datanet(datanet: pallet_models::DatanetId, after: Option<pallet_models::ModelId>, limit: u32) -> Vec<pallet_models::ModelId> {
			Models::models_of_datanet(datanet, after, limit)
		}
	}

	#[api_version(4)]
	impl pallet_attribution_runtime_api::AttributionApi<
		Block,
		AccountId,
		Balance,
		BlockNumber,
		pallet_attribution::ReceiptRecord<Runtime>,
	> for Runtime {
		fn receipt(id: pallet_attribution::RequestId) -> Option<pallet_attribution::ReceiptRecord<Runtime>> {
			pallet_attribution::Receipts::<Runtime>::get(id)
		}
		fn earnings(who: AccountId) -> (Balance, Balance, Balance, Balance) {
			let e = pallet_attribution::AccountEarnings::<Runtime>::get(&who);
			let unclaimed = pallet_attribution::Rewards::<Runtime>::get(&who)
				.saturating_add(pallet_open_staking::StakingRewards::<Runtime>::get(&who));
			(e.accrued, e.claimed, unclaimed, e.pending)
		}
		fn contribution_earnings(c: pallet_attribution::ContributionRef) -> Balance {
			pallet_attribution::ContributionEarnings::<Runtime>::get(c)
		}
		fn datanet_earnings(datanet: openledger_primitives::DatanetId) -> Balance {
			pallet_attribution::DatanetEarnings::<Runtime>::get(datanet)
		}
		fn model_usage(model: openledger_primitives::ModelId) -> (u64, u64, Balance) {
			let u = pallet_attribution::ModelUsage::<Runtime>::get(model);
			(u.requests, u.tokens, u.revenue)
		}
		fn escrow(who: AccountId) -> (Balance, Option<(Balance, BlockNumber)>) {
			(
				Attribution::escrow_of(&who),
				pallet_attribution::Withdrawals::<Runtime>::get(&who).map(|w| (w.amount, w.unlock_at)),
			)
		}
		fn disputes(
			worker: AccountId,
		) -> alloc::vec::Vec<(pallet_attribution::RequestId, pallet_attribution::DisputeKind, pallet_attribution_runtime_api::DisputeV1<AccountId, BlockNumber>)> {
			pallet_attribution::Disputes::<Runtime>::iter_prefix((&worker,))
				.map(|((id, c), d)| (id, c, pallet_attribution_runtime_api::DisputeV1 { challenger: d.challenger, deadline: d.deadline }))
				.collect()
		}
		fn open_disputes(
			worker: AccountId,
		) -> alloc::vec::Vec<(pallet_attribution::RequestId, pallet_attribution::DisputeKind, pallet_attribution::Dispute<AccountId, BlockNumber, Balance>)> {
			pallet_attribution::Disputes::<Runtime>::iter_prefix((&worker,)).map(|((id, c), d)| (id, c, d)).collect()
		}
	}

	impl openledger_primitives::OpenLedgerApi<Block> for Runtime {
		fn token_info() -> TokenInfo {
			token_info()
		}
	}

	#[cfg(feature = "runtime-benchmarks")]
	impl frame_benchmarking::Benchmark<Block> for Runtime {
		fn benchmark_metadata(extra: bool) -> (
			Vec<frame_benchmarking::BenchmarkList>,
			Vec<frame_support::traits::StorageInfo>,
		) {
			use frame_benchmarking::{baseline, BenchmarkList};
			use frame_support::traits::StorageInfoTrait;
			use frame_system_benchmarking::Pallet as SystemBench;
			use frame_system_benchmarking::extensions::Pallet as SystemExtensionsBench;
			use baseline::Pallet as BaselineBench;
			use super::*;

			let mut list = Vec::<BenchmarkList>::new();
			list_benchmarks!(list, extra);

			let storage_info = AllPalletsWithSystem::storage_info();

			(list, storage_info)
		}

		#[allow(non_local_definitions)]
		fn dispatch_benchmark(
			config: frame_benchmarking::BenchmarkConfig
		) -> Result<Vec<frame_benchmarking::BenchmarkBatch>, alloc::string::String> {
			use frame_benchmarking::{baseline, BenchmarkBatch};
			use sp_storage::TrackedStorageKey;
			use frame_system_benchmarking::Pallet as SystemBench;
			use frame_system_benchmarking::extensions::Pallet as SystemExtensionsBench;
			use baseline::Pallet as BaselineBench;
			use super::*;

			impl frame_system_benchmarking::Config for Runtime {}
			impl baseline::Config for Runtime {}

			use frame_support::traits::WhitelistedStorageKeys;
			let whitelist: Vec<TrackedStorageKey> = AllPalletsWithSystem::whitelisted_storage_keys();

			let mut batches = Vec::<BenchmarkBatch>::new();
			let params = (&config, &whitelist);
			add_benchmarks!(params, batches);

			Ok(batches)
		}
	}

	#[cfg(feature = "try-runtime")]
	impl frame_try_runtime::TryRuntime<Block> for Runtime {
		fn on_runtime_upgrade(checks: frame_try_runtime::UpgradeCheckSelect) -> (Weight, Weight) {
			// A failing pre/post-upgrade check must stop here with a backtrace.
			let weight = Executive::try_runtime_upgrade(checks).unwrap();
			// The runtime-wide invariants (OPEN supply, every pallet's equalities) after it too.
			if checks.try_state() {
				crate::invariants::check().expect("runtime invariants after the upgrade");
			}
			(weight, super::configs::RuntimeBlockWeights::get().max_block)
		}

		fn execute_block(
			block: Block,
			state_root_check: bool,
			signature_check: bool,
			select: frame_try_runtime::TryStateSelect
		) -> Weight {
			let run_checks = !matches!(select, frame_try_runtime::TryStateSelect::None);
			let weight = Executive::try_execute_block(block, state_root_check, signature_check, select)
				.expect("execute-block failed");
			// Each pallet's `try_state` ran above; the runtime-wide invariants (total issuance =
			// sum of balances, no account below the existential deposit) run here.
			if run_checks {
				crate::invariants::check().expect("runtime invariants after the block");
			}
			weight
		}
	}

	impl sp_genesis_builder::GenesisBuilder<Block> for Runtime {
		fn build_state(config: Vec<u8>) -> sp_genesis_builder::Result {
			build_state::<RuntimeGenesisConfig>(config)
		}

		fn get_preset(id: &Option<sp_genesis_builder::PresetId>) -> Option<Vec<u8>> {
			get_preset::<RuntimeGenesisConfig>(id, crate::genesis_config_presets::get_preset)
		}

		fn preset_names() -> Vec<sp_genesis_builder::PresetId> {
			crate::genesis_config_presets::preset_names()
		}
	}
}
