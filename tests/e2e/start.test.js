// The README's start command, `scripts/start.sh`, as a user runs it (setup and build skipped with
// `--no-build`: scripts/test.sh has done them), with its state in a folder and on ports of its
// own: the chain, the worker billing on chain as Charlie's bonded worker with its ModelFactory
// on, and the Studio in front of it; a paid request settles; SIGTERM stops all three; started
// again on the same state it registers nothing twice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { freePort, rpc, tempDir } from './lib/node.js';
import { connect, devKeys, send, OPEN, signVoucher, completionRequestHash, termsOf } from './lib/chain.js';

const skip = process.env.NODE_BIN && process.env.CLI_BIN && process.env.WORKER_BIN ? false : 'NODE_BIN, CLI_BIN and WORKER_BIN must be set (scripts/test.sh sets them)';
const SCRIPT = resolve('../../scripts/start.sh');
const { charlie, k } = devKeys();
const eve = k('//Eve');
let dir; let ports; let system; let api;

/** Runs start.sh as `system` (stopped by `after` whatever happens); resolves once it prints the
 *  Studio's address. */
async function startSystem() {
  const env = {
    ...process.env, OPENLEDGER_RUN_DIR: dir, OPENLEDGER_RPC_PORT: String(ports.rpc), OPENLEDGER_WORKER_PORT: String(ports.worker),
    OPENLEDGER_STUDIO_PORT: String(ports.studio), OPENLEDGER_PROMETHEUS_PORT: String(ports.prometheus), OPENLEDGER_P2P_PORT: String(ports.p2p),
  };
  // Its own process group, as a terminal's foreground job is (Ctrl-C signals the whole group).
  const proc = spawn('bash', [SCRIPT, '--no-build', '--sealing', 'instant'], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const s = { proc, out: '' };
  system = s;
  s.exited = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
  proc.stdout.on('data', (d) => { s.out += d; });
  proc.stderr.on('data', (d) => { s.out += d; });
  const deadline = Date.now() + 400_000;
  while (!/OpenLedger Studio: http:\/\/127\.0\.0\.1:\d+\n/.test(s.out)) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`start.sh did not come up:\n${s.out}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Stops start.sh: SIGTERM to the script, or Ctrl-C (SIGINT to its whole process group);
 *  resolves to how it ended. */
async function stopSystem(signal = 'SIGTERM') {
  if (!system || system.proc.exitCode !== null || system.proc.signalCode !== null) return system?.exited;
  if (signal === 'SIGINT') process.kill(-system.proc.pid, 'SIGINT');
  else system.proc.kill(signal);
  // (start.sh itself kills what it started after 30 s; this is for start.sh.)
  const timer = setTimeout(() => process.kill(-system.proc.pid, 'SIGKILL'), 60_000);
  const how = await system.exited;
  clearTimeout(timer);
  return how;
}

const up = async (url) => fetch(url).then(() => true, () => false);

before(async () => {
  if (skip) return;
  dir = tempDir('ol-start-');
  ports = { rpc: await freePort(), worker: await freePort(), studio: await freePort(), prometheus: await freePort(), p2p: await freePort() };
  await startSystem();
  api = await connect(`ws://127.0.0.1:${ports.rpc}`);
});

after(async () => {
  await api?.disconnect();
  await stopSystem();
});

let baseModel; let paidReceipt;
test('start.sh brings up the chain, a worker billing on chain with its factory, and the Studio', { skip }, async () => {
  assert.match(system.out, new RegExp(`OpenLedger Studio: http://127\\.0\\.0\\.1:${ports.studio}\\n`));
  // The admin token is in a file only its owner reads, and never printed.
  const tokenFile = join(dir, 'worker-admin-token');
  assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
  const token = readFileSync(tokenFile, 'utf8').trim();
  assert.ok(token.length >= 32);
  assert.ok(!system.out.includes(token), 'the token is not printed');
  for (const log of ['node.log', 'worker.log', 'studio.log']) assert.ok(!readFileSync(join(dir, log), 'utf8').includes(token), `not in ${log}`);
  // The demo base model is registered and priced on chain, and served by Charlie's bonded worker.
  const models = await (await fetch(`http://127.0.0.1:${ports.worker}/v1/models`)).json();
  const card = models.data.find((m) => m.id === 'demo-base');
  assert.ok(card?.openledger, JSON.stringify(models));
  baseModel = card.openledger.model;
  assert.equal(card.openledger.worker, charlie.address);
  const m = await rpc(ports.rpc, 'models_getModel', [baseModel]);
  assert.equal(m.name, 'demo-base');
  assert.equal(BigInt(m.pricePerRequest), OPEN / 1000n);
  assert.ok((await api.query.openStaking.workers(charlie.address)).unwrap().models.some((x) => x.toNumber() === baseModel));
  // A paid request: Eve's voucher, the receipt settles on chain.
  assert.equal((await send(api, api.tx.attribution.depositEscrow(OPEN), eve)).error, null);
  const best = (await api.rpc.chain.getHeader()).number.toNumber();
  const prompt = 'The court held that';
  const { header, requestId } = signVoucher(api, eve, {
    worker: charlie.address, model: baseModel, modelVersion: card.openledger.version, maxFee: OPEN / 10n, terms: await termsOf(api, baseModel),
    nonce: 1, expiresAt: best + 100, requestHash: completionRequestHash(api, prompt),
  });
  const ask = (headers) => fetch(`http://127.0.0.1:${ports.worker}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ model: 'demo-base', prompt, max_tokens: 8, temperature: 0 }),
  });
  const paid = await ask(header);
  const body = await paid.json();
  assert.equal(paid.status, 200, JSON.stringify(body));
  assert.equal(body.receipt.id, requestId);
  let settled = null;
  for (let i = 0; i < 120 && !settled; i++) {
    settled = await rpc(ports.rpc, 'attribution_getReceipt', [requestId]).catch(() => null);
    if (!settled) await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(settled?.payer, eve.address, 'the receipt settled on chain');
  assert.equal(settled.model, baseModel);
  paidReceipt = requestId;
  // Unpaid requests are served, unbilled.
  const free = await (await ask({})).json();
  assert.equal(free.receipt ?? null, null);
  assert.ok(free.choices[0].text.length > 0);
  // The factory answers through the Studio to the token, and only to it.
  const jobs = (t) => fetch(`http://127.0.0.1:${ports.studio}/api/worker/v1/factory/jobs`, { headers: { authorization: `Bearer ${t}` } });
  assert.equal((await jobs(token)).status, 200);
  assert.equal((await jobs(`${token.slice(0, -1)}x`)).status, 401);
  assert.ok((await fetch(`http://127.0.0.1:${ports.studio}/api/config`)).ok);
  // The node's peer-to-peer port listens on loopback only.
  const listen = await rpc(ports.rpc, 'system_localListenAddresses');
  assert.ok(listen.length > 0 && listen.every((a) => a.startsWith(`/ip4/127.0.0.1/tcp/${ports.p2p}/`)), JSON.stringify(listen));
});

test('SIGTERM stops all three; started again on the same state, nothing is registered twice; Ctrl-C stops it', { skip }, async () => {
  await api.disconnect();
  api = null;
  assert.equal((await stopSystem('SIGTERM')).code, 143);
  for (const url of [`http://127.0.0.1:${ports.rpc}`, `http://127.0.0.1:${ports.worker}/health`, `http://127.0.0.1:${ports.studio}/api/config`]) {
    assert.equal(await up(url), false, `${url} is down`);
  }
  await startSystem();
  // Another start while this one runs is refused: on its state folder (with other ports), or on
  // one of its ports (with another folder).
  const another = async (env) => {
    const p = spawn('bash', [SCRIPT, '--no-build', '--fresh'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    const code = await new Promise((res) => p.on('exit', res));
    return { code, err };
  };
  const sameDir = await another({ OPENLEDGER_RUN_DIR: dir, OPENLEDGER_RPC_PORT: String(await freePort()) });
  assert.equal(sameDir.code, 1);
  assert.match(sameDir.err, /another scripts\/start\.sh \(or the node, worker or Studio it started\) runs on /);
  const samePort = await another({ OPENLEDGER_RUN_DIR: tempDir('ol-start2-'), OPENLEDGER_RPC_PORT: String(ports.rpc) });
  assert.equal(samePort.code, 1);
  assert.match(samePort.err, new RegExp(`something already listens on 127\\.0\\.0\\.1:${ports.rpc}`));
  assert.doesNotMatch(system.out, /registering|bonding|updating/, 'nothing registered, bonded or updated again');
  api = await connect(`ws://127.0.0.1:${ports.rpc}`);
  assert.deepEqual((await api.query.models.models.keys()).map((key) => key.args[0].toNumber()), [baseModel]);
  assert.equal((await rpc(ports.rpc, 'attribution_getReceipt', [paidReceipt])).payer, eve.address, 'the chain was kept');
  const card = (await (await fetch(`http://127.0.0.1:${ports.worker}/v1/models`)).json()).data.find((m) => m.id === 'demo-base');
  assert.equal(card.openledger.model, baseModel);
  await api.disconnect();
  api = null;
  assert.equal((await stopSystem('SIGINT')).code, 130);
  for (const url of [`http://127.0.0.1:${ports.rpc}`, `http://127.0.0.1:${ports.worker}/health`, `http://127.0.0.1:${ports.studio}/api/config`]) {
    assert.equal(await up(url), false, `${url} is down after Ctrl-C`);
  }
});
