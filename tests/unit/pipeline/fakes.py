"""In-memory fakes of the Generator and Deployer Protocols, and a fake `pnpm` executable, for pipeline unit tests."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.core.contract import ContractError, validate_contract
from daemon.deployers.base import DeployError, Deployment, DeployRequest, DeployState
from daemon.generators import GenerationError, GenerationRequest, GenerationResult
from tests.fakes.tiny_generator import contract_json

# Speaks the slice of pnpm's command line the pipeline uses: --version, install, run build, audit.
FAKE_PNPM = r'''#!{python}
import json, os, subprocess, sys
args = sys.argv[1:]
if args == ["--version"]:
    print("10.0.0"); sys.exit(0)
cmd = args[0] if args else ""
if cmd == "install":
    os.makedirs("node_modules", exist_ok=True)
    open("node_modules/.modules.yaml", "w").write("layoutVersion: 5\n")
    open("pnpm-lock.yaml", "w").write("lockfileVersion: '9.0'\n")
    if os.path.isdir("fake-bin"):  # the project's stand-ins for tsc/eslint become node_modules/.bin entries
        os.makedirs("node_modules/.bin", exist_ok=True)
        for name in os.listdir("fake-bin"):
            dst = os.path.join("node_modules/.bin", name)
            open(dst, "w").write(open(os.path.join("fake-bin", name)).read())
            os.chmod(dst, 0o755)
    print("installed (fake)"); sys.exit(0)
if cmd == "run" and args[-1] == "build":
    script = json.load(open("package.json"))["scripts"]["build"]
    env = dict(os.environ, PATH=os.path.abspath("node_modules/.bin") + os.pathsep + os.environ.get("PATH", ""))
    sys.exit(subprocess.call(["/bin/sh", "-c", script], env=env))
if cmd == "audit":
    print(json.dumps({{"metadata": {{"vulnerabilities": {{"critical": 0}}}}}})); sys.exit(0)
print(f"fake pnpm: unsupported {{args}}", file=sys.stderr); sys.exit(2)
'''


def write_fake_pnpm(directory: Path) -> Path:
    """An executable `pnpm` stand-in in `directory`; returns its path."""
    path = directory / "pnpm"
    path.write_text(FAKE_PNPM.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def page_project(title: str, build: str = "mkdir -p dist && cp index.html dist/") -> dict[str, Any]:
    """A contract (parsed JSON) for a page whose build copies index.html into dist/."""
    return json.loads(contract_json(build, {"index.html": f"<h1>{title}</h1>"}))


class FakeGenerator:
    """Returns the queued contracts in order (a `GenerationError` or any exception is raised instead)."""

    name = "fake"

    def __init__(self) -> None:
        self.queue: list[Any] = []
        self.requests: list[GenerationRequest] = []

    def generate(self, req: GenerationRequest, log: Callable[[str], None]) -> GenerationResult:
        self.requests.append(req)
        item = self.queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        try:
            return GenerationResult(contract=validate_contract(item, allow_delta=req.is_rebuild))
        except ContractError:
            raise
        except Exception as exc:  # pragma: no cover - a broken test input
            raise GenerationError(str(exc)) from exc


class MemoryDeployer:
    """Keeps each deployment's files in memory; `state` decides whether deploys confirm at once."""

    name = "memory"
    serves_previews = False
    supports_alias = False
    counts_pages_quota = False
    records_deployment_id = True

    def __init__(self, state: DeployState = "deployed") -> None:
        self.state: DeployState = state
        self.fail_with: str | None = None
        self.sites: dict[str, dict[str, bytes]] = {}
        self.deleted: list[str] = []

    def deploy(self, req: DeployRequest, log: Callable[[str], None]) -> Deployment:
        if self.fail_with:
            raise DeployError(self.fail_with)
        dep_id = f"{req.project_id}-{req.version_id.lower()}"
        files = {}
        for root, _dirs, names in os.walk(req.out_dir):
            for n in names:
                p = Path(root) / n
                files[p.relative_to(req.out_dir).as_posix()] = p.read_bytes()
        self.sites[dep_id] = files
        return Deployment(dep_id, f"http://{dep_id}.example.test/", self.state)

    def status(self, deployment_id: str) -> Deployment:
        if deployment_id not in self.sites:
            raise DeployError(f"unknown deployment {deployment_id}")
        return Deployment(deployment_id, f"http://{deployment_id}.example.test/", "deployed")

    def delete(self, deployment_id: str) -> None:
        self.sites.pop(deployment_id, None)
        self.deleted.append(deployment_id)

    def alias_url(self, user_id: str, project_id: str) -> str | None:
        return None
