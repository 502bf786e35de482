"""A runtime on a temp data dir with fake generator, deployer and pnpm: the pipeline without a worker or a network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.core.config import load
from daemon.runtime import Runtime
from daemon.steps.pipeline import Pipeline
from tests.support import TEST_SECRET
from tests.unit.pipeline.fakes import FakeGenerator, MemoryDeployer, write_fake_pnpm


class Bench:
    """The runtime under test and its fakes."""

    def __init__(self, rt: Runtime, gen: FakeGenerator, dep: MemoryDeployer) -> None:
        self.rt, self.gen, self.dep = rt, gen, dep
        self.pipeline = Pipeline(rt)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    pnpm = write_fake_pnpm(tmp_path)
    path = tmp_path / "previewd.toml"
    path.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\npnpm = "{pnpm}"\n[build]\naudit = "off"\n'
                    '[render]\nenabled = false\n[sandbox]\nreadonly_root = false\nallow_unconfined = true\n')
    cfg = load(path, env={"PREVIEWD_HMAC_SECRET": TEST_SECRET})
    gen, dep = FakeGenerator(), MemoryDeployer()
    rt = Runtime(cfg, generator=gen, deployer=dep)
    yield Bench(rt, gen, dep)
    rt.close()
