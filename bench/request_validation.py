"""Benchmark: validating a request body once (issue 25), each figure against a baseline measured in this run.

1. A build body decoded into its struct with every rule (daemon/intake/requests.py) vs decoded into a struct of
   the same fields with no rules (the bare msgspec decode): the rules' cost as a ratio.
2. The old shape, decode then `to_builtins` then a second validation of the dict, vs the same baseline.
3. Loading config.example.toml (every section converted by its struct) vs `tomllib.loads` of the same text.

Run: .venv/bin/python bench/request_validation.py [--n 20000]
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daemon.core import config  # noqa: E402
from daemon.intake import requests  # noqa: E402


class Bare(msgspec.Struct, rename="camel"):
    user_id: str
    project_id: str
    prompt: str
    framework: str | None = None
    target_package: str | None = None
    org_id: str | None = None


RAW = msgspec.json.encode({"userId": "user-42", "projectId": "bakery", "prompt": "A bakery site with a menu " * 8,
                           "framework": "react", "targetPackage": "./apps/web", "orgId": "acme"})


def _per_call(fn: Callable[[], object], n: int) -> float:
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    n = ap.parse_args().n
    bare = msgspec.json.Decoder(Bare).decode
    once = msgspec.json.Decoder(requests.NewProjectBody).decode
    base = _per_call(lambda: bare(RAW), n)
    new = _per_call(lambda: once(RAW), n)
    twice = _per_call(lambda: msgspec.convert(msgspec.to_builtins(once(RAW)), requests.NewProjectBody), n)
    print(f"bare decode (baseline): {base * 1e6:.2f} us/body")
    print(f"decode with every rule, once: {new * 1e6:.2f} us/body = {new / base:.2f}x baseline")
    print(f"old shape, decode + to_builtins + second check: {twice * 1e6:.2f} us/body = {twice / base:.2f}x baseline"
          f" ({twice / new:.2f}x validating once)")
    path = ROOT / "config.example.toml"
    text = path.read_text()
    toml = _per_call(lambda: tomllib.loads(text), 200)
    load = _per_call(lambda: config.load(path, env={}), 200)
    print(f"config.example.toml: tomllib.loads {toml * 1e3:.3f} ms (baseline), config.load {load * 1e3:.3f} ms = "
          f"{load / toml:.2f}x baseline")


if __name__ == "__main__":
    main()
