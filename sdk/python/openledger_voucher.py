"""Vouchers for OpenLedger inference workers, in plain Python.

A voucher pays for one request to one worker. Sign it with the payer's sr25519 key and send it
in the ``X-OpenLedger-Voucher`` header of ``POST /v1/completions`` or
``/v1/chat/completions``; the worker answers and settles a receipt against the payer's escrow.

Needs only ``py-sr25519-bindings`` (``pip install py-sr25519-bindings``) and the standard
library. The bytes are those of ``openledger_primitives::receipt`` (SCALE):

- voucher = payer (32) ‖ worker (32) ‖ model u32 ‖ model_version u32 ‖ max_fee u128 ‖
  terms (32) ‖ nonce u64 ‖ expires_at u32 ‖ genesis (32) ‖ request_hash (32), little-endian;
- signed bytes = compact(len("openledger:voucher:v4")) ‖ "openledger:voucher:v4" ‖ voucher;
- request id = blake2b-256(signed bytes);
- header = hex(voucher ‖ 0x01 ‖ sr25519 signature (64)) — 0x01 is ``MultiSignature::Sr25519``.

Example::

    import openledger_voucher as ov
    key = ov.Keypair.from_seed(bytes.fromhex(SEED_HEX))
    q = ov.quote("http://127.0.0.1:9944", model=1)          # terms and version from the chain
    v = ov.Voucher(payer=key.public, worker=ov.ss58_decode(WORKER), model=1,
                   model_version=q["version"], max_fee=10**16, terms=q["terms"],
                   nonce=ov.fresh_nonce(), expires_at=q["best"] + 600,
                   genesis=q["genesis"], request_hash=ov.completion_request_hash(prompt))
    headers = {"X-OpenLedger-Voucher": v.header(key)}
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.request
from dataclasses import dataclass

import sr25519

VOUCHER_DOMAIN = b"openledger:voucher:v4"
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def blake2_256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def compact(n: int) -> bytes:
    """SCALE compact integer."""
    if n < 0:
        raise ValueError("compact integers are unsigned")
    if n < 1 << 6:
        return bytes([n << 2])
    if n < 1 << 14:
        return ((n << 2) | 1).to_bytes(2, "little")
    if n < 1 << 30:
        return ((n << 2) | 2).to_bytes(4, "little")
    body = n.to_bytes((n.bit_length() + 7) // 8, "little")
    return bytes([((len(body) - 4) << 2) | 3]) + body


def text(s: str) -> bytes:
    """SCALE string / Vec<u8>: compact length, then the UTF-8 bytes."""
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return compact(len(b)) + b


def completion_request_hash(prompt: str) -> bytes:
    """What a voucher names for ``/v1/completions`` of ``prompt``."""
    return blake2_256(text("completion") + text(prompt))


def chat_request_hash(messages) -> bytes:
    """What a voucher names for ``/v1/chat/completions``: ``messages`` as (role, text content)."""
    out = text("chat") + compact(len(messages))
    for m in messages:
        role, content = (m["role"], m.get("content") or "") if isinstance(m, dict) else m
        if isinstance(content, list):
            content = "".join(p["text"] for p in content if p.get("type") == "text")
        out += text(role) + text(content)
    return blake2_256(out)


def ss58_decode(address: str) -> bytes:
    """The 32-byte account of an SS58 address (checksum checked)."""
    if not address or any(c not in _B58 for c in address):
        raise ValueError(f"not an SS58 address: {address!r}")
    n = 0
    for c in address:
        n = n * 58 + _B58.index(c)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "little")[::-1]
    raw = b"\0" * (len(address) - len(address.lstrip("1"))) + raw
    if len(raw) < 35:
        raise ValueError(f"not an SS58 account address: {address}")
    prefix_len = 1 if raw[0] < 64 else 2
    body, check = raw[: prefix_len + 32], raw[prefix_len + 32 :]
    if len(check) != 2 or hashlib.blake2b(b"SS58PRE" + body).digest()[:2] != check:
        raise ValueError(f"bad SS58 address: {address}")
    return body[prefix_len:]


def ss58_encode(public: bytes, prefix: int = 42) -> str:
    body = bytes([prefix]) + public
    raw = body + hashlib.blake2b(b"SS58PRE" + body).digest()[:2]
    n, out = int.from_bytes(raw, "big"), ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


@dataclass
class Keypair:
    public: bytes
    secret: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> "Keypair":
        """The key of a 32-byte seed (the node and polkadot-js take the same seed as ``0x…``)."""
        public, secret = sr25519.pair_from_seed(seed)
        return cls(public, secret)

    def sign(self, message: bytes) -> bytes:
        return sr25519.sign((self.public, self.secret), message)


@dataclass
class Voucher:
    payer: bytes
    worker: bytes
    model: int
    model_version: int
    max_fee: int
    terms: bytes
    nonce: int
    expires_at: int
    genesis: bytes
    request_hash: bytes

    def encode(self) -> bytes:
        for name in ("payer", "worker", "terms", "genesis", "request_hash"):
            if len(getattr(self, name)) != 32:
                raise ValueError(f"{name} must be 32 bytes")
        return (
            self.payer + self.worker + self.model.to_bytes(4, "little") + self.model_version.to_bytes(4, "little")
            + self.max_fee.to_bytes(16, "little") + self.terms + self.nonce.to_bytes(8, "little")
            + self.expires_at.to_bytes(4, "little") + self.genesis + self.request_hash
        )

    def signing_payload(self) -> bytes:
        """The bytes the payer signs."""
        return text(VOUCHER_DOMAIN) + self.encode()

    def request_id(self) -> str:
        return "0x" + blake2_256(self.signing_payload()).hex()

    def header(self, key: Keypair) -> str:
        """The ``X-OpenLedger-Voucher`` header value, signed by ``key`` (the payer)."""
        if key.public != self.payer:
            raise ValueError("the voucher's payer is not this key")
        return "0x" + (self.encode() + b"\x01" + key.sign(self.signing_payload())).hex()


def fresh_nonce() -> int:
    """A nonce unique in practice (a reused one is refused by the chain, never charged twice)."""
    return int.from_bytes(os.urandom(8), "little")


def _rpc(url: str, method: str, params: list):
    url = url.replace("ws://", "http://").replace("wss://", "https://")
    req = urllib.request.Request(url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        body = json.load(r)
    if "error" in body:
        raise RuntimeError(f"{method}: {body['error']}")
    return body["result"]


def quote(node_url: str, model: int) -> dict:
    """What a voucher for ``model`` must name, read from a node: its latest version that is not
    deprecated, the terms hash, the price (smallest units), the genesis hash and the best block."""
    m = _rpc(node_url, "models_getModel", [model])
    versions = [v["version"] for v in m["versions"] if not v["deprecated"]]
    if not versions:
        raise ValueError(f"model {model} has no version that is not deprecated")
    return {
        "version": max(versions),
        "terms": bytes.fromhex(m["terms"][2:]),
        "price_per_request": int(m["pricePerRequest"]),
        "price_per_1k_tokens": int(m["pricePer1kTokens"]),
        "genesis": bytes.fromhex(_rpc(node_url, "chain_getBlockHash", [0])[2:]),
        "best": int(_rpc(node_url, "chain_getHeader", [])["number"], 16),
    }
