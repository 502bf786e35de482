"""[plans.<name>] and [quotas] (issue 19): every key checked with one line naming it; no plans = quotas off."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.core import config, quotas
from daemon.core.config import ConfigError, load

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()


def _load(tmp_path: Path, text: str) -> config.Config:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return load(p, env={})


def test_plans_load_with_their_limits_and_overrides(tmp_path: Path) -> None:
    cfg = _load(tmp_path, '[quotas]\ndefault_plan = "free"\n[plans.free]\nbuilds = 50\nbuild_cpu_seconds = 600\n'
                          'new_projects_per_user_per_hour = 2\n[plans.pro-2]\nstorage_bytes = 10_000_000\n')
    assert set(cfg.plans) == {"free", "pro-2"} and quotas.enabled(cfg)
    assert cfg.plans["free"].build_cpu_seconds == 600.0 and cfg.plans["free"].storage_bytes == 0
    assert quotas.limits_of(cfg.plans["free"]) == {"builds": 50.0, "build_cpu_seconds": 600.0}
    assert quotas.rate_cap(cfg, cfg.plans["free"], "new_projects_per_user_per_hour") == 2
    assert quotas.rate_cap(cfg, cfg.plans["free"], "rebuilds_per_project_per_hour") == 20  # the global cap


def test_no_plans_means_quotas_off(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "[server]\nport = 8081\n")
    assert not quotas.enabled(cfg) and cfg.plans == {}
    assert quotas.plan_for(cfg, "u1") == (None, None)


@pytest.mark.parametrize(("toml", "needle"), [
    ("[plans.free]\nbuilds = -1\n", "[plans.free] builds: must be >= 0, got -1"),
    ("[plans.free]\nbuilds = 1.5\n", "[plans.free] builds: must be an integer"),
    ("[plans.free]\nbuild_cpu_seconds = \"lots\"\n", "[plans.free] build_cpu_seconds: must be a number"),
    ("[plans.free]\nbuild = 3\n", "[plans.free] build: unknown key (known: build_cpu_seconds, builds,"),
    ("[plans.free]\nconcurrent_projects = true\n", "[plans.free] concurrent_projects: must be an integer"),
    ("[plans.\"no way\"]\nbuilds = 1\n", "[plans.no way]: a plan name is"),
    ("plans = 3\n", "[plans]: must hold tables"),
    ("[plans]\nfree = 3\n", "[plans.free]: must be a table"),
    ("[quotas]\ndefault_plan = \"gold\"\n[plans.free]\nbuilds = 1\n", "[quotas] default_plan: no [plans.gold]"),
    ("[quotas]\nalert_ratio = 2\n", "[quotas] alert_ratio: must be <= 1"),
    ("[quotas]\nplan = \"x\"\n", "[quotas] plan: unknown key"),
])
def test_bad_plan_values_give_one_line_naming_the_key(tmp_path: Path, toml: str, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, toml)
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_every_plan_key_is_documented() -> None:
    example = config.render_example()
    for f in config.plan_fields():
        assert f"`[plans.<name>] {f.name}`" in README
        assert f"# {f.name} = " in example and f"# {f.metadata['help']}" in example


def test_months_and_their_resets() -> None:
    assert quotas.iso(quotas.month_reset("2026-12")) == "2027-01-01T00:00:00Z"
    assert quotas.iso(quotas.month_reset("2026-02")) == "2026-03-01T00:00:00Z"
    for bad in ("2026-1", "2026-00", "26-12-01", "abcd-ef", 202612):
        with pytest.raises(Exception, match="month must be YYYY-MM"):
            quotas.check_month(bad)


def test_an_upgraded_state_db_gets_a_meter_row_per_existing_version(tmp_path: Path) -> None:
    from daemon.core import db

    db.connect(tmp_path)
    now = db.utcnow()
    db.ProjectVersion.create(version_id="01" + "A" * 24, user_id="u1", project_id="p", prompt="x", status="deployed",
                             created_at=now, kind="rebuild")
    db.ProjectVersion.create(version_id="01" + "B" * 24, user_id="u1", project_id="q", prompt="x", status="building",
                             created_at=now)
    db.database.execute_sql("DROP TABLE build_usage")  # as a state.db from before the meter
    db.connect(tmp_path)
    rows = {r.version_id: r for r in db.BuildUsage.select()}
    assert set(rows) == {"01" + "A" * 24, "01" + "B" * 24}
    assert rows["01" + "A" * 24].finished and not rows["01" + "B" * 24].finished
    assert rows["01" + "A" * 24].kind == "rebuild" and rows["01" + "A" * 24].month == quotas.month_of(now)
    assert quotas.usage_of("u1", quotas.month_of(now), live=False).builds == 2
    db.connect(tmp_path)  # once only: a later start adds nothing
    assert db.BuildUsage.select().count() == 2
    db.database.close()


def test_live_alias_redeploys_count_as_the_users_pages_deployments(tmp_path: Path) -> None:
    from daemon.core import db

    db.connect(tmp_path)
    month = quotas.month_of(db.utcnow())
    for i, user in enumerate(("u1", "u1", "u2")):
        db.AliasRedeploy.create(user_id=user, project_id="p", version_id=f"v{i}", deployment_id=f"d{i}", month=month)
    db.AliasRedeploy.create(user_id="u1", project_id="p", version_id="old", deployment_id="d9", month="2001-01")
    assert quotas.usage_of("u1", month).pages_deployments == 2
    assert quotas.usage_of("u1", month, live=False).pages_deployments == 2
    assert quotas.usage_of("u3", month).pages_deployments == 0
    db.database.close()
