// The README's reference tables, generated, never typed:
// - calls: from the runtime metadata of a running node (each call of the OpenLedger pallets, its
//   arguments with their Rust types, the first paragraph of its doc comment);
// - JSON-RPC: from the RPC module definitions (`node/src/rpc/*.rs`: each `#[method]` of an
//   `#[rpc]` trait, its parameters in order, its result, and the fields of every result struct,
//   as serde writes them).
// `scripts/gen-docs.sh` writes them into the README between `<!-- generated:NAME -->` and
// `<!-- /generated:NAME -->`; `readme.test.js` fails when the README differs.
import { readFileSync } from 'node:fs';
import { u8aConcat, u8aToHex } from '@polkadot/util';
import { blake2AsHex, blake2AsU8a, decodeAddress } from '@polkadot/util-crypto';
import { join } from 'node:path';

export const OUR_PALLETS = ['datanets', 'models', 'openStaking', 'attribution', 'validatorSet'];
const RPC_DIR = join(import.meta.dirname, '..', '..', '..', 'node', 'src', 'rpc');
const RPC_FILES = ['mod.rs', 'datanets.rs', 'models.rs', 'attribution.rs'];

const cell = (s) => s.replace(/\[`([^`\]]+)`\]/g, '`$1`').replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim();
export const snake = (camel) => camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
export const camel = (s) => s.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());

/** The first paragraph of a doc comment (lines up to the first blank one), on one line. */
function firstParagraph(lines) {
  const out = [];
  for (const l of lines) {
    if (!l.trim()) {
      if (out.length) break;
      continue;
    }
    out.push(l.trim());
  }
  return out.join(' ');
}

/** Markdown tables of every call of the OpenLedger pallets, from `api`'s metadata. */
export function callTables(api) {
  const sections = [];
  for (const pallet of OUR_PALLETS) {
    const rows = ['| call | arguments | what |', '|---|---|---|'];
    for (const [name, tx] of Object.entries(api.tx[pallet])) {
      const meta = tx.meta;
      const args = meta.args.map((a) => {
        const type = a.typeName.isSome ? a.typeName.unwrap().toString() : api.registry.lookup.getTypeDef(a.type).type;
        return `\`${snake(a.name.toString())}: ${type}\``;
      });
      const docs = firstParagraph(meta.docs.map((d) => d.toString()));
      rows.push(`| \`${snake(name)}\` | ${args.join(', ') || '—'} | ${cell(docs)} |`);
    }
    sections.push(`**\`${pallet}\`** (pallet index ${api.tx[pallet][Object.keys(api.tx[pallet])[0]].callIndex[0]})\n\n${rows.join('\n')}`);
  }
  return sections.join('\n\n');
}

/** `a, b<c, d>, {e, f}` split at top-level commas. */
export function splitTop(s) {
  const out = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if ('<([{'.includes(ch)) depth++;
    if ('>)]}'.includes(ch)) depth--;
    if (ch === ',' && depth === 0) {
      if (cur.trim()) out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** A Rust type as the JSON it (de)serializes to; `structs` are the result structs by name. */
function jsonType(t, structs) {
  t = t.trim();
  let m;
  if ((m = t.match(/^Option<(.*)>$/))) return `${jsonType(m[1], structs)} \\| null`;
  if ((m = t.match(/^Vec<(.*)>$/))) return `[${jsonType(m[1], structs)}]`;
  if ((m = t.match(/^\((.*)\)$/))) return `[${splitTop(m[1]).map((x) => jsonType(x, structs)).join(', ')}]`;
  if ((m = t.match(/^(?:std::collections::)?BTreeMap<String,\s*(.*)>$/))) return `{ string: ${jsonType(m[1], structs)} }`;
  if (/^(u8|u16|u32|u64|i32|usize|DatanetId|ContributionId|ModelId|ModelVersion|SnapshotVersion|LeafIndex|BlockNumber|ReasonCode)$/.test(t)) return 'number';
  if (/^(Hash|H256|RequestId)$/.test(t)) return '"0x…" (32 bytes)';
  if (t === 'String') return 'string';
  if (t === 'bool') return 'boolean';
  if (structs.has(t)) return `\`${t}\``;
  return t;
}

/** Doc comments, attributes and the item after them, from Rust source. */
function parseRpcSources(files = RPC_FILES) {
  const methods = [];
  const structs = new Map();
  for (const f of files) {
    const lines = readFileSync(join(RPC_DIR, f), 'utf8').split('\n');
    let docs = [];
    let method = null;
    let camelCase = false;
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i].trim();
      if (l.startsWith('///')) { docs.push(l.replace(/^\/\/\/ ?/, '')); continue; }
      let m;
      if ((m = l.match(/^#\[method\(name = "([^"]+)"/))) { method = m[1]; continue; }
      if (l.startsWith('#[serde(rename_all = "camelCase")]')) { camelCase = true; continue; }
      if (l.startsWith('#[')) continue;
      if (method && (m = l.match(/^(?:async )?fn \w+\(&self,?\s*(.*)\)\s*->\s*RpcResult<(.*)>;$/))) {
        const params = splitTop(m[1]).map((p) => { const [n, ...t] = p.split(':'); return { name: n.trim(), type: t.join(':').trim() }; });
        methods.push({ name: method, docs: firstParagraph(docs), params, result: m[2].trim(), file: f });
        method = null;
      } else if ((m = l.match(/^pub struct (\w+)\s*\{$/)) && camelCase) {
        const fields = [];
        let fdocs = [];
        for (i++; i < lines.length && lines[i].trim() !== '}'; i++) {
          const fl = lines[i].trim();
          if (fl.startsWith('///')) { fdocs.push(fl.replace(/^\/\/\/ ?/, '')); continue; }
          const fm = fl.match(/^pub (\w+): (.*),$/);
          if (fm) { fields.push({ name: camel(fm[1]), type: fm[2], docs: firstParagraph(fdocs) }); fdocs = []; }
        }
        structs.set(m[1], { docs: firstParagraph(docs), fields });
      }
      docs = [];
      camelCase = false;
    }
  }
  return { methods, structs };
}

/** Markdown tables of the node's own JSON-RPC methods and their result types. */
export function rpcTables() {
  const { methods, structs } = parseRpcSources();
  const used = new Set();
  const note = (t) => { for (const [name] of structs) if (new RegExp(`\\b${name}\\b`).test(t)) used.add(name); };
  const rows = ['| method | params (in order) | result | what |', '|---|---|---|---|'];
  for (const m of methods) {
    const params = m.params.map((p) => `\`${p.name}${p.type.startsWith('Option<') ? '?' : ''}: ${jsonType(p.type.replace(/^Option<(.*)>$/, '$1'), structs)}\``);
    note(m.result);
    rows.push(`| \`${m.name}\` | ${params.join(', ')} | ${jsonType(m.result, structs)} | ${cell(m.docs)} |`);
  }
  // Result structs, and the structs their fields name, in order of first use.
  const queue = [...used];
  for (let i = 0; i < queue.length; i++) {
    for (const f of structs.get(queue[i]).fields) {
      for (const [name] of structs) if (!queue.includes(name) && new RegExp(`\\b${name}\\b`).test(f.type)) queue.push(name);
    }
  }
  const types = queue.map((name) => {
    const s = structs.get(name);
    const fr = s.fields.map((f) => `| \`${f.name}\` | ${jsonType(f.type, structs)} | ${cell(f.docs)} |`);
    return `\`${name}\`${s.docs ? ` — ${cell(s.docs)}` : ''}\n\n| field | JSON | meaning |\n|---|---|---|\n${fr.join('\n')}`;
  });
  return `${rows.join('\n')}\n\nAmounts are decimal strings in the smallest unit (10⁻¹⁸ OPEN), accounts SS58, hashes \`0x\` hex; \`at?\` is an optional block hash (the best block if omitted or null). Result types:\n\n${types.join('\n\n')}`;
}

/** `text` with the block `name` replaced by `body`; throws if the markers are missing. */
export function replaceBlock(text, name, body) {
  const open = `<!-- generated:${name} -->`;
  const close = `<!-- /generated:${name} -->`;
  const a = text.indexOf(open);
  const b = text.indexOf(close);
  if (a < 0 || b < a) throw new Error(`the README has no ${open} … ${close} block`);
  return `${text.slice(0, a + open.length)}\n${body}\n${text.slice(b)}`;
}

/** The contents of block `name` in `text`, or null. */
export function block(text, name) {
  const open = `<!-- generated:${name} -->`;
  const a = text.indexOf(open);
  const b = text.indexOf(`<!-- /generated:${name} -->`);
  return a < 0 || b < a ? null : text.slice(a + open.length + 1, b - 1);
}

/**
 * A worked voucher example, byte for byte, built with the runtime's own type from the metadata
 * (`OpenledgerPrimitivesReceiptVoucher`), independent of the CLI and the SDK helpers.
 */
export function voucherExample(api) {
  const prompt = 'The court held that';
  const requestHash = blake2AsHex(api.createType('(Text, Text)', ['completion', prompt]).toU8a(), 256);
  const fields = [
    ['payer', 'AccountId32', '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY', '//Alice'],
    ['worker', 'AccountId32', '5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y', '//Charlie'],
    ['model', 'u32', 1, ''],
    ['model_version', 'u32', 1, ''],
    ['max_fee', 'u128', '10000000000000000', '0.01 OPEN'],
    ['terms', 'H256', '0x' + '11'.repeat(32), 'from `models_getModel` `terms`'],
    ['nonce', 'u64', 7, ''],
    ['expires_at', 'u32', 1000, 'a block number'],
    ['genesis', 'H256', '0x' + '22'.repeat(32), '`chain_getBlockHash(0)`'],
    ['request_hash', 'H256', requestHash, `blake2-256 of SCALE ("completion", "${prompt}")`],
  ];
  const value = Object.fromEntries(fields.map(([n, , v]) => [n, v]));
  const voucher = api.createType('OpenledgerPrimitivesReceiptVoucher', value);
  const domain = api.createType('Bytes', 'openledger:voucher:v4').toU8a();
  const payload = u8aConcat(domain, voucher.toU8a());
  const rows = fields.map(([n, t, v, note]) => {
    const bytes = api.createType(t, n === 'payer' || n === 'worker' ? decodeAddress(v) : v).toU8a();
    return `| \`${n}\` | ${t} | \`${v}\`${note ? ` (${note})` : ''} | \`${u8aToHex(bytes)}\` |`;
  });
  return [
    '| field | type | value | SCALE bytes |',
    '|---|---|---|---|',
    ...rows,
    '',
    `- domain, SCALE \`Vec<u8>\` (compact length 21 = \`0x54\`, then the ASCII): \`${u8aToHex(domain)}\``,
    `- signed bytes = domain ‖ voucher (${payload.length} bytes): \`${u8aToHex(payload)}\``,
    `- request id = blake2-256(signed bytes): \`${u8aToHex(blake2AsU8a(payload, 256))}\``,
    '- `X-OpenLedger-Voucher` = hex(voucher ‖ `0x01` ‖ the 64-byte sr25519 signature of the signed bytes); `0x01` is `MultiSignature::Sr25519` (sr25519 signatures are randomized, so none is shown)',
  ].join('\n');
}
