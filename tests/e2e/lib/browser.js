// OpenLedger Studio in a real browser for tests: `openledger studio` on loopback, Debian's
// chromium driven headless by puppeteer-core (nothing downloads a browser), and the checks
// every page gets (accessible names, focus, a 390 px viewport, screenshots).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import puppeteer from 'puppeteer-core';
import { hexToU8a, u8aToHex, u8aWrapBytes } from '@polkadot/util';
import { freePort, spawnReady, stopProcess } from './node.js';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const WEB = resolve('../../web/dist');
/** Where screenshots go (`STUDIO_SCREENSHOTS`, else `$E2E_TMP/studio-screenshots`). */
export const OUT = process.env.STUDIO_SCREENSHOTS || join(process.env.E2E_TMP || '/tmp', 'studio-screenshots');

/**
 * Starts the Studio against the node at `rpc` (and `worker`, if given) and a browser page on it;
 * resolves to a `Studio` whose `stop()` ends both. Uncaught page errors are collected and fail
 * `stop()`. With `wallet` (`{ api, pair, name }`), the page finds a browser wallet holding `pair`
 * (see `injectWallet`).
 */
export async function openStudio({ rpc, store, worker, logDir, hash = '', wallet }) {
  mkdirSync(OUT, { recursive: true });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = ['studio', '--url', rpc, '--listen', `127.0.0.1:${port}`, '--dir', WEB, '--store', store];
  if (worker) args.push('--worker', worker);
  const server = await spawnReady({
    name: 'studio', bin: process.env.CLI_BIN, args, logFile: join(logDir, 'studio.log'), env: { ...process.env },
    ready: async () => (await fetch(`${url}/api/config`)).ok,
  });
  const studio = new Studio(url, server, null, null);
  try {
    studio.browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
    const page = await studio.browser.newPage();
    studio.page = page;
    await page.setViewport({ width: 1280, height: 800 });
    page.on('pageerror', (e) => studio.pageErrors.push(e.message));
    // STUDIO_DEBUG=1: the page's console on stderr.
    if (process.env.STUDIO_DEBUG) page.on('console', (m) => console.error('page:', m.text()));
    if (wallet) await injectWallet(studio, wallet);
    await page.goto(`${url}/${hash}`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('body[data-ready]', { timeout: 60_000 });
  } catch (e) {
    // Nothing left running when the Studio does not come up.
    await studio.browser?.close();
    await stopProcess(server.proc, server.exited);
    throw e;
  }
  return studio;
}

/**
 * A browser wallet in the page, speaking the polkadot-js extension's injected interface
 * (`window.injectedWeb3[name].enable(origin)` → accounts and a signer) as the Studio finds it
 * through `@polkadot/extension-dapp`. The key stays in the test process, as it would in the
 * extension: `signPayload` signs the extrinsic payload the page sends, `signRaw` signs the bytes
 * wrapped in `<Bytes>…</Bytes>` exactly as the extension does. Every request is recorded in
 * `studio.walletCalls`.
 */
async function injectWallet(studio, { api, pair, name = 'Wallet' }) {
  studio.walletCalls = [];
  await studio.page.exposeFunction('__testWalletSignRaw', (raw) => {
    studio.walletCalls.push({ kind: 'raw', ...raw });
    if (raw.address !== pair.address) throw new Error(`the wallet has no key for ${raw.address}`);
    return u8aToHex(pair.sign(u8aWrapBytes(hexToU8a(raw.data))));
  });
  await studio.page.exposeFunction('__testWalletSignPayload', (payload) => {
    studio.walletCalls.push({ kind: 'payload', address: payload.address, method: payload.method });
    if (payload.address !== pair.address) throw new Error(`the wallet has no key for ${payload.address}`);
    return api.registry.createType('ExtrinsicPayload', payload, { version: payload.version }).sign(pair).signature;
  });
  await studio.page.evaluateOnNewDocument((address, accountName, type) => {
    let id = 0;
    const accounts = [{ address, name: accountName, type }];
    window.injectedWeb3 = {
      'test-wallet': {
        version: '0.0.1',
        enable: async () => ({
          accounts: { get: async () => accounts, subscribe: (cb) => { cb(accounts); return () => {}; } },
          signer: {
            signRaw: async (raw) => ({ id: ++id, signature: await window.__testWalletSignRaw(raw) }),
            signPayload: async (payload) => ({ id: ++id, signature: await window.__testWalletSignPayload(payload) }),
          },
        }),
      },
    };
  }, pair.address, name, pair.type);
}

export class Studio {
  constructor(url, server, browser, page) {
    Object.assign(this, { url, server, browser, page, pageErrors: [] });
  }

  async stop() {
    await this.browser?.close();
    await stopProcess(this.server?.proc, this.server?.exited);
    assert.deepEqual(this.pageErrors, [], 'no uncaught error in the page');
  }

  statusText() {
    return this.page.$eval('#status', (e) => e.textContent);
  }

  /** Waits until the status line matches `re`; resolves to it. */
  async waitStatus(re) {
    await this.page.waitForFunction((src) => new RegExp(src).test(document.querySelector('#status').textContent), { timeout: 60_000 }, re.source);
    return this.statusText();
  }

  /** Runs `act` and waits until the page has been drawn again after it. */
  async redrawn(act) {
    const n = await this.page.evaluate(() => Number(document.body.dataset.rendered || 0));
    await act();
    await this.page.waitForFunction((x) => Number(document.body.dataset.rendered || 0) > x, { timeout: 60_000 }, n);
  }

  /** Selects `who` (a keyring pair of a dev account) as the account. */
  as(who) {
    return this.redrawn(() => this.page.select('#account', who.address));
  }

  go(hash) {
    return this.redrawn(() => this.page.evaluate((h) => { location.hash = h; }, hash));
  }

  /** Screenshots at 1280 and 390 px; the page must fit the narrow one. */
  async shoot(name) {
    for (const [w, h] of [[1280, 800], [390, 844]]) {
      await this.page.setViewport({ width: w, height: h });
      await this.page.screenshot({ path: join(OUT, `${name}-${w}.png`), fullPage: true });
      if (w === 390) {
        const overflow = await this.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `${name} is ${overflow} px wider than a 390 px viewport`);
      }
    }
    await this.page.setViewport({ width: 1280, height: 800 });
  }

  /** Every control has an accessible name and takes focus (but disabled ones and those of a
   *  closed <details>); every highlight is described by an element that exists. */
  async assertAccessible(name) {
    const problems = await this.page.evaluate(() => {
      const out = [];
      for (const el of document.querySelectorAll('input, select, textarea, button, a[href], mark, summary')) {
        const named = el.tagName === 'MARK'
          ? document.getElementById(el.getAttribute('aria-describedby') ?? '')?.textContent.trim()
          : el.labels?.length > 0 || el.getAttribute('aria-label') || ['BUTTON', 'A', 'SUMMARY'].includes(el.tagName) && el.textContent.trim();
        if (!named) out.push(`unlabelled or undescribed ${el.tagName.toLowerCase()}#${el.id}`);
        if (el.disabled || el.tagName !== 'SUMMARY' && el.closest('details:not([open])')) continue;
        el.focus();
        if (document.activeElement !== el) out.push(`${el.tagName.toLowerCase()}#${el.id} takes no focus`);
      }
      return out;
    });
    assert.deepEqual(problems, [], name);
  }
}
