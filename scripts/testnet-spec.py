#!/usr/bin/env python3
"""Fills chain-spec/testnet-template.json into the plain chain spec of a real testnet.

    scripts/testnet-spec.py --name "OpenLedger Testnet" --id openledger_testnet_1 \\
        --validator ACCOUNT:AURA:GRANDPA [--validator ...] \\
        --operator ACCOUNT [--operator ...] \\
        --bootnode /dns/boot-1.example.org/tcp/30333/p2p/12D3Koo... [--bootnode ...] \\
        [--telemetry wss://telemetry.example.org/submit/] --out testnet.json

ACCOUNT, AURA (sr25519) and GRANDPA (ed25519) are SS58 addresses (prefix 42), as
`openledger-node key generate --scheme sr25519|ed25519` prints them. The well-known development
keys (Alice ... Ferdie) are refused, and so is a spec with a placeholder left. Then:

    openledger-node build-spec --chain testnet.json --raw --disable-default-bootnode > testnet-raw.json

Standard library only. See the README, "Launching a testnet".
"""
import argparse
import hashlib
import json
import re
import sys

OPEN = 10**18
TOTAL_SUPPLY = 1_000_000_000 * OPEN
EXISTENTIAL_DEPOSIT = OPEN // 1000
ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

# Public keys of the development keys (sr25519 and ed25519 of //Alice ... //Ferdie, checked
# against `openledger-node key inspect`): anyone can sign with them.
DEV_KEYS = {
    "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d",  # Alice sr25519
    "8eaf04151687736326c9fea17e25fc5287613693c912909cb226aa4794f26a48",  # Bob
    "90b5ab205c6974c9ea841be688864633dc9ca8a357843eeacf2314649965fe22",  # Charlie
    "306721211d5404bd9da88e0204360a1a9ab8b87c66c1bc2fcdd37f3c2222cc20",  # Dave
    "e659a7a1628cdd93febc04a4e0646ea20e9f5f0ce097d9a05290d4a9e054df4e",  # Eve
    "1cbd2d43530a44705ad088af313e18f80b53ef16b36177cd4b77b846f2a5f07c",  # Ferdie
    "88dc3417d5058ec4b4503e0c12ea1a0a89be200fe98922423d4334014fa6b0ee",  # Alice ed25519
    "d17c2d7823ebf260fd138f2d7e27d114c0145d968b5ff5006125f2414fadae69",  # Bob
    "439660b36c6c03afafca027b910b4fecf99801834c62a5e6006f27d978de234f",  # Charlie
    "5e639b43e0052c47447dac87d6fd2b6ec50bdd4d0f614e4299c665249bbd09d9",  # Dave
    "1dfe3e22cc0d45c70779c1095f7489a8ef3cf52d62fbd8c2fa38c9f1723502b5",  # Eve
    "568cb4a574c6d178feb39c27dfc8b3f789e5f5423e19c71633c748b9acf086b5",  # Ferdie
}


def ss58_decode(address: str, what: str) -> bytes:
    """The 32-byte public key of an SS58 address of prefix 42, its checksum verified."""
    n = 0
    for ch in address:
        if ch not in ALPHABET:
            sys.exit(f"{what}: {address!r} is not an SS58 address")
        n = n * 58 + ALPHABET.index(ch)
    raw = n.to_bytes(35, "big") if n.bit_length() <= 280 else b""
    if len(raw) != 35 or raw[0] != 42:
        sys.exit(f"{what}: {address!r} is not a 32-byte SS58 address of prefix 42")
    checksum = hashlib.blake2b(b"SS58PRE" + raw[:33], digest_size=64).digest()[:2]
    if checksum != raw[33:]:
        sys.exit(f"{what}: {address!r} has a bad checksum")
    key = raw[1:33]
    if key.hex() in DEV_KEYS:
        sys.exit(f"{what}: {address} is a well-known development key")
    return key


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--template", default="chain-spec/testnet-template.json")
    p.add_argument("--name", required=True)
    p.add_argument("--id", required=True, help="chain id: lower case letters, digits and _")
    p.add_argument("--protocol-id", help="libp2p protocol id (default: the chain id)")
    p.add_argument("--validator", action="append", required=True, metavar="ACCOUNT:AURA:GRANDPA")
    p.add_argument("--operator", action="append", required=True, metavar="ACCOUNT",
                   help="receives an even part of the operators' 20 %% of the supply")
    p.add_argument("--bootnode", action="append", required=True, metavar="MULTIADDR")
    p.add_argument("--telemetry", action="append", default=[], metavar="URL")
    p.add_argument("--out", required=True)
    a = p.parse_args()

    if not re.fullmatch(r"[a-z0-9_]{1,64}", a.id):
        sys.exit("--id: lower case letters, digits and _ only")
    spec = json.load(open(a.template))
    patch = spec["genesis"]["runtimeGenesis"]["patch"]

    validators, keys, seen = [], [], set()
    for v in a.validator:
        parts = v.split(":")
        if len(parts) != 3:
            sys.exit(f"--validator {v!r}: ACCOUNT:AURA:GRANDPA")
        account, aura, grandpa = parts
        for what, addr in (("validator account", account), ("aura key", aura), ("grandpa key", grandpa)):
            key = ss58_decode(addr, what)
            if key in seen:
                sys.exit(f"{what} {addr} is used twice")
            seen.add(key)
        validators.append(account)
        keys.append([account, account, {"aura": aura, "grandpa": grandpa}])
    operators = []
    for o in a.operator:
        ss58_decode(o, "operator")
        if o in operators:
            sys.exit(f"operator {o} is listed twice")
        operators.append(o)
    for b in a.bootnode:
        if not re.fullmatch(r"/(ip4|ip6|dns|dns4|dns6)/[^/]+/tcp/\d+(/ws)?/p2p/12D3Koo[1-9A-HJ-NP-Za-km-z]{44,}", b):
            sys.exit(f"--bootnode {b!r}: /dns/<host>/tcp/<port>/p2p/<peer id> (see `key inspect-node-key`)")

    # The first three allocations are the treasury, the ecosystem reserve and the attribution pot
    # (runtime/src/genesis_config_presets.rs); the operators share 20 %, the remainder of an
    # uneven split goes to the treasury, as the runtime's own presets do.
    balances = patch["balances"]["balances"]
    operators_total = TOTAL_SUPPLY - 2 * (TOTAL_SUPPLY // 100 * 40)
    each, remainder = divmod(operators_total, len(operators))
    treasury = TOTAL_SUPPLY // 100 * 40 + remainder - EXISTENTIAL_DEPOSIT
    fixed = [[balances[0][0], treasury], [balances[1][0], TOTAL_SUPPLY // 100 * 40], [balances[2][0], EXISTENTIAL_DEPOSIT]]
    patch["balances"]["balances"] = fixed + [[o, each] for o in operators]
    assert sum(b for _, b in patch["balances"]["balances"]) == TOTAL_SUPPLY

    patch["validatorSet"] = {"validators": validators}
    patch["session"] = {"keys": keys}
    patch["origins"] = {"timing": "Real"}
    patch.pop("sudo", None)
    spec["name"], spec["id"] = a.name, a.id
    spec["protocolId"] = a.protocol_id or a.id
    spec["bootNodes"] = a.bootnode
    spec["telemetryEndpoints"] = [[t, 0] for t in a.telemetry] or None
    spec["chainType"] = "Live"

    text = json.dumps(spec, indent=2)
    if "<" in json.dumps({k: v for k, v in spec.items() if k != "genesis"}) or "<" in json.dumps(patch):
        sys.exit("a placeholder is left in the spec")
    with open(a.out, "w") as f:
        f.write(text + "\n")
    print(f"wrote {a.out}: {len(validators)} validators, {len(operators)} operators, {len(a.bootnode)} boot nodes")


if __name__ == "__main__":
    main()
