"""Issue 24, attack 2: a user id could take a name the daemon uses itself (`_archive`, `_tmp`, ...). Every such
name is a 400 naming the field at the API, and nothing of it reaches the data dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemon.core.db import ProjectVersion
from sync import names

NEW = "/build-preview-for-new-project"
REBUILD = "/rebuild-preview"
# The attack's names, each reserved name of the table, and the prefixes the rule keeps for the daemon.
RESERVED = ["_archive", "_tmp", ".x", "-x", "_x", "Tmp", *sorted(n for n in names.RESERVED_NAMES if "." not in n)]


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for sub in ("projects", "objects", "previews")
            for p in (root / sub).rglob("*")} if root.is_dir() else set()


@pytest.mark.parametrize("name", RESERVED)
def test_reserved_name_is_400_naming_the_field_everywhere(api: Any, name: str) -> None:
    data_dir = api.daemon.rt.layout.data_dir
    before = _files(data_dir)
    for field in ("userId", "projectId"):
        body = {"userId": "u1", "projectId": "p1", "prompt": "A bakery site", field: name}
        for path in (NEW, REBUILD):
            r = api.post(path, body, params={"wait": "false"})
            assert r.status_code == 400, (path, field, r.text)
            assert r.json()["error"]["field"] == field, r.text
        user, project = (name, "p1") if field == "userId" else ("u1", name)
        r = api.get("/versions", params={"userId": user, "projectId": project})
        assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text
        for tail in ("preview", "undo", "redo"):
            method = api.get if tail == "preview" else (lambda p: api.post(p, {}))
            r = method(f"/projects/{user}/{project}/{tail}")
            assert r.status_code == 400 and r.json()["error"]["field"] == field, (tail, r.text)
    r = api.put(f"/users/{name}/plan", {"plan": "x"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "userId", r.text
    assert ProjectVersion.select().count() == 0
    assert _files(data_dir) == before


def test_archive_user_cannot_charge_carol(api: Any) -> None:
    """The attack as reported: user `_archive` building project `carol` wrote `objects/_archive/carol/...`, which
    the store (and the storage recount) reads as user carol's archived objects."""
    r = api.post(NEW, {"userId": "_archive", "projectId": "carol", "prompt": "24 MB of noise"},
                 params={"wait": "false"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "userId", r.text
    assert "starting with a letter or digit, not a reserved name" in r.json()["error"]["message"], r.text
    objects = api.daemon.rt.layout.objects
    assert not (objects / "_archive" / "carol").exists()
    assert ProjectVersion.select().count() == 0


def test_ordinary_ids_are_still_accepted(api: Any) -> None:
    for user in ("carol", "tmpx", "archive", "u_1", "9lives"):
        r = api.post(NEW, {"userId": user, "projectId": "p-1", "prompt": "A bakery site"}, params={"wait": "false"})
        assert r.status_code == 202, r.text
