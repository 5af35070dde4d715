// The `openledger` CLI against the real node: a folder of records through the whole Datanet flow.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Node, rpc, tempDir } from './lib/node.js';
import { contentRoot } from './lib/evidence.js';

const run = promisify(execFile);
const CLI_BIN = process.env.CLI_BIN;
let node;
let work;

const cli = async (suri, ...args) => {
  const { stdout } = await run(CLI_BIN, ['--url', node.wsUrl, '--suri', suri, ...args], {
    env: { ...process.env, OPENLEDGER_STORE: join(work, 'store') },
    maxBuffer: 64 << 20,
  });
  return stdout;
};

before(async () => {
  if (!CLI_BIN) throw new Error('CLI_BIN is not set: run the tests through scripts/test.sh');
  work = tempDir('ol-cli-');
  node = new Node({ name: 'cli', basePath: join(work, 'chain'), args: ['--dev', '--sealing', 'instant'] });
  mkdirSync(node.basePath, { recursive: true });
  await node.start();
});

after(async () => {
  await node?.stop();
  node?.cleanup();
});

test('CLI: create, contribute a folder, curate, snapshot, prove, read back', async () => {
  assert.match(await cli('//Alice', 'datanet', 'create', '--name', 'support-chats', '--license', 'CC-BY-4.0', '--curated'), /created datanet 0/);
  assert.match(await cli('//Alice', 'datanet', 'add-curator', '0', '5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y'), /added curator/);

  const bobDir = join(work, 'bob');
  mkdirSync(join(bobDir, 'nested'), { recursive: true });
  const lines = Array.from({ length: 25 }, (_, i) => JSON.stringify({ q: `question ${i}`, a: `answer ${i}` }));
  writeFileSync(join(bobDir, 'chats.jsonl'), lines.join('\n') + '\n');
  writeFileSync(join(bobDir, 'nested', 'faq.txt'), 'How do I reset my password? Use the reset link.');
  const summary = JSON.parse(await cli('//Bob', 'contribute', '0', bobDir, '--batch', '10', '--json'));
  assert.equal(summary.contributions, 26);
  assert.ok(summary.contributionsPerSecond > 0);

  const daveDir = join(work, 'dave');
  mkdirSync(daveDir);
  writeFileSync(join(daveDir, 'spam.txt'), 'buy cheap tokens now');
  assert.match(await cli('//Dave', 'contribute', '0', daveDir), /contributed 1 records/);

  const listed = (await cli('//Charlie', 'list', '0', '--status', 'pending')).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(listed.length, 27);
  const spam = listed.find((c) => c.contentHash === contentRoot('buy cheap tokens now'));
  assert.ok(spam, 'Dave\'s record is listed under its content hash');
  const good = listed.filter((c) => c.id !== spam.id).map((c) => String(c.id));
  // Charlie (the curator added above) curates.
  assert.match(await cli('//Charlie', 'curate', 'accept', ...good), /accepted 26/);
  assert.match(await cli('//Charlie', 'curate', 'reject', String(spam.id), '--reason', '2'), /rejected 1/);
  // A non-curator cannot.
  await assert.rejects(cli('//Eve', 'curate', 'accept', good[0]), /NotCurator|NotPending/);

  assert.match(await cli('//Charlie', 'snapshot', '0'), /snapshot 0\/1: 26 contributions/);
  for (const index of ['0', '13', '25']) {
    const out = JSON.parse(await cli('//Alice', 'proof', '0', '1', index));
    assert.equal(out.verified, true);
    assert.equal(out.proof.root, out.onChainRoot);
  }
  const onChain = await rpc(node.rpcPort, 'datanets_getSnapshot', [0, 1]);
  assert.equal(onChain.leafCount, 26);

  // The stored bytes come back, checked against the on-chain hash.
  const mine = (await cli('//Bob', 'mine')).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(mine.length, 26);
  const faq = mine.find((c) => c.contentHash === contentRoot('How do I reset my password? Use the reset link.'));
  assert.equal(await cli('//Bob', 'cat', String(faq.id)), 'How do I reset my password? Use the reset link.');
});
