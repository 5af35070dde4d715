// The dev chain end to end: polkadot-js, OPEN transfers, bad input, restart on the same base path.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Node, rpc, tempDir } from './lib/node.js';
import { connect, devKeys, free, send, findEvent, OPEN, TOTAL_SUPPLY, EXISTENTIAL_DEPOSIT, TREASURY } from './lib/chain.js';

let node;
let api;
const { alice, bob, k } = devKeys();

before(async () => {
  node = new Node({ name: 'dev', basePath: tempDir('ol-dev-'), args: ['--dev', '--sealing', 'instant'], prometheus: true });
  await node.start();
  api = await connect(node.wsUrl);
});

after(async () => {
  await api?.disconnect();
  await node?.stop();
  node?.cleanup();
});

test('chain properties name OPEN with 18 decimals', async () => {
  const props = await api.rpc.system.properties();
  assert.equal(props.tokenSymbol.unwrap()[0].toString(), 'OPEN');
  assert.equal(props.tokenDecimals.unwrap()[0].toNumber(), 18);
  assert.deepEqual(api.registry.chainTokens, ['OPEN']);
  assert.deepEqual(api.registry.chainDecimals, [18]);
  assert.equal((await api.rpc.system.chain()).toString(), 'OpenLedger Development');
});

test('genesis issuance is exactly 1,000,000,000 OPEN (storage and openledger_tokenInfo)', async () => {
  assert.equal((await api.query.balances.totalIssuance()).toBigInt(), TOTAL_SUPPLY);
  const info = await rpc(node.rpcPort, 'openledger_tokenInfo', []);
  assert.deepEqual(info, {
    symbol: 'OPEN',
    decimals: 18,
    totalIssuance: TOTAL_SUPPLY.toString(),
    existentialDeposit: EXISTENTIAL_DEPOSIT.toString(),
  });
  assert.equal(api.consts.balances.existentialDeposit.toBigInt(), EXISTENTIAL_DEPOSIT);
});

test('Alice transfers OPEN to Bob; fee is paid in OPEN to the treasury', async () => {
  const amount = 25n * OPEN;
  const [a0, b0, t0] = [await free(api, alice.address), await free(api, bob.address), await free(api, TREASURY)];
  const tx = api.tx.balances.transferKeepAlive(bob.address, amount);
  const quoted = (await api.call.transactionPaymentApi.queryInfo(
    (await api.tx.balances.transferKeepAlive(bob.address, amount).signAsync(alice)).toU8a(), 0)).partialFee.toBigInt();
  const { events, error } = await send(api, tx, alice);
  assert.equal(error, null);
  const transfer = findEvent(events, 'balances', 'Transfer');
  assert.ok(transfer, 'Transfer event');
  assert.equal(transfer.data.from.toString(), alice.address);
  assert.equal(transfer.data.to.toString(), bob.address);
  assert.equal(transfer.data.amount.toBigInt(), amount);
  const fee = findEvent(events, 'transactionPayment', 'TransactionFeePaid').data.actualFee.toBigInt();
  assert.ok(fee > 0n && fee <= quoted * 2n, `fee ${fee}, quoted ${quoted}`);
  assert.equal(await free(api, bob.address), b0 + amount);
  assert.equal(await free(api, alice.address), a0 - amount - fee);
  assert.equal(await free(api, TREASURY), t0 + fee);
  assert.equal((await api.query.balances.totalIssuance()).toBigInt(), TOTAL_SUPPLY, 'fees neither mint nor burn');
  assert.ok(findEvent(events, 'system', 'ExtrinsicSuccess'));
});

test('system_accountNextIndex and payment_queryInfo answer', async () => {
  const next = await rpc(node.rpcPort, 'system_accountNextIndex', [alice.address]);
  assert.ok(next >= 1);
  const xt = await api.tx.system.remark('0x00').signAsync(bob);
  const info = await rpc(node.rpcPort, 'payment_queryInfo', [xt.toHex()]);
  assert.ok(BigInt(info.partialFee) > 0n);
});

test('a transfer below the existential deposit to a new account fails with BelowMinimum', async () => {
  const fresh = k('//BelowMinimum').address;
  const { events, error } = await send(api, api.tx.balances.transferAllowDeath(fresh, EXISTENTIAL_DEPOSIT / 2n), alice);
  assert.match(error, /BelowMinimum/);
  assert.ok(findEvent(events, 'system', 'ExtrinsicFailed'));
  assert.equal(await free(api, fresh), 0n);
});

test('an extrinsic with a bad signature is rejected and changes nothing', async () => {
  const b0 = await free(api, bob.address);
  const head0 = (await api.rpc.chain.getHeader()).number.toNumber();
  const tx = await api.tx.balances.transferKeepAlive(bob.address, 3n * OPEN).signAsync(alice);
  const bytes = tx.toU8a();
  const sig = tx.signature.toU8a(); // 64 bytes of sr25519
  const at = Buffer.from(bytes).indexOf(Buffer.from(sig));
  assert.ok(at > 0, 'signature found in the encoded extrinsic');
  bytes[at + 10] ^= 0xff;
  await assert.rejects(api.rpc.author.submitExtrinsic(bytes), /1010.*bad signature/i);
  assert.equal(await free(api, bob.address), b0);
  assert.equal((await api.rpc.chain.getHeader()).number.toNumber(), head0, 'no block was sealed');
});

test('an account that cannot pay the fee is rejected and changes nothing', async () => {
  const poor = k('//NoFunds');
  const b0 = await free(api, bob.address);
  await assert.rejects(
    api.tx.balances.transferKeepAlive(bob.address, OPEN).signAndSend(poor),
    /1010.*Inability to pay some fees/,
  );
  assert.equal(await free(api, bob.address), b0);
  assert.equal(await free(api, poor.address), 0n);
});

test('Prometheus metrics are served', async () => {
  const text = await (await fetch(`http://127.0.0.1:${node.prometheusPort}/metrics`)).text();
  assert.match(text, /substrate_block_height\{status="best"/);
});

test('balances and block height survive a restart on the same base path', async () => {
  await send(api, api.tx.balances.transferKeepAlive(bob.address, 7n * OPEN), alice);
  const height = (await api.rpc.chain.getHeader()).number.toNumber();
  const bobBefore = await free(api, bob.address);
  await api.disconnect();
  await node.stop();

  await node.start();
  api = await connect(node.wsUrl);
  assert.ok((await api.rpc.chain.getHeader()).number.toNumber() >= height);
  assert.equal(await free(api, bob.address), bobBefore);
  // ...and the chain goes on from there.
  const { error } = await send(api, api.tx.balances.transferKeepAlive(bob.address, OPEN), alice);
  assert.equal(error, null);
  assert.equal(await free(api, bob.address), bobBefore + OPEN);
  assert.ok((await api.rpc.chain.getHeader()).number.toNumber() > height);
});
