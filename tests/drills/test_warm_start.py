"""Warm start (issue 29): a droplet joining the fleet imports the fleet's hot packages from the shared store cache in
the bucket (moto) before it takes builds, refuses poisoned objects, and its first build downloads nothing from the
registry for the hot set (pnpm's own reporter line says so). Real pnpm, real registry, real S3 protocol."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

from daemon.fleet.warmstart import WarmStart
from daemon.project import toolchain
from sync.objects.s3 import S3ObjectStore
from sync.storecache import StoreCache
from tests.drills.fleet_support import Fleet, fleet_of
from tests.support import SHARED_STORE, wait_until

HOT = "is-number@7.0.0,picocolors@1.1.1"
POISONED = "ms@2.1.3"  # in the hot set, but one of its files in the bucket is replaced
CACHE = "_store-cache/"  # the runtime's prefix for the store cache in the bucket


def _index_names(store: Path) -> set[str]:
    return {p.name.split("-", 1)[1] for p in (store / "v10" / "index").glob("*/*.json")}


def _publish_from_a_real_install(tmp: Path, fleet: Fleet, packages: str) -> dict[str, dict[str, object]]:
    """What a droplet's install publishes (WarmStart.publish_now, as the install step hands it the lockfile):
    a real `pnpm install` into the suite's shared store, published to the bucket from that store."""
    work = tmp / "pub"
    work.mkdir()
    (work / "package.json").write_text(json.dumps(
        {"name": "pub", "private": True, "dependencies": dict(p.rsplit("@", 1) for p in packages.split(","))}))
    tc = toolchain.resolve()
    argv = toolchain.install_argv(tc, SHARED_STORE, "", tmp / "pub-cache")
    subprocess.run(argv, cwd=work, env={"PATH": tc.path_env, "HOME": str(tmp)}, check=True, capture_output=True,
                   timeout=300)
    objects = S3ObjectStore(fleet.bucket, endpoint_url=fleet.moto, region="us-east-1", access_key="testing",
                            secret_key="testing", prefix=CACHE)
    warm = WarmStart(StoreCache(objects, SHARED_STORE, tmp, "warm-a"), resolve=None, budget_bytes=2**40,
                     timeout_s=0)
    warm.publish_now((work / "pnpm-lock.yaml").read_text())
    assert (warm.published, warm.publish_refused) == (3, 0)
    return _hot_of(fleet, "warm-a")  # type: ignore[return-value]


def _hot_of(fleet: Fleet, droplet: str) -> dict[str, object]:
    try:
        body = fleet.admin.get_object(Bucket=fleet.bucket, Key=f"{CACHE}hot/{droplet}.json")["Body"].read()
    except fleet.admin.exceptions.NoSuchKey:
        return {}
    return json.loads(body)  # type: ignore[no-any-return]


def test_new_droplet_warms_from_the_bucket_and_refuses_poison(tmp_path: Path, moto_endpoint: str) -> None:
    with fleet_of(tmp_path, moto_endpoint) as fleet:
        hot = _publish_from_a_real_install(tmp_path, fleet, f"{HOT},{POISONED}")
        assert len(hot) == 3, hot
        admin, bucket = fleet.admin, fleet.bucket

        # Poison 1: one file in a hot package's bundle replaced by other bytes (its name is the sha512 it had).
        ms_key = f"{CACHE}packages/{base64.b64decode(str(hot[POISONED]['integrity'])[7:]).hex()}.tar"
        src = io.BytesIO(admin.get_object(Bucket=bucket, Key=ms_key)["Body"].read())
        bad = io.BytesIO()
        with tarfile.open(fileobj=src) as old, tarfile.open(fileobj=bad, mode="w") as new:
            for m in old:
                f = old.extractfile(m)
                data = b"module.exports = () => 'owned'\n" if m.name != "index.json" else f.read()  # type: ignore
                info = tarfile.TarInfo(m.name)
                info.size = len(data)
                new.addfile(info, io.BytesIO(data))
        admin.put_object(Bucket=bucket, Key=ms_key, Body=bad.getvalue())
        # Poison 2: a hot entry and a bundle for a real package under an integrity the registry does not give it.
        fake = "sha512-" + base64.b64encode(hashlib.sha512(b"evil tarball").digest()).decode()
        admin.put_object(Bucket=bucket, Key=CACHE + "hot/evil.json", Body=json.dumps(
            {"is-odd@3.0.1": {"integrity": fake, "uses": 1000, "bytes": 10}}).encode())
        admin.copy_object(Bucket=bucket, CopySource={"Bucket": bucket, "Key": ms_key},
                          Key=f"{CACHE}packages/{hashlib.sha512(b'evil tarball').hexdigest()}.tar")

        # A brand-new droplet with a store of its own (the other test daemons share one to stay warm).
        b = fleet.droplet("warm-b", f'[paths]\npnpm_store = "{tmp_path / "store-b"}"\n',
                          start_timeout_s=120)
        # started: /healthz answered 200, so the warm-up is over
        status = b.get("/ops/fleet").json()["warmStart"]
        assert status["state"] == "warm", status
        assert status["hot"] == 4 and status["done"] == 2 and status["refused"] == 2, status
        held = _index_names(tmp_path / "store-b")
        assert {"is-number@7.0.0.json", "picocolors@1.1.1.json"} <= held, held
        assert not {n for n in held if n.startswith(("ms@", "is-odd@"))}, held  # refused whole, never half-imported
        health = b.get("/healthz", params={"detail": "1"})
        assert health.json()["warmStart"]["refused"] == 2, health.text

        second = b.build("u2", "p2", f"deps:{HOT} on b")
        assert second["success"] is True, second
        log = (b.data_dir / "logs" / f"{second['versionId']}.log").read_text()
        progress = re.findall(r"Progress: resolved (\d+), reused (\d+), downloaded (\d+), added (\d+), done", log)
        assert progress and progress[-1] == ("2", "2", "0", "2"), log[-2000:]  # no tarball from the registry
        # b's own install handed its lockfile to the publisher: b's hot list names what it installed
        wait_until(lambda: _hot_of(fleet, "warm-b").keys() == {"is-number@7.0.0", "picocolors@1.1.1"}, 30,
                   what="warm-b publishing its install")
