"""Deploy time of a one-file change vs a full deploy of the same site, measured in one run (interleaved, medians).

Prints, as ratios against the full deploy measured in this same run (target: the delta follows the change):
  local deployer alone          one-file change / full      (unchanged files hard-linked from the last deployment)
  local as the pipeline calls it (sanitised copy + deployer)
  Cloudflare Pages (fake API + fake wrangler: the assets it already has are not uploaded again)
for a small app (the template's dist shape) and a large site (hundreds of assets, tens of MB).
Run: .venv/bin/python bench/deploy_delta.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from daemon.core import ids  # noqa: E402
from daemon.deployers.base import Deployer, DeployRequest  # noqa: E402
from daemon.deployers.cloudflare.deployer import CloudflareDeployer  # noqa: E402
from daemon.deployers.local import LocalDeployer  # noqa: E402
from daemon.deployers.sanitize import SanitizingDeployer  # noqa: E402
from tests.fakes.cf_pages_api import FakePagesApi  # noqa: E402

WRANGLER = REPO / "tests" / "fakes" / "wrangler"


def make_site(root: Path, assets: int, asset_bytes: int, images: int, image_bytes: int) -> Path:
    """A Vite-like dist: index.html, hashed JS/CSS assets, images (random bytes: nothing compresses)."""
    out = root / "dist"
    (out / "assets").mkdir(parents=True)
    (out / "index.html").write_text("<!doctype html><script type=module src=/assets/index-0.js></script>")
    for i in range(assets):
        (out / "assets" / f"chunk{i}-{i:08x}.js").write_bytes(b"/*js*/" + os.urandom(asset_bytes))
    for i in range(images):
        (out / "assets" / f"photo{i}-{i:08x}.webp").write_bytes(os.urandom(image_bytes))
    return out


def change_one(site: Path, n: int) -> None:
    """One source edit: the entry chunk changes (Vite renames it; the same effect on what is copied)."""
    (site / "assets" / "chunk0-00000000.js").write_bytes(f"/*edit {n}*/".encode() + os.urandom(2048))


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(name: str, make: Callable[[], Deployer], site: Path, runs: int, reset: Callable[[], None]) -> None:
    """Median full deploy (a project never deployed, `reset` forgets what the backend holds) vs median deploy of
    a one-file change of a project deployed just before, interleaved."""
    dep = make()
    full: list[float] = []
    delta: list[float] = []
    for i in range(runs):
        reset()
        project = f"full{i}"
        full.append(timed(lambda p=project: dep.deploy(DeployRequest(site, "bench", p, ids.new_version_id(), "x"),
                                                       lambda _l: None)))
        change_one(site, i)
        delta.append(timed(lambda p=project: dep.deploy(DeployRequest(site, "bench", p, ids.new_version_id(), "x"),
                                                        lambda _l: None)))
    f, d = statistics.median(full), statistics.median(delta)
    print(f"  {name:<44} full {f * 1000:8.1f} ms   one-file change {d * 1000:8.1f} ms   ratio {d / f:.3f}")


def run_shape(base: Path, shape: tuple[int, int, int, int], api: FakePagesApi, runs: int) -> None:
    """The three deploy paths on one site shape."""
    site = make_site(base, *shape)
    previews = base / "previews"

    def forget() -> None:
        shutil.rmtree(previews, ignore_errors=True)

    measure("local deployer", lambda: LocalDeployer(previews), site, runs, forget)
    measure("local, sanitised copy + deployer (pipeline)",
            lambda: SanitizingDeployer(LocalDeployer(previews), base / "scratch"), site, runs, forget)
    measure("Cloudflare Pages (fake API, fake wrangler)",
            lambda: CloudflareDeployer(api.account_id, api.token, api.project, api_base=api.base_url,
                                       wrangler=(sys.executable, str(WRANGLER)), timeout_s=300),
            site, max(3, runs // 2), api.assets.clear)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="previewd-deploy-delta-"))
    api = FakePagesApi().start()
    try:
        shapes = {"small app (6 files, 0.3 MB)": (4, 60_000, 1, 60_000),
                  "large site (420 files, 42 MB)": (300, 40_000, 119, 250_000)}
        for label, shape in shapes.items():
            print(label)
            run_shape(root / label.split()[0], shape, api, args.runs)
    finally:
        api.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
