"""Shared by the worker's Python tests and benchmarks: a free loopback port, and a worker
started on it (stopped by its process id by the caller)."""
import os
import socket
import subprocess
import time
import urllib.request

WORKER_BIN = os.environ.get("WORKER_BIN", os.path.expanduser("~/.cache/openledger/target-worker/release/openledger-worker"))
# The benchmarks' binary, built beside the worker.
BENCH_BIN = os.environ.get("BENCH_BIN", os.path.join(os.path.dirname(WORKER_BIN), "openledger-bench"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def serve(args, log_dir, worker=WORKER_BIN, name=None):
    """Starts `worker serve ARGS` on a free loopback port, its output in LOG_DIR; returns
    (process, base URL) once /health answers, or raises with the log if it exits first."""
    port = free_port()
    log_path = os.path.join(str(log_dir), f"worker-{name or port}.log")
    log = open(log_path, "w")
    proc = subprocess.Popen([worker, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(open(log_path).read())
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"the worker did not come up: {open(log_path).read()}")
