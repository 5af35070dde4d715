// Splits an answer into plain and highlighted pieces from claims given as UTF-8 byte ranges.
// A claim's ends may fall inside a multi-byte character (the worker extends and cuts matches
// byte by byte); each end is moved forward to the next character boundary, so every piece is
// whole characters and the pieces joined are exactly the answer. Overlapping claims: the first
// (by start) wins.

export interface Claim {
  start: number;
  end: number;
  contribution: { datanet: number; version: number; index: number };
}
export interface Piece {
  text: string;
  claim?: Claim;
}

/** The first character boundary at or after byte `i` (continuation bytes are 10xxxxxx). */
function boundary(bytes: Uint8Array, i: number): number {
  let j = Math.min(Math.max(0, i), bytes.length);
  while (j < bytes.length && (bytes[j] & 0xc0) === 0x80) j += 1;
  return j;
}

export function pieces(answer: string, claims: Claim[]): Piece[] {
  const bytes = new TextEncoder().encode(answer);
  const dec = new TextDecoder();
  const out: Piece[] = [];
  let at = 0;
  for (const c of claims.slice().sort((x, y) => x.start - y.start)) {
    if (!(Number.isInteger(c.start) && Number.isInteger(c.end)) || c.end > bytes.length) continue; // not of this answer
    const start = boundary(bytes, c.start);
    const end = boundary(bytes, c.end);
    if (start < at || end <= start) continue;
    if (start > at) out.push({ text: dec.decode(bytes.subarray(at, start)) });
    out.push({ text: dec.decode(bytes.subarray(start, end)), claim: c });
    at = end;
  }
  if (at < bytes.length) out.push({ text: dec.decode(bytes.subarray(at)) });
  return out;
}
