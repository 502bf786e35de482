"""One composition root (issue 25): handlers and dashboard pages receive typed services, never the runtime.

No module of `daemon.api` or `daemon.ui` imports `daemon.runtime` or `daemon.wiring` (every import counts: module
level, function-local, `if TYPE_CHECKING:`; the walker of test_import_layers), the dashboard imports nothing from
the API, and every handler parameter typed by a service carries the name the root registers that service under.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path

from tests.unit.test_import_layers import GRAPH, _tree, import_graph

HANDLER_ROOMS = ("daemon.api", "daemon.ui")
FORBIDDEN = ("daemon.runtime", "daemon.wiring")


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def reaching_the_root(graph: dict[str, set[str]]) -> list[str]:
    """Every import, by a module of the handler rooms, of the runtime or the composition root."""
    return [f"{m} imports {t}" for m, targets in sorted(graph.items())
            if any(_inside(m, room) for room in HANDLER_ROOMS)
            for t in sorted(targets) if any(_inside(t, f) for f in FORBIDDEN)]


def ui_reaching_api(graph: dict[str, set[str]]) -> list[str]:
    """Every import of an API module by a dashboard module."""
    return [f"{m} imports {t}" for m, targets in sorted(graph.items()) if _inside(m, "daemon.ui")
            for t in sorted(targets) if _inside(t, "daemon.api")]


def test_handlers_and_pages_never_import_the_runtime_or_the_root() -> None:
    bad = reaching_the_root(GRAPH)
    assert not bad, ("handlers and pages take services by injection (daemon/services/), registered once by "
                     "daemon/wiring.py; they never import the runtime or the root:\n  " + "\n  ".join(bad))


def test_the_dashboard_imports_nothing_from_the_api() -> None:
    bad = ui_reaching_api(GRAPH)
    assert not bad, ("the dashboard calls the same services as the API, never its handlers; move a shared helper "
                     "below both (daemon/services/):\n  " + "\n  ".join(bad))


def test_the_rules_see_every_spelling(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "daemon/__init__.py": "",
        "daemon/runtime.py": "class Runtime: ...\n",
        "daemon/wiring.py": "",
        "daemon/api/__init__.py": "",
        "daemon/api/a.py": "import typing\nif typing.TYPE_CHECKING:\n    from daemon.runtime import Runtime\n",
        "daemon/api/b.py": "def f():\n    import daemon.wiring\n",
        "daemon/api/c.py": "from daemon.services import x\n",
        "daemon/ui/__init__.py": "",
        "daemon/ui/d.py": "from ..runtime import Runtime\nfrom daemon.api import c\n",
        "daemon/services/__init__.py": "",
        "daemon/services/x.py": "from daemon.runtime import Runtime\n",
    })
    graph = import_graph(tmp_path, ("daemon",))
    assert reaching_the_root(graph) == ["daemon.api.a imports daemon.runtime", "daemon.api.b imports daemon.wiring",
                                        "daemon.ui.d imports daemon.runtime"]
    assert ui_reaching_api(graph) == ["daemon.ui.d imports daemon.api.c"]


def test_every_service_parameter_is_named_as_the_root_registers_it() -> None:
    """Litestar injects by parameter name: a `Builds` parameter not called `builds` would be read as a query
    parameter. Each handler of the API and the dashboard that asks for a service uses the root's name for it, and
    marks it `NamedDependency` (an inferred dependency stops working in Litestar 3)."""
    from litestar.di import Dependency

    from daemon.api.app import ROUTE_MODULES
    from daemon.ui import actions, pages
    from daemon.wiring import Services

    names = {}
    for f in dataclasses.fields(Services):
        service = typing.get_type_hints(Services)[f.name]
        names[service] = f.name
    asked: set[str] = set()
    wrong = []
    for module in (*ROUTE_MODULES, pages, actions):
        for handler in module.HANDLERS:
            fn = handler.fn
            hints = typing.get_type_hints(fn)
            marked = typing.get_type_hints(fn, include_extras=True)
            for param in inspect.signature(fn).parameters:
                service = hints.get(param)
                if service in names:
                    asked.add(names[service])
                    where = f"{module.__name__}.{fn.__name__}: {param}: {service.__name__}"
                    if param != names[service]:
                        wrong.append(f"{where} (the root provides it as {names[service]!r})")
                    if not any(isinstance(m, Dependency) for m in getattr(marked[param], "__metadata__", ())):
                        wrong.append(f"{where} (mark it NamedDependency[{service.__name__}])")
    assert not wrong, "\n  ".join(wrong)
    # every service but the telemetry (the guards' and error handler's, through Access) is asked for somewhere
    assert asked == set(names.values()) - {"telemetry"}, asked


def test_the_root_registers_each_service_once_and_parks_only_access(tmp_path: Path) -> None:
    """The app injects the very instances the root built (one per daemon, the same for every request); its state
    holds what the guards read (`access`), not the runtime or the queue a handler could reach around a service."""
    import asyncio

    from tests.support import in_process_daemon

    with in_process_daemon(tmp_path, "[render]\nenabled = false\n") as d:
        names = [f.name for f in dataclasses.fields(d.services)]
        assert set(d.app.dependencies) == set(names)
        for name in names:
            provided = d.app.dependencies[name]
            assert asyncio.run(provided()) is getattr(d.services, name)
        assert d.app.state.access is d.services.access
        assert not {"runtime", "queue", "streams"} & set(d.app.state.dict())
