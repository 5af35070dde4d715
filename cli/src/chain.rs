//! A small client of the OpenLedger node: signs extrinsics with the runtime's own types, submits
//! them over JSON-RPC (`author_submitAndWatchExtrinsic`), follows them into a block and reads
//! their events. No metadata download or code generation: the runtime crate *is* the schema.

use anyhow::{anyhow, bail, Context, Result};
use codec::{Decode, Encode};
use jsonrpsee::{
	core::client::{ClientT, Subscription, SubscriptionClientT},
	rpc_params,
	ws_client::{WsClient, WsClientBuilder},
};
use openledger_runtime::{
	AccountId, Hash, Nonce, RuntimeCall, RuntimeError, RuntimeEvent, SignedPayload,
	TxExtension, UncheckedExtrinsic,
};
use sp_core::{crypto::Ss58Codec, sr25519, Pair};
use sp_runtime::{
	generic::Era,
	traits::{BlakeTwo256, Hash as _, IdentifyAccount},
	DispatchError, MultiAddress, MultiSignature, MultiSigner,
};
use std::time::Duration;

/// An event of the extrinsic's block, with its phase.
pub type EventRecord = frame_system::EventRecord<RuntimeEvent, Hash>;

/// A signing key from a secret URI (`//Alice`, a mnemonic, `0x` seed, with `//derivation`).
pub fn keypair(suri: &str) -> Result<sr25519::Pair> {
	sr25519::Pair::from_string(suri, None).map_err(|e| anyhow!("bad secret URI: {e:?}"))
}

/// The account of a key.
pub fn account_of(pair: &sr25519::Pair) -> AccountId {
	MultiSigner::from(pair.public()).into_account()
}

/// An account from its SS58 address.
pub fn parse_account(s: &str) -> Result<AccountId> {
	AccountId::from_ss58check(s).map_err(|e| anyhow!("bad account {s}: {e:?}"))
}

/// The outcome of an included extrinsic.
#[derive(Debug)]
pub struct Included {
	pub block: Hash,
	pub events: Vec<RuntimeEvent>,
}

/// A connection to a node.
pub struct Chain {
	client: WsClient,
	genesis: Hash,
	spec_version: u32,
	tx_version: u32,
}

impl Chain {
	pub async fn connect(url: &str) -> Result<Self> {
		let client = WsClientBuilder::default()
			.request_timeout(Duration::from_secs(120))
			.max_concurrent_requests(4096)
			.max_buffer_capacity_per_subscription(4096)
			.build(url)
			.await
			.with_context(|| format!("cannot connect to {url}"))?;
		let genesis: Hash = client.request("chain_getBlockHash", rpc_params![0]).await?;
		let version: serde_json::Value = client.request("state_getRuntimeVersion", rpc_params![]).await?;
		let spec_version = version["specVersion"].as_u64().context("specVersion")? as u32;
		let tx_version = version["transactionVersion"].as_u64().context("transactionVersion")? as u32;
		Ok(Self { client, genesis, spec_version, tx_version })
	}

	/// The chain's genesis hash (vouchers name it).
	pub fn genesis(&self) -> Hash {
		self.genesis
	}

	/// The best block's number.
	pub async fn best_number(&self) -> Result<u32> {
		let h: serde_json::Value = self.rpc("chain_getHeader", rpc_params![]).await?;
		let n = h["number"].as_str().context("a header number")?;
		u32::from_str_radix(n.trim_start_matches("0x"), 16).context("a header number")
	}

	/// The free balance of `who` at the best block.
	pub async fn free_balance(&self, who: &AccountId) -> Result<u128> {
		let mut key = frame_support::storage::storage_prefix(b"System", b"Account").to_vec();
		let encoded = who.encode();
		key.extend_from_slice(&sp_core::hashing::blake2_128(&encoded));
		key.extend_from_slice(&encoded);
		let raw: Option<String> = self.rpc("state_getStorage", rpc_params![format!("0x{}", hex::encode(key))]).await?;
		let Some(raw) = raw else { return Ok(0) };
		let info = frame_system::AccountInfo::<Nonce, pallet_balances::AccountData<u128>>::decode(
			&mut &hex::decode(raw.trim_start_matches("0x"))?[..],
		)?;
		Ok(info.data.free)
	}

	/// Raw JSON-RPC call.
	pub async fn rpc<R: serde::de::DeserializeOwned>(&self, method: &str, params: jsonrpsee::core::params::ArrayParams) -> Result<R> {
		self.client.request(method, params).await.with_context(|| format!("{method} failed"))
	}

	/// The next nonce of `who`, counting transactions in the pool.
	pub async fn next_nonce(&self, who: &AccountId) -> Result<Nonce> {
		self.rpc("system_accountNextIndex", rpc_params![who.to_ss58check()]).await
	}

	/// Signs `call` with `pair` at `nonce` (immortal era, no tip).
	pub fn sign(&self, pair: &sr25519::Pair, call: RuntimeCall, nonce: Nonce) -> UncheckedExtrinsic {
		let tx_ext: TxExtension = (
			frame_system::CheckNonZeroSender::new(),
			frame_system::CheckSpecVersion::new(),
			frame_system::CheckTxVersion::new(),
			frame_system::CheckGenesis::new(),
			frame_system::CheckEra::from(Era::Immortal),
			frame_system::CheckNonce::from(nonce),
			frame_system::CheckWeight::new(),
			pallet_transaction_payment::ChargeTransactionPayment::from(0),
			frame_metadata_hash_extension::CheckMetadataHash::new(false),
			frame_system::WeightReclaim::new(),
		);
		let implicit = ((), self.spec_version, self.tx_version, self.genesis, self.genesis, (), (), (), None, ());
		let payload = SignedPayload::from_raw(call.clone(), tx_ext.clone(), implicit);
		let signature = payload.using_encoded(|bytes| pair.sign(bytes));
		UncheckedExtrinsic::new_signed(
			call,
			MultiAddress::Id(account_of(pair)),
			MultiSignature::Sr25519(signature),
			tx_ext,
		)
	}

	/// Submits `xt` and waits until it is in a block; returns its events, or the dispatch error
	/// (named, e.g. `Datanets(NotCurator)`) if it failed.
	pub async fn submit(&self, xt: &UncheckedExtrinsic) -> Result<Included> {
		let bytes = xt.encode();
		let xt_hash = BlakeTwo256::hash(&bytes);
		let mut sub: Subscription<serde_json::Value> = self
			.client
			.subscribe(
				"author_submitAndWatchExtrinsic",
				rpc_params![format!("0x{}", hex::encode(&bytes))],
				"author_unwatchExtrinsic",
			)
			.await
			.context("the node refused the transaction")?;
		let block = loop {
			let status = sub.next().await.ok_or_else(|| anyhow!("subscription closed"))??;
			if let Some(h) = status.get("inBlock").or_else(|| status.get("finalized")) {
				break serde_json::from_value::<Hash>(h.clone())?;
			}
			match status.as_str() {
				Some("ready") | Some("future") => continue,
				Some(other) => bail!("transaction {other}"),
				None if status.get("broadcast").is_some() || status.get("retracted").is_some() => continue,
				None => bail!("transaction {status}"),
			}
		};
		let _ = sub.unsubscribe().await;
		let events = self.extrinsic_events(block, xt_hash).await?;
		for e in &events {
			if let RuntimeEvent::System(frame_system::Event::ExtrinsicFailed { dispatch_error, .. }) = e {
				bail!("{}", describe(*dispatch_error));
			}
		}
		Ok(Included { block, events })
	}

	/// Events of the extrinsic with hash `xt_hash` in `block`.
	async fn extrinsic_events(&self, block: Hash, xt_hash: Hash) -> Result<Vec<RuntimeEvent>> {
		let signed: serde_json::Value = self.rpc("chain_getBlock", rpc_params![block]).await?;
		let xts = signed["block"]["extrinsics"].as_array().context("block without extrinsics")?;
		let index = xts
			.iter()
			.position(|x| {
				x.as_str()
					.and_then(|s| hex::decode(s.trim_start_matches("0x")).ok())
					.is_some_and(|b| BlakeTwo256::hash(&b) == xt_hash)
			})
			.context("extrinsic not found in its block")? as u32;
		let key = format!("0x{}", hex::encode(frame_support::storage::storage_prefix(b"System", b"Events")));
		let raw: Option<String> = self.rpc("state_getStorage", rpc_params![key, block]).await?;
		let raw = hex::decode(raw.unwrap_or_default().trim_start_matches("0x"))?;
		let records = Vec::<EventRecord>::decode(&mut &raw[..]).context("decoding events")?;
		Ok(records
			.into_iter()
			.filter(|r| r.phase == frame_system::Phase::ApplyExtrinsic(index))
			.map(|r| r.event)
			.collect())
	}
}

/// A dispatch error by name where the runtime knows it.
pub fn describe(e: DispatchError) -> String {
	match RuntimeError::from_dispatch_error(e) {
		Some(named) => format!("{named:?}"),
		None => format!("{e:?}"),
	}
}
