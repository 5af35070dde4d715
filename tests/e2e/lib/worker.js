// Starts and stops the real openledger-worker binary for tests: loopback only, stopped by pid.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { freePort, spawnReady, stopProcess, tailFile } from './node.js';

export const WORKER_BIN = process.env.WORKER_BIN;

/** Runs a worker subcommand to completion; returns its stdout. */
export function workerCmd(args) {
  return execFileSync(WORKER_BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
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
