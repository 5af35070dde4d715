// Starts and stops the real openledger-worker binary for tests: loopback only, stopped by pid.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { freePort, spawnReady, stopProcess, tailFile } from './node.js';

export const WORKER_BIN = process.env.WORKER_BIN;

/** Runs a worker subcommand to completion; returns its stdout. */
export function workerCmd(args) {
  return execFileSync(WORKER_BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * A seeded base model and a `legal` adapter in `dir`, and what the adapter says after `prompt`
 * (greedy, `maxTokens` tokens) on a worker without a chain: text a contribution can repeat, so
 * that a paid answer has something to be attributed to. Resolves to
 * { model, adapters, adapterId, text }.
 */
export async function modelAndAnswer(dir, prompt, maxTokens) {
  const model = join(dir, 'base');
  const adapters = join(dir, 'adapters');
  workerCmd(['gen-model', '--out', model, '--seed', '7']);
  workerCmd(['gen-adapter', '--base', model, '--out', join(adapters, 'legal'), '--seed', '3']);
  const adapterId = workerCmd(['adapter-id', join(adapters, 'legal')]).trim();
  const free = new Worker({ name: 'worker-free', dir, args: ['--model', model, '--adapters', adapters] });
  await free.start();
  const first = await free.post('/v1/completions', { model: 'legal', prompt, max_tokens: maxTokens, temperature: 0 });
  await free.stop();
  if (first.status !== 200) throw new Error(`the free worker answered ${first.status}: ${JSON.stringify(first.body)}`);
  return { model, adapters, adapterId, text: first.body.choices[0].text };
}

export class Worker {
  constructor({ name, dir, args }) {
    this.name = name;
    this.args = args;
    this.logFile = join(dir, `${name}.log`);
  }

  async start() {
    this.port = this.port ?? (await freePort());
    ({ proc: this.proc, exited: this.exited } = await spawnReady({
      name: this.name,
      bin: WORKER_BIN,
      args: ['serve', '--host', '127.0.0.1', '--port', String(this.port), ...this.args],
      logFile: this.logFile,
      env: { ...process.env, RUST_LOG: 'info' },
      ready: async () => (await fetch(`${this.url}/health`)).ok,
    }));
    return this;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** POSTs JSON to `path`; resolves to { status, body }. */
  async post(path, body, headers = {}) {
    const r = await fetch(`${this.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    return { status: r.status, body: await r.json() };
  }

  async get(path, headers = {}) {
    const r = await fetch(`${this.url}${path}`, { headers });
    return { status: r.status, body: await r.json() };
  }

  /** Stops it by pid with `signal` and waits for the exit. */
  async stop(signal = 'SIGTERM') {
    await stopProcess(this.proc, this.exited, signal);
  }

  tail(lines = 40) {
    return tailFile(this.logFile, lines);
  }
}
