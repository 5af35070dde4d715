"""The unmodified `openai` client against `openledger pay-proxy`: one completion, one streamed
chat; then requests until the proxy's daily cap refuses one. Prints one JSON object."""
import json
import sys

import openai

base_url, model, prompt = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base_url, api_key="local-proxy", max_retries=0)
out = {}
c = client.completions.create(model=model, prompt=prompt, max_tokens=6, temperature=0)
out["completion"] = {"text": c.choices[0].text, "receipt": (c.model_extra or {}).get("receipt")}
stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}], max_tokens=5,
                                        temperature=0, stream=True)
text, receipt = "", None
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    receipt = (chunk.model_extra or {}).get("receipt") or receipt
out["chat"] = {"text": text, "receipt": receipt}
refused = None
for i in range(20):
    try:
        client.completions.create(model=model, prompt=prompt, max_tokens=6, temperature=0)
    except openai.APIStatusError as e:
        refused = {"status": e.status_code, "after": i, "body": e.body}
        break
out["refused"] = refused
print(json.dumps(out))
