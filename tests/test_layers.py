"""The layers of AGENTS.md, checked: a walk over every module's imports (top-level and inside
functions alike).

- ``api/core`` (the kernel) imports ``models`` and libraries, never FastAPI, Starlette, the
  HTTP layer, a resource package or the composition (``api.app``, ``api.cli``).
- ``api.http`` (request plumbing) is imported only by routes, by ``api/http`` itself and by
  the composition (``api/app.py``, ``api/main.py``, ``api/cli``).
- ``models`` imports nothing of ``api``.

Each rule is also run against a deliberately broken tree, so a checker that stopped seeing
imports would fail here rather than pass silently.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from api.app import create_app
from api.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
WEB = ("fastapi", "starlette")
COMPOSITION = ("api.app", "api.main", "api.cli")


def imports(root: Path, path: Path) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every import in ``path``, relative imports resolved."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    parts = parts[:-1]  # the package the module is in (for __init__.py, the package itself)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # ``from api import http`` imports api.http
                yield node.lineno, f"{module}.{alias.name}"


def module_name(root: Path, path: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def is_under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def resource_packages(root: Path) -> list[str]:
    return sorted(
        f"api.{p.name}" for p in (root / "api").iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and p.name not in ("core", "http", "cli")
    )


def violations(root: Path) -> list[str]:
    """One line per import statement and rule it breaks."""
    found: dict[tuple[str, int, str], str] = {}
    resources = resource_packages(root)
    for path in sorted(root.glob("api/**/*.py")) + sorted(root.glob("models/**/*.py")):
        me, rel = module_name(root, path), str(path.relative_to(root))
        for line, mod in imports(root, path):
            rules = []
            if is_under(me, "api.core") and is_under(mod, *WEB, "api.http", *resources, *COMPOSITION):
                rules.append("the kernel imports only models and libraries")
            if is_under(me, "models") and is_under(mod, "api"):
                rules.append("models import nothing of api")
            if is_under(mod, "api.http") and not (is_under(me, "api.http", *COMPOSITION) or me.endswith(".routes")):
                rules.append("only routes and the composition use the HTTP layer")
            for rule in rules:
                found.setdefault((rel, line, rule), f"{rel}:{line} imports {mod}: {rule}")
    return list(found.values())


def test_the_tree_keeps_its_layers() -> None:
    assert violations(ROOT) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name in ("api/__init__.py", "api/core/__init__.py", "api/http/__init__.py",
                 "api/returnees/__init__.py", "models/__init__.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("name", "text", "rule"),
    [
        ("api/core/unit.py", "from fastapi import Request\n", "kernel"),
        ("api/core/unit.py", "def f():\n    import starlette.requests\n", "kernel"),
        ("api/core/audit.py", "from api.core.errors import Problem\nfrom api.returnees.service import x\n", "kernel"),
        ("api/core/audit.py", "from ..returnees import service\n", "kernel"),
        ("api/core/audit.py", "from api.cli import main\n", "kernel"),
        ("models/x.py", "from api.core import clock\n", "models"),
        ("api/returnees/service.py", "from api.http.auth import Caller\n", "HTTP layer"),
        ("api/returnees/service.py", "from api import http\n", "HTTP layer"),
    ],
)
def test_a_deliberate_violation_is_caught(tmp_path: Path, name: str, text: str, rule: str) -> None:
    found = violations(_tree(tmp_path, {name: text}))
    assert found and all(rule in f for f in found), found


def test_routes_and_composition_may_use_the_http_layer(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "api/returnees/routes.py": "from api.http import auth\n",
        "api/app.py": "from api.http.problems import install\n",
        "api/cli/__init__.py": "from api.http import logs\n",
        "api/http/auth.py": "from api.http.session import SessionDep\nfrom fastapi import Depends\n",
    })
    assert violations(root) == []


# --- one clock, one way to settings ----------------------------------------------------------

SETTINGS_READERS = ("api.app", "api.main", "api.cli")


def second_ways(root: Path) -> list[str]:
    """Reads of the global settings outside the composition, and clocks other than
    ``api.core.clock`` (``datetime.now``, ``utcnow()``, ``date.today``, ``time.time``)."""
    found = []
    for path in sorted(root.glob("api/**/*.py")):
        me, rel = module_name(root, path), str(path.relative_to(root))
        if me in ("api.core.clock", "api.core.settings"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), rel)):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                owner = getattr(f.value, "id", getattr(f.value, "attr", "")) if isinstance(f, ast.Attribute) else ""
                if name == "get_settings" and not is_under(me, *SETTINGS_READERS):
                    found.append(f"{rel}:{node.lineno}: get_settings() outside the composition")
                if (name in ("now", "utcnow", "today") and owner in ("datetime", "date")) or name == "utcnow" \
                        or (name == "time" and owner == "time"):
                    found.append(f"{rel}:{node.lineno}: a clock other than api.core.clock")
    return found


def test_one_clock_and_injected_settings() -> None:
    assert second_ways(ROOT) == []


def test_a_second_clock_or_settings_read_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "api/returnees/service.py": "from datetime import datetime\nx = datetime.now()\n",
        "api/core/crypto.py": "from api.core.settings import get_settings\nk = get_settings().data_key\n",
        "api/cli/__init__.py": "from api.core.settings import get_settings\ns = get_settings()\n",
    })
    found = sorted(second_ways(root))
    assert len(found) == 2 and "get_settings" in found[0] and "clock" in found[1], found


# --- one converter of validation errors ----------------------------------------------------------

def second_converters(root: Path) -> list[str]:
    """Validation errors turned into ``{field, message}`` anywhere but ``api.core.errors``: a
    call of ``….errors()`` (a pydantic ``ValidationError``'s) whose result does not go straight
    into ``validation_errors``, or pydantic's ``"Value error, "`` prefix handled by hand."""
    found = []
    for path in sorted(root.glob("api/**/*.py")):
        me, rel = module_name(root, path), str(path.relative_to(root))
        if me == "api.core.errors":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), rel)
        handed = {id(n) for call in ast.walk(tree) if isinstance(call, ast.Call)
                  and getattr(call.func, "id", getattr(call.func, "attr", "")) == "validation_errors"
                  for n in ast.walk(call)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "errors" \
                    and id(node) not in handed:
                found.append(f"{rel}:{node.lineno}: validation errors converted outside api.core.errors")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "Value error, " in node.value:
                found.append(f"{rel}:{node.lineno}: pydantic's message prefix handled outside api.core.errors")
    return found


def test_one_converter_of_validation_errors() -> None:
    assert second_converters(ROOT) == []


def test_a_second_converter_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "api/register/service.py": "def f(exc):\n    return [{'field': '.'.join(e['loc']), 'message': e['msg']}"
                                   " for e in exc.errors()]\n",
        "api/cli/__init__.py": "def g(exc):\n    return [str(e['msg']).removeprefix('Value error, ') for e in x]\n",
        "api/http/problems.py": "from api.core.errors import validation_errors\n"
                                "def h(exc):\n    return validation_errors(list(exc.errors()), exc.body)\n",
    })
    found = sorted(second_converters(root))
    assert len(found) == 2 and "cli" in found[0] and "register" in found[1], found


# --- one region validator ----------------------------------------------------------------------

def second_region_rules(root: Path) -> list[str]:
    """A ``ValueError`` about a region code raised anywhere but ``api.core.params`` (the one
    region validator: :func:`api.core.params.region` / ``district``; the register's villages
    and a record's sub-district of its district are relations, not codes, and say so)."""
    words = ("region code", "district code", "regency (kabupaten")
    found = []
    for path in sorted(root.glob("api/**/*.py")) + sorted(root.glob("models/**/*.py")):
        me, rel = module_name(root, path), str(path.relative_to(root))
        if me == "api.core.params":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), rel)):
            if isinstance(node, ast.Raise) and node.exc is not None:
                text = " ".join(c.value for c in ast.walk(node.exc) if isinstance(c, ast.Constant)
                                and isinstance(c.value, str))
                if any(w in text for w in words):
                    found.append(f"{rel}:{node.lineno}: a region rule outside api.core.params")
    return found


def test_one_region_validator() -> None:
    assert second_region_rules(ROOT) == []


def test_a_second_region_validator_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "api/referrals/schemas.py": "def _region(v):\n    if v:\n"
                                    "        raise ValueError(f\"'{v}' is not a Kalimantan Barat region code\")\n",
        "models/regions.py": "def district_code(c):\n"
                             "    raise ValueError(f\"'{c}' is not a regency (kabupaten / kota) code\")\n",
        "api/core/params.py": "def region(v):\n    raise ValueError(f\"'{v}' is not a region code\")\n",
    })
    found = sorted(second_region_rules(root))
    assert len(found) == 2 and "referrals" in found[0] and "models" in found[1], found


# --- enum values in enum-typed columns ----------------------------------------------------------

def test_every_column_whose_value_is_an_enum_is_enum_typed() -> None:
    """A table column declared with a ``StrEnum`` annotation reads back as the enum's member
    (``models.columns.str_enum``; a list of them: ``EnumList``), not as a bare string that merely
    compares equal."""
    import enum
    import typing

    import sqlalchemy as sa
    from sqlmodel import SQLModel

    import models  # noqa: F401  (every table registered)
    from models.columns import EnumList

    plain = []
    for mapper in SQLModel._sa_registry.mappers:  # type: ignore[attr-defined]
        cls = mapper.class_
        hints = typing.get_type_hints(cls)
        for column in mapper.columns:
            hint = hints.get(column.key)
            members = [a for a in typing.get_args(hint) or (hint,) if isinstance(a, type)]
            if any(issubclass(a, enum.StrEnum) for a in members) and not isinstance(column.type, sa.Enum | EnumList):
                plain.append(f"{cls.__name__}.{column.key}")
    assert plain == []


def _plain_functions(app: Any) -> list[str]:
    """Each route's endpoint and dependencies (all the way down) that are not ``async``: FastAPI
    runs those in its thread pool, one hop between threads a request for each."""

    def is_async(call: Any) -> bool:
        fn = call if inspect.isfunction(call) or inspect.ismethod(call) else type(call).__call__
        return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)

    found: list[str] = []

    def walk(dependant: Any, path: str) -> None:
        for sub in dependant.dependencies:
            if sub.call is not None and not is_async(sub.call):
                found.append(f"{path}: {getattr(sub.call, '__qualname__', sub.call)}")
            walk(sub, path)

    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            if not is_async(route.endpoint):
                found.append(f"{route.path}: {route.endpoint.__qualname__}")
            walk(route.dependant, route.path)
    return found


def test_routes_and_their_dependencies_run_on_the_event_loop() -> None:
    app = create_app(Settings(mode="development"), configure_logging=False)
    assert _plain_functions(app) == []


def test_a_plain_function_dependency_is_caught() -> None:
    def declared(value: str | None = None) -> None:
        return None

    app = FastAPI()

    @app.get("/x", dependencies=[Depends(declared)])
    async def x() -> None:
        return None

    @app.get("/y")
    def y() -> None:
        return None

    assert _plain_functions(app) == ["/x: test_a_plain_function_dependency_is_caught.<locals>.declared",
                                     "/y: test_a_plain_function_dependency_is_caught.<locals>.y"]
