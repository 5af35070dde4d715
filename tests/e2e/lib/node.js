// Starts and stops the real openledger-node binary for tests: loopback only, stopped by pid.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, openSync, readFileSync, rmSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const NODE_BIN = process.env.NODE_BIN;
if (!NODE_BIN) throw new Error('NODE_BIN is not set: run the tests through scripts/test.sh');

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix) {
  return mkdtempSync(join(process.env.E2E_TMP || tmpdir(), prefix));
}

/** One JSON-RPC call over HTTP (the node serves HTTP and WebSocket on the same port). */
export async function rpc(port, method, params = []) {
  const res = await fetch(`http://127.0.0.1:${port}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const body = await res.json();
  if (body.error) {
    const err = new Error(`${method}: ${body.error.message}${body.error.data ? `: ${body.error.data}` : ''}`);
    err.rpc = body.error;
    throw err;
  }
  return body.result;
}

/**
 * Spawns `bin` with stdout and stderr appended to `logFile`; resolves to { proc, exited } once
 * `ready()` resolves truthy (60 s at most), rejects with the log's tail if it exits first.
 */
export async function spawnReady({ name, bin, args, logFile, env, ready }) {
  const fd = openSync(logFile, 'a');
  const proc = spawn(bin, args, { stdio: ['ignore', fd, fd], env });
  closeSync(fd);
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${name} exited early:\n${tailFile(logFile)}`);
    try {
      if (await ready()) return { proc, exited };
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`${name} not ready:\n${tailFile(logFile)}`);
    await sleep(250);
  }
}

/** Stops a child process by pid with `signal` (SIGKILL after 30 s) and waits for its exit. */
export async function stopProcess(proc, exited, signal = 'SIGTERM') {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill(signal);
  const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

/** The last `lines` lines of a log file. */
export function tailFile(file, lines = 40) {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export class Node {
  constructor({ name, basePath, args = [], prometheus = false }) {
    this.name = name;
    this.prometheus = prometheus;
    this.basePath = basePath;
    this.args = args;
    this.logFile = join(basePath, `${name}.log`);
  }

  async start() {
    this.rpcPort = this.rpcPort ?? (await freePort());
    this.p2pPort = this.p2pPort ?? (await freePort());
    if (this.prometheus) this.prometheusPort = this.prometheusPort ?? (await freePort());
    const args = [
      '--base-path', this.basePath,
      '--rpc-port', String(this.rpcPort),
      '--listen-addr', `/ip4/127.0.0.1/tcp/${this.p2pPort}`,
      '--no-mdns', '--no-telemetry',
      ...(this.prometheus ? ['--prometheus-port', String(this.prometheusPort)] : ['--no-prometheus']),
      '--rpc-methods', 'unsafe',
      ...this.args,
    ];
    ({ proc: this.proc, exited: this.exited } = await spawnReady({
      name: this.name, bin: NODE_BIN, args, logFile: this.logFile,
      ready: async () => (await rpc(this.rpcPort, 'system_health'), true),
    }));
    return this;
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.rpcPort}`;
  }

  /** The libp2p address other nodes use to reach this one. */
  async multiaddr() {
    const peerId = await rpc(this.rpcPort, 'system_localPeerId');
    return `/ip4/127.0.0.1/tcp/${this.p2pPort}/p2p/${peerId}`;
  }

  /** Stops the node by pid (SIGTERM, SIGKILL after 30 s) and waits for it to exit. */
  async stop() {
    await stopProcess(this.proc, this.exited);
  }

  tail(lines = 40) {
    return tailFile(this.logFile, lines);
  }

  cleanup() {
    if (!process.env.E2E_KEEP) rmSync(this.basePath, { recursive: true, force: true });
  }
}

/** Polls `fn` until it returns a truthy value or `ms` pass. */
export async function waitFor(what, fn, ms = 60_000, every = 500) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(every);
  }
}
