// OpenLedger Studio: the contributor's side of the loop in a browser. Everything is read from
// the node over JSON-RPC with @polkadot/api (metadata only, no custom types); the user signs
// with the polkadot-js extension or, on a development chain, a dev account. Chain data is user
// content: it is only ever put into the page as text (never as HTML).
import { ApiPromise, WsProvider } from '@polkadot/api';
import type { SubmittableExtrinsic } from '@polkadot/api/types';
import { Keyring } from '@polkadot/keyring';
import type { KeyringPair } from '@polkadot/keyring/types';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { web3Accounts, web3Enable, web3FromAddress } from '@polkadot/extension-dapp';
import { hexToU8a } from '@polkadot/util';
import { decodeAddress } from '@polkadot/util-crypto';
import { leafBytes, verifyProof } from '../../tests/e2e/lib/merkle.js';
import { chatRequestHash, completionRequestHash, freshNonce, signVoucher, signVoucherWithWallet } from '../../sdk/typescript/voucher';
import type { Scheme, Voucher } from '../../sdk/typescript/voucher';
import { pieces } from './highlight';

/** An account to act as: a dev account's key pair, or one the extension holds (`scheme`: its key type). */
type Account = { address: string; name: string; pair?: KeyringPair; scheme?: Scheme };
type Config = { rpc: string; worker: boolean; maxUpload: number };

let api: ApiPromise;
let cfg: Config;
let accounts: Account[] = [];
const DEV = ['Alice', 'Bob', 'Charlie', 'Dave', 'Eve', 'Ferdie'];
const REASONS = ['unspecified', 'spam', 'duplicate', 'license', 'quality', 'personal-data', 'off-topic'];

// ---- DOM helpers: text only -------------------------------------------------------------------

type Child = Node | string | number | null | undefined | false;
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, unknown> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v as EventListener);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  return el;
}
const main = () => document.getElementById('main') as HTMLElement;
function show(...nodes: Child[]) {
  const m = main();
  m.replaceChildren(...(nodes.filter(Boolean) as (Node | string)[]));
}
function status(text: string, kind: '' | 'error' | 'ok' = '') {
  const s = document.getElementById('status') as HTMLElement;
  s.textContent = text;
  s.className = kind;
}
/** Chain bytes as text: UTF-8 when they are (any account may store other bytes: shown as hex). */
const text = (bytes: any): string => (bytes.isUtf8 === false ? bytes.toHex() : bytes.toUtf8 ? bytes.toUtf8() : bytes.toString());
const short = (a: string) => (a.length > 16 ? `${a.slice(0, 6)}…${a.slice(-6)}` : a);
function nameOf(address: string) {
  return accounts.find((a) => a.address === address)?.name ?? short(address);
}

// ---- accounts and signing ---------------------------------------------------------------------

function current(): Account | undefined {
  const sel = document.getElementById('account') as HTMLSelectElement;
  return accounts.find((a) => a.address === sel.value);
}

async function loadAccounts() {
  const found: Account[] = [];
  const ss58Format = api.registry.chainSS58 ?? 42;
  try {
    if ((await web3Enable('OpenLedger Studio')).length > 0) {
      for (const a of await web3Accounts({ ss58Format })) {
        const scheme = (['sr25519', 'ed25519', 'ecdsa'] as const).find((t) => t === (a.type ?? 'sr25519'));
        // (An Ethereum-style account cannot hold OPEN here.)
        if (scheme) found.push({ address: a.address, name: `${a.meta.name ?? 'account'} (extension)`, scheme });
      }
    }
  } catch {
    // No extension: dev accounts only.
  }
  const chainType = await api.rpc.system.chainType();
  if (chainType.isDevelopment || chainType.isLocal) {
    const keyring = new Keyring({ type: 'sr25519', ss58Format });
    for (const n of DEV) {
      const pair = keyring.addFromUri(`//${n}`);
      found.push({ address: pair.address, name: n, pair });
    }
  }
  accounts = found;
  const sel = document.getElementById('account') as HTMLSelectElement;
  sel.replaceChildren(...accounts.map((a) => h('option', { value: a.address }, a.name)));
  const saved = localStorage.getItem('account');
  if (saved && accounts.some((a) => a.address === saved)) sel.value = saved;
  sel.addEventListener('change', () => {
    localStorage.setItem('account', sel.value);
    refreshBalance();
    route();
  });
  if (accounts.length === 0) status('No account: install the polkadot-js extension (or use a development chain).', 'error');
}

async function refreshBalance() {
  const a = current();
  const el = document.getElementById('balance') as HTMLElement;
  if (!a) return void (el.textContent = '');
  const { data } = (await api.query.system.account(a.address)) as any;
  el.textContent = `${fmt(data.free.toBigInt())} free`;
}

/** An amount in OPEN with up to 6 decimals: rounded down, or up with `ceil` (a maximum); a
 *  non-zero amount too small to show is "< 0.000001". */
function fmt(v: bigint, ceil = false): string {
  const d = api.registry.chainDecimals[0] ?? 18;
  const unit = api.registry.chainTokens[0] ?? 'OPEN';
  const shown = Math.min(6, d);
  const step = 10n ** BigInt(d - shown);
  let q = v / step;
  if (ceil && q * step < v) q += 1n;
  if (q === 0n && v > 0n) return `< 0.${'0'.repeat(shown - 1)}1 ${unit}`;
  const s = q.toString().padStart(shown + 1, '0');
  const whole = s.slice(0, s.length - shown);
  const frac = s.slice(s.length - shown).replace(/0+$/, '');
  return `${whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',')}${frac ? '.' + frac : ''} ${unit}`;
}

/** Exact decimal OPEN (e.g. "10", "0.5") to the smallest unit; an error for anything else. */
function parseOpen(input: string): bigint {
  const d = api.registry.chainDecimals[0] ?? 18;
  const m = /^(\d{1,30})(?:\.(\d+))?$/.exec(input.trim());
  if (!m || (m[2] ?? '').length > d) throw new Error(`“${input}” is not an amount of OPEN (digits, a point, at most ${d} decimals).`);
  const v = BigInt(m[1]) * 10n ** BigInt(d) + BigInt((m[2] ?? '').padEnd(d, '0') || '0');
  if (v === 0n) throw new Error('The amount must be more than 0.');
  return v;
}

/** A chain error in words: the pallet's own documentation of the error, then its name. */
function errorWords(dispatchError: any): string {
  if (dispatchError.isModule) {
    const { section, name, docs } = api.registry.findMetaError(dispatchError.asModule);
    return `${docs.join(' ').trim() || name} (${section}.${name})`;
  }
  if (dispatchError.isToken) {
    const t = dispatchError.asToken.type;
    const words: Record<string, string> = {
      FundsUnavailable: 'Not enough free balance for this.',
      OnlyProvider: 'This would leave the account without the balance it needs to exist.',
      BelowMinimum: 'The amount is below the minimum balance.',
    };
    return `${words[t] ?? 'A balance rule refused this.'} (${t})`;
  }
  if (dispatchError.isBadOrigin) return 'This account may not do this.';
  return dispatchError.toString();
}

/** Submits `tx` signed by the selected account; resolves to its events once in a block. */
async function submit(tx: SubmittableExtrinsic<'promise'>, what: string): Promise<any[]> {
  const a = current();
  if (!a) throw new Error('Choose an account first.');
  status(`${what}: signing and submitting…`);
  const signer = a.pair ?? a.address;
  const options = a.pair ? {} : { signer: (await web3FromAddress(a.address)).signer };
  return new Promise((resolve, reject) => {
    tx.signAndSend(signer as any, options, ({ status: st, events, dispatchError }: any) => {
      if (dispatchError) {
        reject(new Error(errorWords(dispatchError)));
      } else if (st.isInBlock || st.isFinalized) {
        status(`${what}: done.`, 'ok');
        resolve(events);
      } else if (st.isDropped || st.isInvalid || st.isUsurped) {
        reject(new Error(`The transaction was ${st.type.toLowerCase()}.`));
      }
    }).catch((e: Error) => {
      const m = /Inability to pay some fees/.test(e.message) ? 'The account cannot pay the transaction fee: its free balance is too low.' : e.message;
      reject(new Error(m));
    });
  }).then(
    (ev) => {
      refreshBalance();
      return ev as any[];
    },
    (e: Error) => {
      status(`${what} failed: ${e.message}`, 'error');
      (e as any).shown = true;
      throw e;
    },
  );
}

/** Runs `f` when `form` is submitted, its submit button disabled meanwhile; an error goes to the
 *  status line after `what`. */
function onSubmit(form: HTMLFormElement, f: () => Promise<unknown>, what: string) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const b = form.querySelector('button[type=submit]') as HTMLButtonElement;
    b.disabled = true;
    try {
      await f();
    } catch (e) {
      status(`${what}: ${(e as Error).message}`, 'error');
    } finally {
      b.disabled = false;
    }
  });
}

/** Runs `f` from a button, disabling it meanwhile; errors are already in the status line. */
function action(f: () => Promise<unknown>) {
  return async (ev: Event) => {
    const b = ev.currentTarget as HTMLButtonElement;
    b.disabled = true;
    try {
      await f();
    } catch (e) {
      if (!(e as any).shown) status((e as Error).message, 'error');
    } finally {
      b.disabled = false;
    }
  };
}

// ---- pages --------------------------------------------------------------------------------

async function datanetsPage() {
  const entries = await api.query.datanets.datanets.entries();
  const list = entries
    .map(([k, v]: any) => ({ id: (k.args[0] as any).toNumber(), d: v.unwrap() }))
    .sort((a, b) => a.id - b.id);
  const search = h('input', { type: 'search', id: 'search', placeholder: 'name or license' });
  const body = h('tbody');
  const render = () => {
    const q = search.value.trim().toLowerCase();
    body.replaceChildren(
      ...list
        .filter(({ d }) => !q || text(d.name).toLowerCase().includes(q) || text(d.license).toLowerCase().includes(q))
        .map(({ id, d }) =>
          h('tr', {},
            h('td', {}, id),
            h('td', {}, h('a', { href: `#/datanet/${id}` }, text(d.name))),
            h('td', {}, nameOf(d.owner.toString())),
            h('td', {}, text(d.license)),
            h('td', {}, d.curation.toString()),
            h('td', {}, d.leafCount.toNumber()),
            h('td', {}, d.pendingCount.toNumber()),
          ),
        ),
    );
  };
  search.addEventListener('input', render);
  render();
  const name = h('input', { type: 'text', id: 'dn-name', required: true, maxlength: 64 });
  const license = h('input', { type: 'text', id: 'dn-license', value: 'CC-BY-4.0', required: true });
  const uri = h('input', { type: 'text', id: 'dn-uri', placeholder: 'ipfs://… (optional)' });
  const curated = h('input', { type: 'checkbox', id: 'dn-curated', checked: true });
  const form = h('form', { 'aria-labelledby': 'create-h' },
    h('h3', { id: 'create-h' }, 'Create a Datanet'),
    h('label', { for: 'dn-name' }, 'Name'), name,
    h('label', { for: 'dn-license' }, 'License'), license,
    h('label', { for: 'dn-uri' }, 'Metadata URI'), uri,
    h('label', {}, curated, ' Curated (contributions wait for a curator)'),
    h('p', {}, h('button', { type: 'submit' }, 'Create Datanet')),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const policy = { base: api.consts.datanets.minContributionDepositBase, perByte: api.consts.datanets.minContributionDepositPerByte };
    const tx = api.tx.datanets.createDatanet(name.value, uri.value || `studio://${name.value}`, license.value, curated.checked ? 'Curated' : 'Open', policy);
    try {
      const events = await submit(tx, `Creating “${name.value}”`);
      const created = events.find(({ event }: any) => event.section === 'datanets' && event.method === 'DatanetCreated');
      if (created) location.hash = `#/datanet/${created.event.data[0].toString()}`;
    } catch {
      // shown
    }
  });
  show(
    h('h2', {}, 'Datanets'),
    h('label', { for: 'search' }, 'Search Datanets '), search,
    h('div', { class: 'table-wrap' },
      h('table', { 'aria-label': 'Datanets' },
        h('thead', {}, h('tr', {}, ...['Id', 'Name', 'Owner', 'License', 'Curation', 'Accepted', 'Pending'].map((c) => h('th', { scope: 'col' }, c)))),
        body,
      ),
    ),
    form,
  );
}

async function datanetPage(id: number) {
  const opt: any = await api.query.datanets.datanets(id);
  if (opt.isNone) return show(h('h2', {}, `No Datanet ${id}`), h('p', {}, h('a', { href: '#/datanets' }, 'All Datanets')));
  const d = opt.unwrap();
  const me = current()?.address;
  const curators = (await api.query.datanets.curators.keys(id)).map((k: any) => k.args[1].toString());
  const owner = d.owner.toString();
  const canCurate = !!me && (me === owner || curators.includes(me));
  const ids = (await api.query.datanets.datanetContributions.keys(id)).map((k: any) => k.args[1].toNumber()).sort((a: number, b: number) => a - b);
  const contribs: any[] = ids.length ? await api.query.datanets.contributions.multi(ids) : [];
  const snaps = (await api.query.datanets.snapshots.entries(id))
    .map(([k, v]: any) => ({ version: k.args[1].toNumber(), s: v.unwrap() }))
    .sort((a: any, b: any) => a.version - b.version);

  const rows = ids.map((cid: number, i: number) => {
    const c = contribs[i].unwrap();
    const pending = c.status.isPending;
    const reason = h('select', { id: `reason-${cid}`, 'aria-label': `Reason for rejecting contribution ${cid}` }, ...REASONS.map((r, j) => h('option', { value: j }, r)));
    return h('tr', {},
      h('td', {}, cid),
      h('td', {}, nameOf(c.contributor.toString())),
      h('td', {}, h('span', { class: `badge ${pending ? 'pending' : 'accepted'}` }, pending ? 'pending' : `accepted (leaf ${c.status.asAccepted.leaf.toNumber()})`)),
      h('td', {}, c.sizeBytes.toNumber()),
      h('td', { class: 'hash' }, c.contentHash.toHex()),
      h('td', {},
        pending && canCurate && h('button', { type: 'button', 'aria-label': `Accept contribution ${cid}`, onclick: action(() => submit(api.tx.datanets.accept(cid), `Accepting ${cid}`).then(route)) }, 'Accept'),
        pending && canCurate && ' ',
        pending && canCurate && reason,
        pending && canCurate && h('button', { type: 'button', class: 'secondary', 'aria-label': `Reject contribution ${cid}`, onclick: action(() => submit(api.tx.datanets.reject(cid, Number(reason.value)), `Rejecting ${cid}`).then(route)) }, 'Reject'),
      ),
    );
  });

  const snapRows = snaps.map(({ version, s }: any) => {
    const out = h('span', { role: 'status' });
    const leaf = h('input', { type: 'number', min: 0, max: s.leafCount.toNumber() - 1, value: 0, id: `leaf-${version}`, style: 'width:5em' });
    const verify = async () => {
      const p: any = await (api as any)._rpcCore.provider.send('datanets_getProof', [id, version, Number(leaf.value)]);
      const ok = verifyProof(s.root.toHex(), p.proof, p.numberOfLeaves, p.leafIndex, leafBytes(p.contribution, p.contentHash));
      out.textContent = ok ? `✓ contribution ${p.contribution} is leaf ${p.leafIndex} of the root` : '✗ the proof does not verify';
    };
    return h('tr', {},
      h('td', {}, version),
      h('td', { class: 'hash' }, s.root.toHex()),
      h('td', {}, s.leafCount.toNumber()),
      h('td', {}, s.takenAt.toNumber()),
      h('td', {},
        h('label', { for: `leaf-${version}` }, 'Leaf '), leaf, ' ',
        h('button', { type: 'button', class: 'secondary', onclick: action(() => verify().catch((e) => void (out.textContent = `✗ ${e.message}`))) }, 'Verify proof'),
        ' ', out),
    );
  });

  show(
    h('p', {}, h('a', { href: '#/datanets' }, '← All Datanets')),
    h('h2', {}, text(d.name)),
    h('dl', {},
      h('dt', {}, 'Id'), h('dd', {}, id),
      h('dt', {}, 'Owner'), h('dd', {}, nameOf(owner)),
      h('dt', {}, 'Curators'), h('dd', {}, curators.length ? curators.map(nameOf).join(', ') : 'none (the owner curates)'),
      h('dt', {}, 'License'), h('dd', {}, text(d.license)),
      h('dt', {}, 'Curation'), h('dd', {}, d.curation.toString()),
      h('dt', {}, 'Status'), h('dd', {}, d.status.toString()),
      h('dt', {}, 'Accepted / pending'), h('dd', {}, `${d.leafCount.toNumber()} / ${d.pendingCount.toNumber()}`),
    ),
    contributePanel(id),
    h('h3', {}, 'Contributions'),
    h('div', { class: 'table-wrap' },
      h('table', { 'aria-label': 'Contributions' },
        h('thead', {}, h('tr', {}, ...['Id', 'Contributor', 'Status', 'Bytes', 'Content hash', 'Curate'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, ...rows),
      ),
    ),
    h('h3', {}, 'Snapshots'),
    canCurate && h('p', {}, h('button', { type: 'button', id: 'snapshot', onclick: action(() => submit(api.tx.datanets.snapshot(id), 'Taking a snapshot').then(route)) }, 'Take a snapshot')),
    h('div', { class: 'table-wrap' },
      h('table', { 'aria-label': 'Snapshots' },
        h('thead', {}, h('tr', {}, ...['Version', 'Merkle root', 'Leaves', 'Block', 'Proof'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, ...snapRows),
      ),
    ),
  );
}

/** Upload files (picker or drag-and-drop) to the content store, then contribute their hashes. */
function contributePanel(id: number) {
  const input = h('input', { type: 'file', id: 'files', multiple: true });
  const bar = h('progress', { max: 1, value: 0, 'aria-label': 'Upload progress' });
  const log = h('ul', { 'aria-live': 'polite' });
  const drop = h('div', { class: 'drop' }, 'Drop files here, or ', h('label', { for: 'files' }, 'choose files'), ' ', input);
  const run = async (files: File[]) => {
    if (!files.length) return;
    const stored: { name: string; hash: string; size: number; tokens: number; uri: string }[] = [];
    bar.max = files.length;
    bar.value = 0;
    log.replaceChildren();
    for (const f of files) {
      if (f.size > cfg.maxUpload) {
        log.append(h('li', {}, `${f.name}: larger than ${cfg.maxUpload} bytes, skipped`));
        continue;
      }
      const res = await fetch('/api/store', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: await f.arrayBuffer() });
      const body = await res.json().catch(() => ({ error: `the Studio answered ${res.status}` }));
      if (!res.ok) {
        log.append(h('li', {}, `${f.name}: ${body.error}`));
      } else {
        stored.push({ name: f.name, ...body });
        log.append(h('li', {}, `${f.name}: stored (${body.size} bytes, ${body.hash.slice(0, 10)}…)`));
      }
      bar.value += 1;
    }
    if (!stored.length) return;
    const calls = stored.map((s) => api.tx.datanets.contribute(id, s.hash, s.size, s.tokens, s.uri, null, JSON.stringify({ file: s.name })));
    await submit(calls.length === 1 ? calls[0] : api.tx.utility.batchAll(calls), `Contributing ${stored.length} file(s)`);
    route();
  };
  const fail = (e: Error) => void (!(e as any).shown && status(`Contributing failed: ${e.message}`, 'error'));
  input.addEventListener('change', () => run(Array.from(input.files ?? [])).catch(fail));
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    run(Array.from(e.dataTransfer?.files ?? [])).catch(fail);
  });
  return h('section', { class: 'panel', 'aria-labelledby': 'contribute-h' }, h('h3', { id: 'contribute-h' }, 'Contribute'), drop, bar, log);
}

/** One call of the node's own JSON-RPC methods (not in @polkadot/api's interfaces). */
const rpc = (method: string, params: unknown[]): Promise<any> => (api as any)._rpcCore.provider.send(method, params);
const PALETTE = ['#ffe08a', '#a8e6cf', '#b5d3ff', '#ffc4dd', '#d7c4ff', '#ffd3b0'];
const refKey = (c: { datanet: number; version: number; index: number }) => `${c.datanet}/${c.version}/${c.index}`;
const percent = (perbill: number) => `${(perbill / 1e7).toFixed(2)} %`;

/** A voucher signed by `a`: in the page with a dev account's key, else by the extension (which
 *  signs raw bytes wrapped in `<Bytes>…</Bytes>`; the worker and the chain accept both). */
async function signedVoucher(a: Account, v: Voucher): Promise<string> {
  if (a.pair) return signVoucher(v, (msg) => a.pair!.sign(msg)).header;
  const { signer } = await web3FromAddress(a.address);
  if (!signer.signRaw) throw new Error('This wallet cannot sign raw bytes, so it cannot sign a voucher.');
  status('Sign the voucher in your wallet…');
  return (await signVoucherWithWallet(v, a.address, signer.signRaw, a.scheme)).header;
}

type Turn = { role: 'user' | 'assistant'; content: string };

async function playgroundPage() {
  if (!cfg.worker) return show(h('h2', {}, 'Playground'), h('p', {}, 'The Studio was started without a worker (--worker URL).'));
  const res = await fetch('/api/worker/v1/models');
  const models: any[] = (await res.json()).data ?? [];
  const a = current();
  const model = h('select', { id: 'pg-model' }, ...models.map((m) => h('option', { value: m.id }, m.openledger ? `${m.id} (model ${m.openledger.model} on chain)` : m.id)));
  const prompt = h('textarea', { id: 'pg-prompt', rows: 3, style: 'width:100%' });
  const mode = h('select', { id: 'pg-mode' }, h('option', { value: 'chat' }, 'Chat (a conversation, the model\'s chat template)'), h('option', { value: 'completion' }, 'Completion (the text continued)'));
  const maxTokens = h('input', { type: 'number', id: 'pg-max', min: 1, max: 512, value: 16 });
  const pay = h('input', { type: 'checkbox', id: 'pg-pay' });
  // Paid by default where it can be: a model billed on chain.
  const payDefault = () => void (pay.checked = !!a && !!models.find((m) => m.id === model.value)?.openledger);
  // The conversation so far (chat): every request carries all of it, and its voucher names all of it.
  let turns: Turn[] = [];
  let answers = 0;
  // Bumped by every restart: an answer to a request sent before it belongs to no conversation.
  let epoch = 0;
  const conversation = h('ol', { id: 'conversation', class: 'conversation', 'aria-label': 'Conversation' });
  const answer = h('div', { id: 'answer', class: 'panel', 'aria-live': 'polite' });
  const restart = () => {
    epoch++;
    turns = [];
    conversation.replaceChildren();
    answer.replaceChildren();
  };
  model.addEventListener('change', () => {
    payDefault();
    restart();
  });
  mode.addEventListener('change', restart);
  payDefault();
  const escrow = h('span', { id: 'pg-escrow' });
  const amount = h('input', { type: 'text', id: 'pg-deposit', value: '10', inputmode: 'decimal', style: 'width:6em' });
  const refreshEscrow = async () => {
    if (!a) return;
    const e = await rpc('attribution_escrow', [a.address]);
    escrow.textContent = `Escrow: ${fmt(BigInt(e.held))}`;
  };
  const deposit = async () => {
    const units = parseOpen(amount.value);
    await submit(api.tx.attribution.depositEscrow(units), `Holding ${amount.value.trim()} in escrow`);
    await refreshEscrow();
  };
  const ask = async () => {
    const card = models.find((m) => m.id === model.value);
    const chat = mode.value === 'chat';
    const asked = epoch;
    // What is sent and paid for is the text as it is now (the box stays editable meanwhile).
    const sent = prompt.value;
    const messages: Turn[] = [...turns, { role: 'user', content: sent }];
    const body: Record<string, unknown> = chat
      ? { model: model.value, messages, max_tokens: Number(maxTokens.value), temperature: 0 }
      : { model: model.value, prompt: sent, max_tokens: Number(maxTokens.value), temperature: 0 };
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (pay.checked) {
      if (!card?.openledger) throw new Error(`${model.value} is not billed on chain by this worker.`);
      if (!a) throw new Error('Choose an account first.');
      // The terms and the price as the chain has them (the worker is not trusted for either).
      const m = await rpc('models_getModel', [card.openledger.model]);
      // The version the worker serves, if the chain has it live.
      const version = card.openledger.version;
      if (!m.versions.some((v: any) => v.version === version && !v.deprecated)) throw new Error(`The worker serves version ${version} of model ${m.id}, which the chain does not list as live.`);
      const best = (await api.rpc.chain.getHeader()).number.toNumber();
      const per1k = BigInt(m.pricePer1kTokens);
      // Tokens are at least a byte each: the text's bytes bound its tokens. (A chat template
      // adds its own tokens around each message: a margin for them.)
      const textBytes = chat ? messages.reduce((n, t) => n + new TextEncoder().encode(t.content).length + 16, 48) : new TextEncoder().encode(sent).length + 8;
      const tokens = BigInt(textBytes + Number(maxTokens.value));
      const maxFee = BigInt(m.pricePerRequest) + (per1k * tokens + 999n) / 1000n;
      headers['x-openledger-voucher'] = await signedVoucher(a, {
        payer: decodeAddress(a.address), worker: decodeAddress(card.openledger.worker), model: card.openledger.model, modelVersion: version,
        maxFee, terms: hexToU8a(m.terms), nonce: freshNonce(), expiresAt: best + 600, genesis: api.genesisHash.toU8a(),
        requestHash: chat ? chatRequestHash(messages) : completionRequestHash(sent),
      });
      status(`Asking ${model.value}, paying at most ${fmt(maxFee, true)}…`);
    } else {
      status(`Asking ${model.value}…`);
    }
    const r = await fetch(chat ? '/api/worker/v1/chat/completions' : '/api/worker/v1/completions', { method: 'POST', headers, body: JSON.stringify(body) });
    const out = await r.json();
    if (!r.ok) {
      const why = out.error?.message ?? `the worker answered ${r.status}`;
      // A conversation grows with every turn; past the model's context, only a new one helps.
      throw new Error(chat && turns.length > 0 && r.status === 400 ? `${why} (the conversation may be too long for the model: start a new conversation)` : why);
    }
    if (asked !== epoch) {
      // The user started over meanwhile: the answer (paid for) is not put into the new conversation.
      status(out.receipt ? `An answer to a conversation you left came back (receipt ${out.receipt.id.slice(0, 10)}…); it is not shown.` : 'An answer to a conversation you left came back; it is not shown.');
      return;
    }
    const n = ++answers;
    if (chat) {
      // The last answer keeps the ids; earlier turns stay in the conversation above it.
      if (answer.childNodes.length) {
        const earlier = h('li', { class: 'turn assistant' }, ...Array.from(answer.childNodes));
        earlier.querySelector('#receipt-link')?.removeAttribute('id');
        conversation.append(earlier);
      }
      conversation.append(h('li', { class: 'turn user' }, h('strong', {}, 'You: '), sent));
      const reply: string = out.choices?.[0]?.message?.content ?? '';
      turns = [...messages, { role: 'assistant', content: reply }];
      if (prompt.value === sent) prompt.value = '';
    }
    await renderAnswer(answer, out, n);
    status(out.receipt ? `Answered; receipt ${out.receipt.id.slice(0, 10)}… ${out.receipt.status}.` : 'Answered.', 'ok');
    await refreshEscrow();
  };
  const form = h('form', { 'aria-labelledby': 'pg-h' },
    h('h3', { id: 'pg-h' }, 'Ask a model'),
    h('label', { for: 'pg-model' }, 'Model'), model,
    h('label', { for: 'pg-mode' }, 'Mode'), mode,
    h('label', { for: 'pg-prompt' }, 'Message or prompt'), prompt,
    h('label', { for: 'pg-max' }, 'Max tokens'), maxTokens,
    h('label', {}, pay, ' Pay with a voucher from my escrow (the receipt settles on chain and pays the contributors)'),
    h('p', {}, h('button', { type: 'submit', id: 'pg-send' }, 'Send'), ' ',
      h('button', { type: 'button', class: 'secondary', id: 'pg-new', onclick: () => { restart(); status('A new conversation.'); } }, 'New conversation')),
  );
  onSubmit(form, ask, 'The request failed');
  show(
    h('h2', {}, 'Playground'),
    h('p', {}, escrow, ' ', h('label', { for: 'pg-deposit' }, 'Hold more (OPEN) '), amount, ' ',
      h('button', { type: 'button', class: 'secondary', id: 'pg-escrow-deposit', onclick: action(deposit) }, 'Deposit to escrow')),
    conversation,
    answer,
    form,
  );
  await refreshEscrow();
}

/** The answer with each span a contribution holds highlighted in that contribution's colour. */
async function renderAnswer(box: HTMLElement, out: any, n = 1) {
  const textOut: string = out.choices?.[0]?.text ?? out.choices?.[0]?.message?.content ?? '';
  const attr = out.attribution;
  const claims: any[] = attr?.claims ?? [];
  const shares: any[] = attr?.shares ?? [];
  const colour = new Map<string, string>();
  shares.forEach((s, i) => colour.set(refKey(s.contribution), PALETTE[i % PALETTE.length]));
  const names = new Map<number, string>();
  for (const d of new Set(shares.map((s) => s.contribution.datanet))) {
    const o: any = await api.query.datanets.datanets(d);
    names.set(d, o.isSome ? text(o.unwrap().name) : `Datanet ${d}`);
  }
  const label = (c: any) => {
    const share = shares.find((s) => refKey(s.contribution) === refKey(c))?.share ?? 0;
    return `${names.get(c.datanet) ?? `Datanet ${c.datanet}`} (Datanet ${c.datanet}), snapshot ${c.version}, leaf ${c.index}: ${percent(share)} of the attribution`;
  };
  // Claims are byte ranges of the UTF-8 answer; each highlight is described by its legend entry.
  const legendId = (c: any) => `legend-${n}-${refKey(c).replace(/\//g, '-')}`;
  const para = h('p', { class: 'answer' });
  for (const piece of pieces(textOut, claims)) {
    para.append(piece.claim
      ? h('mark', { style: `background:${colour.get(refKey(piece.claim.contribution)) ?? PALETTE[0]}`, title: label(piece.claim.contribution), tabindex: 0,
        'aria-describedby': legendId(piece.claim.contribution), 'data-contribution': refKey(piece.claim.contribution) }, piece.text)
      : piece.text);
  }
  box.replaceChildren(
    h('h3', {}, 'Answer'),
    para,
    shares.length
      ? h('ul', { 'aria-label': 'Attribution' }, ...shares.map((s) => h('li', { id: legendId(s.contribution) }, h('span', { class: 'swatch', style: `background:${colour.get(refKey(s.contribution))}` }), ' ', label(s.contribution))))
      : h('p', {}, 'No span of this answer is in the index.'),
    out.receipt && h('p', {}, 'Receipt ', h('a', { href: `#/receipt/${out.receipt.id}`, id: 'receipt-link' }, out.receipt.id), ` (${out.receipt.status}, fee ${fmt(BigInt(out.receipt.fee))})`),
    out.usage && h('p', { class: 'usage', 'data-prompt': out.usage.prompt_tokens, 'data-completion': out.usage.completion_tokens },
      `${out.usage.prompt_tokens} prompt tokens, ${out.usage.completion_tokens} answer tokens`),
  );
}

async function receiptPage(id: string) {
  let r: any = null;
  try {
    r = await rpc('attribution_getReceipt', [id]);
  } catch {
    // Not on chain (yet).
  }
  if (!r) {
    show(h('h2', {}, 'Receipt'), h('p', { class: 'hash' }, id), h('p', { id: 'receipt-state' }, 'Not settled on chain yet; this page checks again every 2 seconds.'));
    setTimeout(() => {
      if (location.hash === `#/receipt/${id}`) route();
    }, 2000);
    return;
  }
  show(
    h('h2', {}, 'Receipt'),
    h('p', { id: 'receipt-state' }, 'Settled on chain.'),
    h('dl', {},
      h('dt', {}, 'Request'), h('dd', { class: 'hash' }, r.requestId),
      h('dt', {}, 'Payer'), h('dd', {}, nameOf(r.payer)),
      h('dt', {}, 'Worker'), h('dd', {}, nameOf(r.worker)),
      h('dt', {}, 'Model'), h('dd', {}, `${r.model} v${r.modelVersion}`),
      h('dt', {}, 'Fee'), h('dd', {}, fmt(BigInt(r.fee))),
      h('dt', {}, 'Tokens'), h('dd', {}, `${r.promptTokens} prompt + ${r.completionTokens} answer`),
    ),
    h('h3', {}, 'Payouts'),
    h('div', { class: 'table-wrap' },
      h('table', { 'aria-label': 'Payouts' },
        h('thead', {}, h('tr', {}, ...['To', 'For', 'Amount'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, ...(r.payouts ?? []).map((p: any) =>
          h('tr', {}, h('td', {}, nameOf(p.account ?? '')), h('td', {}, p.kind === 'contribution' ? `contribution ${p.contribution.join('/')}` : p.kind), h('td', {}, fmt(BigInt(p.amount)))))),
      ),
    ),
  );
}

async function earningsPage() {
  const a = current();
  if (!a) return show(h('h2', {}, 'Earnings'), h('p', {}, 'Choose an account.'));
  const e = await rpc('attribution_earnings', [a.address]);
  const unclaimed = BigInt(e.unclaimed);
  // The account's contributions and what each has earned in every snapshot that holds it.
  const rows: HTMLElement[] = [];
  const earnedBy: [number, bigint][] = [];
  const names = new Map<number, string>();
  let after: number | null = null;
  for (let page = 0; page < 10; page++) {
    const p = await rpc('datanets_contributionsOf', [a.address, after, 100]);
    for (const c of p.items) {
      if (c.leaf === null || c.leaf === undefined) {
        rows.push(h('tr', {}, h('td', {}, c.id), h('td', {}, c.datanet), h('td', {}, c.status), h('td', {}, '–')));
        continue;
      }
      const leaf = c.leaf;
      const dn: any = ((await api.query.datanets.datanets(c.datanet)) as any).unwrap();
      let total = 0n;
      for (let v = 1; v <= dn.latestSnapshot.toNumber(); v++) total += BigInt(await rpc('attribution_contributionEarnings', [c.datanet, v, leaf]));
      names.set(c.datanet, text(dn.name));
      earnedBy.push([c.datanet, total]);
      rows.push(h('tr', {}, h('td', {}, c.id), h('td', {}, `${text(dn.name)} (${c.datanet})`), h('td', {}, `leaf ${leaf}`), h('td', {}, fmt(total))));
    }
    if (p.next === null || p.next === undefined) break;
    after = p.next;
  }
  // Per Datanet: this account's contributions summed, beside what the whole Datanet earned.
  const perDatanet = new Map<number, bigint>();
  for (const [dn, v] of earnedBy) perDatanet.set(dn, (perDatanet.get(dn) ?? 0n) + v);
  const datanetRows: HTMLElement[] = [];
  for (const [dn, mine] of perDatanet) {
    const all = BigInt(await rpc('attribution_datanetEarnings', [dn]));
    datanetRows.push(h('tr', {}, h('td', {}, `${names.get(dn)} (${dn})`), h('td', {}, fmt(mine)), h('td', {}, fmt(all))));
  }
  const earned = await history(async (at) => {
    const x = await rpc('attribution_earnings', [a.address, at]);
    return openNumber(x.accrued) + openNumber(x.pending);
  });
  const chartLabel = earned.length > 1
    ? `Earned (vested and pending) from block ${earned[0][0]} to ${earned[earned.length - 1][0]}: ${earned[0][1]} to ${earned[earned.length - 1][1]} OPEN`
    : 'Earned over time: not enough history on this node';
  show(
    h('h2', {}, `Earnings of ${a.name}`),
    h('dl', { id: 'earnings' },
      h('dt', {}, 'Claimable now'), h('dd', { id: 'unclaimed' }, fmt(unclaimed)),
      h('dt', {}, 'In the challenge window'), h('dd', {}, fmt(BigInt(e.pending))),
      h('dt', {}, 'Claimed so far'), h('dd', {}, fmt(BigInt(e.claimed))),
      h('dt', {}, 'Ever vested'), h('dd', {}, fmt(BigInt(e.accrued))),
    ),
    h('p', {}, h('button', { type: 'button', id: 'claim', disabled: unclaimed === 0n, onclick: action(() => submit(api.tx.attribution.claimRewards(a.address), 'Claiming rewards').then(route)) }, 'Claim')),
    h('h3', {}, 'Over time'),
    lineChart(earned, chartLabel, 'curve earnings-chart'),
    h('h3', {}, 'Per Datanet'),
    h('div', { class: 'table-wrap' },
      h('table', { 'aria-label': 'Earnings per Datanet' },
        h('thead', {}, h('tr', {}, ...['Datanet', 'Your contributions earned', 'The Datanet earned'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, ...datanetRows),
      ),
    ),
    h('h3', {}, 'Per contribution'),
    h('div', { class: 'table-wrap' },
      h('table', { 'aria-label': 'Earnings per contribution' },
        h('thead', {}, h('tr', {}, ...['Contribution', 'Datanet', 'Place', 'Earned'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, ...rows),
      ),
    ),
    await workerView(a.address),
    await stakingView(a.address),
  );
}

/** The account as an inference worker, if it is one: bond, delegators, commission, models, the
 *  staking rewards it and its delegators share. */
async function workerView(address: string): Promise<HTMLElement | null> {
  const w: any = await api.query.openStaking.workers(address);
  if (w.isNone) return null;
  const info = w.unwrap();
  const delegations = (await api.query.openStaking.delegations.entries(address)) as any[];
  const pool: any = await api.query.openStaking.poolBalance(address);
  return h('section', { id: 'worker-view', 'aria-labelledby': 'worker-h' },
    h('h3', { id: 'worker-h' }, 'As an inference worker'),
    h('dl', {},
      h('dt', {}, 'Status'), h('dd', {}, info.status.toString()),
      h('dt', {}, 'Own bond'), h('dd', { id: 'worker-bond' }, fmt(info.selfBond.toBigInt())),
      h('dt', {}, 'Delegated'), h('dd', {}, `${fmt(info.delegated.toBigInt())} from ${info.delegators.toNumber()} delegator(s)`),
      h('dt', {}, 'Commission'), h('dd', {}, `${(info.commission.toNumber() / 1e7).toFixed(1)} %`),
      h('dt', {}, 'Models served'), h('dd', { id: 'worker-models' }, info.models.map((m: any) => m.toString()).join(', ')),
      h('dt', {}, 'Rewards pool (shared with delegators)'), h('dd', {}, fmt(pool.toBigInt())),
    ),
    delegations.length > 0 && h('ul', { 'aria-label': 'Delegators' }, ...delegations.map(([k, v]: any) => h('li', {}, `${nameOf(k.args[1].toString())}: ${fmt(v.unwrap().toBigInt())}`))),
  );
}

/** `pallet_open_staking::REWARD_SCALE`: a pool's reward per unit of stake is kept scaled by it. */
const REWARD_SCALE = 10n ** 27n;

/** The account's staking rewards: settled ones, and per position (its own bond as a worker, its
 *  delegations) what the position has earned in the worker's pool, as the pallet reckons it
 *  (stake × reward per stake, rounded down, less the position's debt, at most the pool). A claim
 *  from a worker's pool settles that position and pays everything settled. */
async function stakingView(address: string): Promise<HTMLElement | null> {
  const settled = ((await api.query.openStaking.stakingRewards(address)) as any).toBigInt();
  const positions: { worker: string; stake: bigint; earned: bigint }[] = [];
  const others: string[] = [];
  for (const [k, v] of (await api.query.openStaking.workers.entries()) as any[]) {
    const worker = k.args[0].toString();
    if (worker !== address && v.unwrap().status.isActive) others.push(worker);
    let stake = 0n;
    if (worker === address) stake = v.unwrap().selfBond.toBigInt();
    else {
      const d: any = await api.query.openStaking.delegations(worker, address);
      stake = d.isSome ? d.unwrap().toBigInt() : 0n;
    }
    if (stake === 0n) continue;
    const [acc, debt, pool] = (await Promise.all([
      api.query.openStaking.rewardPerStake(worker), api.query.openStaking.rewardDebt(worker, address), api.query.openStaking.poolBalance(worker),
    ])).map((v: any) => v.toBigInt() as bigint);
    const share = (stake * acc) / REWARD_SCALE;
    let earned = acc === 0n || share <= debt ? 0n : share - debt;
    if (earned > pool) earned = pool;
    positions.push({ worker, stake, earned });
  }
  if (positions.length === 0 && settled === 0n && others.length === 0) return null;
  // A claim is free only when it pays at least the existential deposit.
  const ed = (api.consts.balances.existentialDeposit as any).toBigInt();
  const claim = (worker: string) => action(() => submit(api.tx.openStaking.claimStakingRewards(worker), 'Claiming staking rewards').then(route));
  // Delegating: stake behind an active worker (slashed with it) that earns a share of its rewards.
  const min = (api.consts.openStaking.minDelegation as any).toBigInt();
  const to = h('select', { id: 'delegate-worker' }, ...others.map((w) => h('option', { value: w }, nameOf(w))));
  const amount = h('input', { type: 'text', id: 'delegate-amount', inputmode: 'decimal', value: '', style: 'width:8em' });
  const delegateForm = others.length > 0 && h('form', { 'aria-labelledby': 'delegate-h' },
    h('h4', { id: 'delegate-h' }, 'Delegate to a worker'),
    h('p', {}, `Your stake is slashed with the worker's, and earns a share of its rewards after its commission; at least ${fmt(min, true)}.`),
    h('label', { for: 'delegate-worker' }, 'Worker'), to,
    h('label', { for: 'delegate-amount' }, 'Amount (OPEN)'), amount,
    h('p', {}, h('button', { type: 'submit', id: 'delegate-send' }, 'Delegate')));
  if (delegateForm) {
    onSubmit(delegateForm, async () => {
      const units = parseOpen(amount.value);
      if (units < min) throw new Error(`At least ${fmt(min, true)} can be delegated.`);
      await submit(api.tx.openStaking.delegate(to.value, units), `Delegating ${amount.value.trim()} to ${nameOf(to.value)}`);
      await route();
    }, 'Delegating failed');
  }
  return h('section', { id: 'staking-view', 'aria-labelledby': 'staking-h' },
    h('h3', { id: 'staking-h' }, 'Staking rewards'),
    h('p', {}, 'Settled, ready to claim: ', h('span', { id: 'staking-settled', 'data-planck': settled.toString() }, fmt(settled)), ' ',
      positions.length === 0 && h('button', { type: 'button', id: 'staking-claim', onclick: claim(address) }, 'Claim staking rewards')),
    positions.length > 0 && h('div', { class: 'table-wrap' },
      h('table', { 'aria-label': 'Staking positions' },
        h('thead', {}, h('tr', {}, ...['Worker', 'Your stake', 'Earned in its pool', 'Claim'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, ...positions.map((p) => h('tr', { 'data-worker': p.worker },
          h('td', {}, p.worker === address ? `${nameOf(p.worker)} (your own bond)` : nameOf(p.worker)),
          h('td', {}, fmt(p.stake)),
          h('td', { class: 'earned', 'data-planck': p.earned.toString() }, fmt(p.earned),
            p.earned + settled > 0n && p.earned + settled < ed && ' (below the existential deposit: claiming it costs a fee)'),
          h('td', {}, h('button', { type: 'button', class: 'secondary', disabled: p.earned + settled === 0n, onclick: claim(p.worker),
            'aria-label': `Claim staking rewards from ${nameOf(p.worker)}'s pool (and all settled ones)` }, 'Claim'))))),
      ),
    ),
    delegateForm,
  );
}

// ---- models -------------------------------------------------------------------------------

async function modelsPage() {
  const ids = (await api.query.models.models.keys()).map((k: any) => k.args[0].toNumber()).sort((a: number, b: number) => a - b).slice(0, 500);
  const ms = await Promise.all(ids.map((id: number) => rpc('models_getModel', [id])));
  show(
    h('h2', {}, 'Models'),
    h('div', { class: 'table-wrap' },
      h('table', { 'aria-label': 'Models' },
        h('thead', {}, h('tr', {}, ...['Id', 'Name', 'Kind', 'Owner', 'Base', 'Price / request', 'Price / 1k tokens'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, ...ms.map((m: any) => h('tr', {},
          h('td', {}, m.id), h('td', {}, h('a', { href: `#/model/${m.id}` }, m.name)), h('td', {}, m.kind), h('td', {}, nameOf(m.owner)),
          h('td', {}, m.base ?? '–'), h('td', {}, fmt(BigInt(m.pricePerRequest))), h('td', {}, fmt(BigInt(m.pricePer1kTokens)))))),
      ),
    ),
  );
}

/** Lineage as a graph: base → adapter → snapshots → Datanets, left to right (SVG, text nodes). */
function lineageGraph(base: any, m: any, snaps: { datanet: number; version: number; weight: number; name: string }[]) {
  const NS = 'http://www.w3.org/2000/svg';
  const el = (tag: string, attrs: Record<string, string | number>, text?: string) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const cols = [base ? [`${base.name} (base ${base.id})`] : [], [`${m.name} (model ${m.id})`], snaps.map((s) => `snapshot ${s.version} · ${(s.weight / 1e7).toFixed(1)} %`), snaps.map((s) => `${s.name} (Datanet ${s.datanet})`)];
  const colW = 230, rowH = 56, boxW = 200, boxH = 34;
  const rows = Math.max(1, ...cols.map((c) => c.length));
  const svg = el('svg', { viewBox: `0 0 ${cols.length * colW} ${rows * rowH + 10}`, role: 'img', 'aria-label': `Lineage of ${m.name}: ${cols.flat().join(' → ')}`, class: 'lineage' });
  const at = (c: number, r: number, n: number) => ({ x: c * colW + 10, y: 10 + ((rows - n) * rowH) / 2 + r * rowH });
  cols.forEach((col, c) => col.forEach((label, r) => {
    const p = at(c, r, col.length);
    if (c > 0) {
      const prev = cols[c - 1];
      // A Datanet hangs off its own snapshot; everything else off the one node before it.
      const q = at(c - 1, c === 3 ? r : 0, prev.length);
      if (prev.length) svg.append(el('line', { x1: q.x + boxW, y1: q.y + boxH / 2, x2: p.x, y2: p.y + boxH / 2, stroke: '#8a93a6', 'stroke-width': 1.5 }));
    }
    svg.append(el('rect', { x: p.x, y: p.y, width: boxW, height: boxH, rx: 6, fill: ['#e8eefc', '#dff3e4', '#fff5d6', '#fde7ef'][c], stroke: '#8a93a6' }));
    svg.append(el('text', { x: p.x + 8, y: p.y + 22, 'font-size': 12 }, label.length > 30 ? `${label.slice(0, 29)}…` : label));
  }));
  return svg;
}

async function modelPage(id: number) {
  let m: any;
  try {
    m = await rpc('models_getModel', [id]);
  } catch {
    return show(h('h2', {}, `No model ${id}`), h('p', {}, h('a', { href: '#/models' }, 'All models')));
  }
  const base = m.base !== null && m.base !== undefined ? await rpc('models_getModel', [m.base]) : null;
  const latest = m.versions.find((v: any) => v.version === m.latestVersion) ?? m.versions[m.versions.length - 1];
  const snaps = [];
  for (const l of latest?.lineage ?? []) {
    const d: any = await api.query.datanets.datanets(l.datanet);
    snaps.push({ datanet: l.datanet, version: l.version, weight: l.weightPerbill, name: d.isSome ? text(d.unwrap().name) : '?' });
  }
  const workers = (await api.query.openStaking.workers.entries())
    .filter(([, v]: any) => v.isSome && v.unwrap().models.some((x: any) => x.toNumber() === id))
    .map(([k]: any) => nameOf(k.args[0].toString()));
  const usage = await rpc('attribution_modelUsage', [id]).catch(() => null);
  const requests = await history(async (at) => (await rpc('attribution_modelUsage', [id, at])).requests);
  const usageLabel = requests.length > 1
    ? `Requests from block ${requests[0][0]} to ${requests[requests.length - 1][0]}: ${requests[0][1]} to ${requests[requests.length - 1][1]}`
    : 'Requests over time: not enough history on this node';
  show(
    h('p', {}, h('a', { href: '#/models' }, '← All models')),
    h('h2', {}, m.name),
    h('dl', {},
      h('dt', {}, 'Id'), h('dd', {}, id),
      h('dt', {}, 'Kind'), h('dd', {}, m.kind),
      h('dt', {}, 'Owner'), h('dd', {}, nameOf(m.owner)),
      h('dt', {}, 'License'), h('dd', {}, m.license),
      m.rank && h('dt', {}, 'LoRA'), m.rank && h('dd', {}, `rank ${m.rank}, alpha ${m.alpha}, ${m.targetModules.join(', ')}`),
      h('dt', {}, 'Price'), h('dd', {}, `${fmt(BigInt(m.pricePerRequest))} a request + ${fmt(BigInt(m.pricePer1kTokens))} per 1,000 tokens`),
      h('dt', {}, 'Revenue split'), h('dd', {}, Object.entries(m.splitPerbill).map(([k, v]) => `${k} ${((v as number) / 1e7).toFixed(1)} %`).join(', ')),
      h('dt', {}, 'Served by'), h('dd', { id: 'served-by' }, workers.length ? workers.join(', ') : 'no bonded worker'),
      usage && h('dt', {}, 'Usage'), usage && h('dd', {}, `${usage.requests} requests, ${usage.tokens} tokens`),
      h('dt', {}, 'Versions'), h('dd', {}, m.versions.map((v: any) => `v${v.version}${v.deprecated ? ' (deprecated)' : ''}`).join(', ')),
    ),
    h('h3', {}, 'Lineage'),
    lineageGraph(base, m, snaps),
    h('h3', {}, 'Usage over time'),
    lineChart(requests, usageLabel, 'curve usage-chart'),
  );
}

// ---- build (ModelFactory) -------------------------------------------------------------------

async function buildPage() {
  if (!cfg.worker) return show(h('h2', {}, 'Build'), h('p', {}, 'The Studio was started without a worker (--worker URL).'));
  const snapshots: { datanet: number; version: number; name: string; leaves: number }[] = [];
  for (const [k, v] of (await api.query.datanets.snapshots.entries()) as any[]) {
    const d: any = await api.query.datanets.datanets(k.args[0]);
    snapshots.push({ datanet: k.args[0].toNumber(), version: k.args[1].toNumber(), name: d.isSome ? text(d.unwrap().name) : '?', leaves: v.unwrap().leafCount.toNumber() });
  }
  snapshots.sort((a, b) => a.datanet - b.datanet || a.version - b.version);
  const num = (id: string, value: number | string, attrs: Record<string, unknown> = {}) => h('input', { type: 'text', inputmode: 'decimal', id, value, style: 'width:8em', ...attrs });
  const token = h('input', { type: 'password', id: 'fx-token', autocomplete: 'off', value: sessionStorage.getItem('factoryToken') ?? '' });
  const name = h('input', { type: 'text', id: 'fx-name', required: true, pattern: '[A-Za-z0-9_\\-][A-Za-z0-9._\\-]{0,127}' });
  const picks = snapshots.map((s) => h('input', { type: 'checkbox', id: `fx-snap-${s.datanet}-${s.version}`, value: `${s.datanet}/${s.version}` }));
  const knobs: Record<string, HTMLInputElement> = {
    rank: num('fx-rank', 8), alpha: num('fx-alpha', 16), lr: num('fx-lr', '0.01'), max_steps: num('fx-steps', 40),
    batch_size: num('fx-batch', 4), max_seq_len: num('fx-seq', 64), dropout: num('fx-dropout', 0), epochs: num('fx-epochs', ''),
    eval_fraction: num('fx-eval', '0.2'), seed: num('fx-seed', 1),
  };
  const targets = h('input', { type: 'text', id: 'fx-targets', value: 'q_proj,v_proj' });
  const license = h('input', { type: 'text', id: 'fx-license', value: 'CC-BY-4.0' });
  const field = (label: string, input: HTMLElement) => h('div', {}, h('label', { for: input.id }, label), input);
  const watch = h('section', { id: 'job', class: 'panel', 'aria-live': 'polite' });
  const form = h('form', { 'aria-labelledby': 'fx-h' },
    h('h3', { id: 'fx-h' }, 'Train a LoRA adapter'),
    field('Worker admin token (sent to the worker only, kept for this tab)', token),
    field('Adapter name', name),
    h('fieldset', {}, h('legend', {}, 'Snapshots to train on'),
      ...snapshots.map((s, i) => h('label', {}, picks[i], ` ${s.name} (Datanet ${s.datanet}) snapshot ${s.version}, ${s.leaves} records`))),
    field('Rank', knobs.rank), field('Learning rate', knobs.lr), field('Steps', knobs.max_steps),
    h('details', {}, h('summary', {}, 'Advanced'),
      field('Alpha', knobs.alpha), field('Dropout', knobs.dropout), field('Target modules (comma-separated, or all-linear)', targets),
      field('Batch size', knobs.batch_size), field('Max sequence length', knobs.max_seq_len), field('Epochs (empty: by steps)', knobs.epochs),
      field('Held-out fraction', knobs.eval_fraction), field('Seed', knobs.seed), field('License', license)),
    h('p', {}, h('button', { type: 'submit', id: 'fx-start' }, 'Start training')),
  );
  const auth = () => ({ authorization: `Bearer ${token.value}`, 'content-type': 'application/json' });
  const start = async () => {
    sessionStorage.setItem('factoryToken', token.value);
    const chosen = picks.filter((p) => p.checked).map((p) => p.value.split('/').map(Number));
    if (!chosen.length) throw new Error('Choose at least one snapshot.');
    const n = (k: string) => Number(knobs[k].value);
    const optim: Record<string, number> = { lr: n('lr'), max_steps: n('max_steps'), batch_size: n('batch_size'), max_seq_len: n('max_seq_len'), eval_fraction: n('eval_fraction'), seed: n('seed') };
    if (knobs.epochs.value.trim()) optim.epochs = n('epochs');
    const targetModules = targets.value.trim() === 'all-linear' ? 'all-linear' : targets.value.split(',').map((t) => t.trim()).filter(Boolean);
    const body = {
      name: name.value, license: license.value, snapshots: chosen.map(([datanet, version]) => ({ datanet, version, weight: 1 })),
      lora: { rank: n('rank'), alpha: n('alpha'), dropout: n('dropout'), target_modules: targetModules }, optim,
    };
    const r = await fetch('/api/worker/v1/factory/jobs', { method: 'POST', headers: auth(), body: JSON.stringify(body) });
    const out = await r.json();
    if (!r.ok) throw new Error(r.status === 401 ? 'The worker refused the admin token.' : out.error?.message ?? `the worker answered ${r.status}`);
    status(`Job ${out.id} started.`, 'ok');
    await follow(out.id);
  };
  // Polls the job: steps, loss curve, ETA; the evaluation report when done.
  const follow = async (id: number) => {
    const losses: [number, number][] = [];
    const t0 = Date.now();
    let step0 = -1;
    // Until the job ends, or the user leaves the page (its panel is gone).
    for (let first = true; first || watch.isConnected; first = false) {
      const r = await fetch(`/api/worker/v1/factory/jobs/${id}`, { headers: auth() });
      const j = await r.json();
      if (!r.ok) throw new Error(j.error?.message ?? `the worker answered ${r.status}`);
      if (j.loss !== null && j.loss !== undefined && (!losses.length || losses[losses.length - 1][0] !== j.step)) losses.push([j.step, j.loss]);
      if (step0 < 0 && j.step > 0) step0 = j.step;
      const rate = j.step > step0 && step0 >= 0 ? (j.step - step0) / ((Date.now() - t0) / 1000) : 0;
      const eta = rate > 0 && j.state === 'running' ? ` · about ${Math.ceil((j.total_steps - j.step) / rate)} s left` : '';
      const bar = h('progress', { max: j.total_steps || 1, value: j.step, 'aria-label': 'Training progress' });
      const report = j.report?.run;
      // The finished run's own loss curve when there is one (a short job may finish between polls).
      const curve: [number, number][] = report?.loss_curve?.length > 1 ? report.loss_curve : losses;
      watch.replaceChildren(...([
        h('h3', {}, `Job ${id}: ${j.state}`),
        bar, h('p', { id: 'job-steps' }, `step ${j.step} of ${j.total_steps}${j.loss != null ? ` · loss ${Number(j.loss).toFixed(4)}` : ''}${eta}`),
        lossCurve(curve),
        report && h('dl', { id: 'job-report' },
          h('dt', {}, 'Held-out loss'), h('dd', {}, `${report.eval_before.loss.toFixed(4)} → ${report.eval_after.loss.toFixed(4)}`),
          h('dt', {}, 'Perplexity'), h('dd', {}, `${Math.exp(report.eval_before.loss).toFixed(2)} → ${Math.exp(report.eval_after.loss).toFixed(2)}`)),
        j.model != null && h('p', {}, 'Registered on chain as ', h('a', { href: `#/model/${j.model}`, id: 'job-model' }, `model ${j.model}`), '.'),
        j.error && h('p', { class: 'error' }, j.error),
      ].filter(Boolean) as Node[]));
      if (j.state === 'done' || j.state === 'failed') {
        status(j.state === 'done' ? `Job ${id} done: model ${j.model} registered and served.` : `Job ${id} failed: ${j.error}`, j.state === 'done' ? 'ok' : 'error');
        return;
      }
      await new Promise((res) => setTimeout(res, 500));
    }
  };
  onSubmit(form, start, 'Training could not start');
  show(h('h2', {}, 'Build'), form, watch);
}

/** Loss over steps as an SVG polyline. */
function lossCurve(points: [number, number][]) {
  const label = points.length ? `Training loss from ${points[0][1].toFixed(3)} to ${points[points.length - 1][1].toFixed(3)}` : 'Training loss: no step yet';
  return lineChart(points, label, 'curve');
}

/** `points` (x ascending) as an SVG line scaled to its box, described by `label`. */
function lineChart(points: [number, number][], label: string, cls: string) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 400 120');
  svg.setAttribute('class', cls);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  if (points.length > 1) {
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const line = document.createElementNS(NS, 'polyline');
    line.setAttribute('points', points.map(([x, y]) => `${10 + (380 * (x - x0)) / Math.max(1, x1 - x0)},${110 - (100 * (y - y0)) / Math.max(1e-9, y1 - y0)}`).join(' '));
    line.setAttribute('fill', 'none');
    line.setAttribute('stroke', '#2450c8');
    line.setAttribute('stroke-width', '2');
    svg.append(line);
  }
  return svg;
}

/** `value(at)` at up to `n` blocks spread over the whole chain, oldest first; where the node has
 *  pruned the old states (a default node keeps about 256 blocks), over its last `span` blocks. */
async function history(value: (at: string) => Promise<number>, n = 12, span = 240): Promise<[number, number][]> {
  const best = (await api.rpc.chain.getHeader()).number.toNumber();
  const sample = async (from: number) => {
    const blocks = [...new Set(Array.from({ length: n }, (_, i) => Math.round(from + ((best - from) * i) / Math.max(1, n - 1))))];
    const out: [number, number][] = [];
    for (const b of blocks) {
      try {
        const at = (await api.rpc.chain.getBlockHash(b)).toHex();
        out.push([b, await value(at)]);
      } catch {
        // pruned
      }
    }
    return out;
  };
  const all = await sample(0);
  return all.length >= Math.min(n, best + 1) / 2 ? all : sample(Math.max(0, best - span));
}
const openNumber = (v: string | bigint) => Number(BigInt(v)) / 10 ** (api.registry.chainDecimals[0] ?? 18);

let renders = 0;
let routing: Promise<void> = Promise.resolve();
/** Draws the page the address names; calls run one after another, so a slow page can never
 *  overwrite the one the user moved on to. */
function route(): Promise<void> {
  routing = routing.then(draw, draw);
  return routing;
}
async function draw() {
  const m = /^#\/datanet\/(\d+)$/.exec(location.hash);
  const receipt = /^#\/receipt\/(0x[0-9a-fA-F]{64})$/.exec(location.hash);
  const model = /^#\/model\/(\d+)$/.exec(location.hash);
  try {
    if (m) await datanetPage(Number(m[1]));
    else if (model) await modelPage(Number(model[1]));
    else if (location.hash === '#/models') await modelsPage();
    else if (location.hash === '#/build') await buildPage();
    else if (receipt) await receiptPage(receipt[1]);
    else if (location.hash === '#/playground') await playgroundPage();
    else if (location.hash === '#/earnings') await earningsPage();
    else await datanetsPage();
    document.title = `${(main().querySelector('h2')?.textContent ?? 'Studio')} · OpenLedger Studio`;
  } catch (e) {
    status(`Could not load this page: ${(e as Error).message}`, 'error');
  } finally {
    // For tests and assistive tools: how many times the page has been drawn.
    document.body.dataset.rendered = String(++renders);
  }
}

async function start() {
  // The skip link moves the focus; it must not change the address (that would leave the page).
  document.querySelector('a.skip')?.addEventListener('click', (ev) => {
    ev.preventDefault();
    main().focus();
  });
  cfg = await (await fetch('/api/config')).json();
  await cryptoWaitReady();
  api = await ApiPromise.create({ provider: new WsProvider(cfg.rpc), noInitWarn: true });
  await loadAccounts();
  await refreshBalance();
  window.addEventListener('hashchange', route);
  await route();
  document.body.dataset.ready = 'true';
}

start().catch((e) => status(`Cannot reach the node: ${(e as Error).message}`, 'error'));
