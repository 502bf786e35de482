"""First build with a streamed 20 s generation vs the same build non-streamed, two daemons in one run, interleaved.

The generator is the `claude` backend over tests/fakes/claude answering the template's React + Vite + Tailwind app
(package.json first, as the system prompt orders it) in text deltas spread over `--generation-s` seconds. Prints:
  streamed first build (request -> deployed) vs generation + bundle      (target <= 1.10: the install hidden)
  streamed / non-streamed (the same build, stream = false)               (the baseline of this run)
  the median `timings` of each
Run: .venv/bin/python bench/streamed_generation.py [--runs N] [--generation-s S]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.pipeline_vs_shell import PROMPT, Daemon  # noqa: E402
from daemon.generators import GenerationRequest, make_generator  # noqa: E402

FAKE_CLAUDE = REPO / "tests" / "fakes" / "claude"


def answer() -> str:
    """The template's app as a Claude answer: scaffold (package.json first) in templateFiles, sources in files."""
    contract = make_generator("template").generate(GenerationRequest(prompt=PROMPT), lambda _l: None).contract
    scaffold = ["package.json", *sorted(p for p in contract.files if p != "package.json" and not p.startswith("src/"))]
    data = dict(contract.meta)
    data["templateFiles"] = [{"path": p, "content": contract.files[p]} for p in scaffold]
    data["files"] = [{"path": p, "content": c} for p, c in sorted(contract.files.items()) if p.startswith("src/")]
    return json.dumps(data, indent=1)


def wrapper(root: Path, generation_s: float) -> Path:
    """The daemon hands its generator an allow-listed environment only: the fake's settings ride in a wrapper."""
    (root / "answer.json").write_text(answer())
    path = root / "claude"
    path.write_text(f"#!/bin/sh\nexport FAKE_CLAUDE_RESULT='{root / 'answer.json'}' "
                    f"FAKE_CLAUDE_PAUSE_S={generation_s} FAKE_CLAUDE_CHUNK=400\n"
                    f"exec '{sys.executable}' '{FAKE_CLAUDE}' \"$@\"\n")
    path.chmod(0o755)
    return path


def daemon(root: Path, claude: Path, stream: bool) -> Daemon:
    os.environ["BENCH_EXTRA_TOML"] = (f'[generator]|backend = "claude"|claude_executable = "{claude}"|'
                                      f"stream = {'true' if stream else 'false'}|")
    try:
        return Daemon(root, checks="record")
    finally:
        os.environ.pop("BENCH_EXTRA_TOML", None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--generation-s", type=float, default=20.0)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="previewd-bench-stream-"))
    claude = wrapper(root, args.generation_s)
    made: dict[str, Daemon] = {}
    try:
        made["streamed"] = daemon(root / "streamed", claude, stream=True)
        made["plain"] = daemon(root / "plain", claude, stream=False)
        for d in made.values():
            d.build("warmup", PROMPT)  # fills each daemon's store: every measured build is a warm-store first build
        totals: dict[str, list[float]] = {k: [] for k in made}
        rows: dict[str, list[dict[str, int]]] = {k: [] for k in made}
        for i in range(args.runs):
            for name in (("streamed", "plain") if i % 2 == 0 else ("plain", "streamed")):
                t, vid = made[name].build_v(f"p{i}", PROMPT)
                totals[name].append(t)
                rows[name].append(made[name].timings(vid))
    finally:
        for d in made.values():
            d.stop()
        shutil.rmtree(root, ignore_errors=True)

    def med(name: str, key: str) -> float:
        return statistics.median(r.get(key, 0) for r in rows[name]) / 1000

    s, p = statistics.median(totals["streamed"]), statistics.median(totals["plain"])
    gen, bundle = med("streamed", "generate"), med("streamed", "bundle")
    print(f"streamed first build : {s:6.2f}s   generation {gen:.2f}s + bundle {bundle:.2f}s = {gen + bundle:.2f}s   "
          f"ratio {s / (gen + bundle):.3f}  (target <= 1.10, median of {args.runs})")
    print(f"non-streamed (baseline, same run): {p:6.2f}s   streamed / non-streamed {s / p:.3f}   "
          f"saved {p - s:.2f}s (install {med('plain', 'install'):.2f}s in the baseline)")
    for name in made:
        keys = ("generate", "install", "checks", "bundle", "deploy", "total")
        print(f"timings, {name:<9}: " + ", ".join(f"{k} {med(name, k):.2f}s" for k in keys))


if __name__ == "__main__":
    main()
