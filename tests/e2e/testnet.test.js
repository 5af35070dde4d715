// Launching a testnet as the README says: validators generate their keys with the node binary,
// `scripts/testnet-spec.py` fills `chain-spec/testnet-template.json` (whose placeholders keep it
// from loading), the raw spec is built, keys are inserted, and the two validators produce and
// finalize blocks on a chain with real governance timing and no sudo.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NODE_BIN, Node, freePort, rpc, tempDir, waitFor } from './lib/node.js';
import { connect } from './lib/chain.js';

const ROOT = join(import.meta.dirname, '..', '..');
const nodes = [];
after(async () => {
  for (const n of nodes) await n.stop();
  for (const n of nodes) n.cleanup();
});

const node = (...args) => execFileSync(NODE_BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
const generate = (scheme) => JSON.parse(node('key', 'generate', '--scheme', scheme, '--output-type', 'json'));

test('the template does not load until its placeholders are filled', () => {
  assert.throws(() => node('build-spec', '--chain', join(ROOT, 'chain-spec', 'testnet-template.json'), '--raw'));
  const template = readFileSync(join(ROOT, 'chain-spec', 'testnet-template.json'), 'utf8');
  for (const placeholder of ['<validator-1 account>', '<validator-1 aura key (sr25519)>', '<boot node peer id>', '<telemetry host>']) {
    assert.ok(template.includes(placeholder), placeholder);
  }
});

test('two validators launch a testnet from the filled template; it produces and finalizes blocks', async () => {
  const dir = tempDir('ol-testnet-');
  const validators = [0, 1].map((i) => {
    const account = generate('sr25519');
    const aura = generate('sr25519');
    const grandpa = generate('ed25519');
    const nodeKeyFile = join(dir, `node-key-${i}`);
    node('key', 'generate-node-key', '--file', nodeKeyFile);
    const peerId = node('key', 'inspect-node-key', '--file', nodeKeyFile).trim();
    return { account, aura, grandpa, nodeKeyFile, peerId, basePath: join(dir, `v${i}`) };
  });
  const operator = generate('sr25519');
  const plain = join(dir, 'testnet.json');
  const raw = join(dir, 'testnet-raw.json');
  const p2pPort = await freePort();
  const script = join(ROOT, 'scripts', 'testnet-spec.py');
  const fill = (extra) => execFileSync('python3', [script, '--template', join(ROOT, 'chain-spec', 'testnet-template.json'),
    '--name', 'OpenLedger Test Launch', '--id', 'openledger_launch',
    ...validators.flatMap((v) => ['--validator', `${v.account.ss58Address}:${v.aura.ss58Address}:${v.grandpa.ss58Address}`]),
    '--operator', operator.ss58Address,
    '--bootnode', `/ip4/127.0.0.1/tcp/${p2pPort}/p2p/${validators[0].peerId}`, ...extra], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  // Development keys and malformed addresses are refused.
  assert.throws(() => fill(['--out', plain, '--operator', '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY']), /development key/);
  // The last character changed (to another: an address may already end in 'x').
  const mangled = operator.ss58Address.slice(0, -1) + (operator.ss58Address.endsWith('x') ? 'y' : 'x');
  assert.throws(() => fill(['--out', plain, '--operator', mangled]), /checksum|SS58/);
  fill(['--out', plain, '--telemetry', 'wss://telemetry.invalid/submit/']);
  writeFileSync(raw, node('build-spec', '--chain', plain, '--raw', '--disable-default-bootnode'));

  // Each validator inserts its session keys into its node's keystore.
  for (const v of validators) {
    node('key', 'insert', '--base-path', v.basePath, '--chain', raw, '--scheme', 'sr25519', '--suri', v.aura.secretPhrase, '--key-type', 'aura');
    node('key', 'insert', '--base-path', v.basePath, '--chain', raw, '--scheme', 'ed25519', '--suri', v.grandpa.secretPhrase, '--key-type', 'gran');
  }
  const started = [];
  for (const [i, v] of validators.entries()) {
    const n = new Node({
      name: `validator-${i}`,
      basePath: v.basePath,
      args: ['--chain', raw, '--validator', '--node-key-file', v.nodeKeyFile],
    });
    if (i === 0) n.p2pPort = p2pPort;
    nodes.push(n);
    await n.start();
    started.push(n);
  }
  const api = await connect(started[1].wsUrl);
  try {
    // Genesis is the filled one: these validators, real timing, no sudo, the supply in full.
    assert.deepEqual((await api.query.validatorSet.validators()).map((a) => a.toString()), validators.map((v) => v.account.ss58Address));
    assert.equal((await api.query.origins.timing()).toString(), 'Real');
    assert.ok((await api.query.sudo.key()).isNone);
    assert.equal((await api.query.balances.totalIssuance()).toBigInt(), 1_000_000_000n * 10n ** 18n);
    assert.equal((await api.query.system.account(operator.ss58Address)).data.free.toBigInt(), 200_000_000n * 10n ** 18n);
    // The second validator found the first through the spec's boot node, and both finalize.
    await waitFor('a finalized block', async () => {
      const head = await rpc(started[1].rpcPort, 'chain_getFinalizedHead');
      return parseInt((await rpc(started[1].rpcPort, 'chain_getHeader', [head])).number, 16) >= 2;
    }, 120_000, 1000);
  } finally {
    await api.disconnect();
  }
});
