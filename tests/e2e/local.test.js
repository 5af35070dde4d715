// Real consensus: Aura authoring with --dev, and a two-validator --chain local that finalizes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Node, rpc, tempDir, waitFor } from './lib/node.js';

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
  // Both validators authored: blocks alternate between Aura authorities.
  assert.ok((await number(alice.rpcPort, 'chain_getFinalizedHead')) >= 1);
});

test('--dev without --sealing authors blocks with Aura', async () => {
  const dev = new Node({ name: 'dev-aura', basePath: tempDir('ol-dev-aura-'), args: ['--dev'] });
  nodes.push(dev);
  await dev.start();
  const best = await waitFor('two Aura blocks', async () => (await number(dev.rpcPort, 'chain_getBlockHash')) >= 2, 60_000, 1000);
  assert.ok(best);
});
