// OpenLedger Studio in a real browser for tests: `openledger studio` on loopback, Debian's
// chromium driven headless by puppeteer-core (nothing downloads a browser), and the checks
// every page gets (accessible names, focus, a 390 px viewport, screenshots).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import puppeteer from 'puppeteer-core';
import { freePort, spawnReady, stopProcess } from './node.js';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const WEB = resolve('../../web/dist');
/** Where screenshots go (`STUDIO_SCREENSHOTS`, else `$E2E_TMP/studio-screenshots`). */
export const OUT = process.env.STUDIO_SCREENSHOTS || join(process.env.E2E_TMP || '/tmp', 'studio-screenshots');

/**
 * Starts the Studio against the node at `rpc` (and `worker`, if given) and a browser page on it;
 * resolves to a `Studio` whose `stop()` ends both. Uncaught page errors are collected and fail
 * `stop()`.
 */
export async function openStudio({ rpc, store, worker, logDir, hash = '' }) {
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
