"""Load for the worker's overload runs (tests/worker/test_hostile.py, scripts/bench-overload.sh):
every user asks for completions without think time. Answers are reported by outcome:
`admitted` (200) and `refused` (429 with Retry-After, the worker protecting itself); anything
else — a 429 without Retry-After, a 5xx, a dropped connection — is a failure."""
import random

from locust import FastHttpUser, constant, task


class Client(FastHttpUser):
    wait_time = constant(0)

    @task
    def complete(self):
        body = {"model": random.choice(["legal", "demo-base"]), "prompt": "The river runs through",
                "max_tokens": 24, "temperature": 0.8, "seed": random.randrange(1 << 30)}
        with self.client.post("/v1/completions", json=body, catch_response=True, name="admitted") as r:
            if r.status_code == 200:
                r.success()
            elif r.status_code == 429 and r.headers.get("retry-after"):
                r.request_meta["name"] = "refused"
                r.success()
            else:
                r.request_meta["name"] = "error"
                r.failure(f"{r.status_code}: {r.text[:200] if r.text else ''}")
