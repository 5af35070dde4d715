"""The Python voucher helper (sdk/python) against a real node and worker: signs a voucher for
one completion as the payer of a 32-byte seed and sends it. Prints the payer's address, the
request id and the worker's answer as JSON."""
import json
import sys
import urllib.request

import openledger_voucher as ov

node, worker_url, seed, worker, model, prompt = sys.argv[1:7]
key = ov.Keypair.from_seed(bytes.fromhex(seed.removeprefix("0x")))
q = ov.quote(node, int(model))
v = ov.Voucher(payer=key.public, worker=ov.ss58_decode(worker), model=int(model), model_version=q["version"],
               max_fee=10**16, terms=q["terms"], nonce=ov.fresh_nonce(), expires_at=q["best"] + 600,
               genesis=q["genesis"], request_hash=ov.completion_request_hash(prompt))
req = urllib.request.Request(worker_url + "/v1/completions",
                             json.dumps({"model": "legal", "prompt": prompt, "max_tokens": 5, "temperature": 0}).encode(),
                             {"content-type": "application/json", "x-openledger-voucher": v.header(key)})
with urllib.request.urlopen(req, timeout=120) as r:
    body = json.load(r)
print(json.dumps({"payer": ov.ss58_encode(key.public), "requestId": v.request_id(), "answer": body}))
