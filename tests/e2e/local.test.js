// Real consensus: Aura authoring with --dev, and a two-validator --chain local that finalizes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { u8aToHex } from '@polkadot/util';
import { Node, rpc, tempDir, waitFor } from './lib/node.js';
import { connect, devKeys } from './lib/chain.js';

const nodes = [];
after(async () => {
  for (const n of nodes) await n.stop();
  for (const n of nodes) n.cleanup();
});

const number = async (port, hashMethod) => {
  const hash = await rpc(port, hashMethod);
  return parseInt((await rpc(port, 'chain_getHeader', [hash])).number, 16);
};

test('--chain local with Alice and Bob produces and finalizes blocks', async () => {
  const nodeKey = () => randomBytes(32).toString('hex');
  const alice = new Node({ name: 'alice', basePath: tempDir('ol-alice-'), args: ['--chain', 'local', '--alice', '--node-key', nodeKey()] });
  nodes.push(alice);
  await alice.start();
  const bob = new Node({
    name: 'bob',
    basePath: tempDir('ol-bob-'),
    args: ['--chain', 'local', '--bob', '--node-key', nodeKey(), '--bootnodes', await alice.multiaddr()],
  });
  nodes.push(bob);
  await bob.start();

  await waitFor('peers', async () => (await rpc(alice.rpcPort, 'system_health')).peers >= 1, 60_000);
  const finalized = await waitFor(
    'a finalized block',
    async () => { const n = await number(bob.rpcPort, 'chain_getFinalizedHead'); return n >= 1 && n; },
    120_000,
    1000,
  );
  assert.ok(finalized >= 1);
  // Both validators authored: each block's Aura slot (its pre-runtime digest) names the author
  // among the Aura authorities, and both Alice and Bob appear.
  const api = await connect(bob.wsUrl);
  try {
    const { alice: aliceKey, bob: bobKey } = devKeys();
    const authorities = (await api.query.aura.authorities()).map((a) => a.toHex());
    assert.deepEqual(new Set(authorities), new Set([u8aToHex(aliceKey.publicKey), u8aToHex(bobKey.publicKey)]));
    const authors = new Set();
    await waitFor('blocks by both validators', async () => {
      const head = await number(bob.rpcPort, 'chain_getBlockHash');
      for (let n = 1; n <= head; n++) {
        const header = await api.rpc.chain.getHeader(await api.rpc.chain.getBlockHash(n));
        const aura = header.digest.logs.find((l) => l.isPreRuntime && l.asPreRuntime[0].toString() === 'aura');
        assert.ok(aura, `block ${n} has an Aura slot`);
        const slot = api.createType('u64', aura.asPreRuntime[1]).toBigInt();
        authors.add(authorities[Number(slot % BigInt(authorities.length))]);
      }
      return authors.size === 2;
    }, 120_000, 2000);
    assert.equal(authors.size, 2);
  } finally {
    await api.disconnect();
  }
});

test('--dev without --sealing authors blocks with Aura', async () => {
  const dev = new Node({ name: 'dev-aura', basePath: tempDir('ol-dev-aura-'), args: ['--dev'] });
  nodes.push(dev);
  await dev.start();
  const best = await waitFor('two Aura blocks', async () => (await number(dev.rpcPort, 'chain_getBlockHash')) >= 2, 60_000, 1000);
  assert.ok(best);
});
