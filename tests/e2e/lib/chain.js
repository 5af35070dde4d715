// polkadot-js helpers shared by the tests. No custom type definitions anywhere: the node's
// metadata is all polkadot-js needs.
import { ApiPromise, WsProvider, Keyring } from '@polkadot/api';
import { stringToU8a, u8aConcat } from '@polkadot/util';
import { encodeAddress } from '@polkadot/util-crypto';

export const OPEN = 10n ** 18n;
export const TOTAL_SUPPLY = 1_000_000_000n * OPEN;
export const EXISTENTIAL_DEPOSIT = OPEN / 1000n;

export async function connect(url) {
  return ApiPromise.create({ provider: new WsProvider(url, 1000), noInitWarn: true, throwOnConnect: true });
}

export function devKeys() {
  const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
  const k = (uri) => keyring.addFromUri(uri);
  return { keyring, alice: k('//Alice'), bob: k('//Bob'), charlie: k('//Charlie'), k };
}

/** The account of a FRAME `PalletId` (`modl` ++ id, zero padded). */
export function palletAccount(id) {
  return encodeAddress(u8aConcat(stringToU8a('modl'), stringToU8a(id), new Uint8Array(32 - 4 - id.length)), 42);
}
export const TREASURY = palletAccount('ol/trsry');

export async function free(api, who) {
  const { data } = await api.query.system.account(who);
  return data.free.toBigInt();
}

/**
 * Signs and sends `tx`, resolves when it is finalized with its events and dispatch error
 * (decoded), rejects if the pool refuses it.
 */
export function send(api, tx, signer) {
  return new Promise((resolve, reject) => {
    let unsub;
    tx.signAndSend(signer, (result) => {
      const { status, events, dispatchError } = result;
      if (status.isInvalid || status.isDropped || status.isUsurped) {
        unsub?.();
        reject(new Error(`transaction ${status.type}`));
      }
      if (status.isFinalized) {
        unsub?.();
        let error = null;
        if (dispatchError) {
          if (dispatchError.isModule) {
            const m = api.registry.findMetaError(dispatchError.asModule);
            error = `${m.section}.${m.name}`;
          } else {
            error = dispatchError.toString();
          }
        }
        resolve({ blockHash: status.asFinalized, events, error });
      }
    }).then((u) => { unsub = u; }, reject);
  });
}

export function findEvent(events, section, method) {
  return events.map((r) => r.event).find((e) => e.section === section && e.method === method);
}
