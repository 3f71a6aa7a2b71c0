"""Visibility only through the readable statement: a returnee, notice or referral query that
bypasses its resource's ``repository.readable`` fails this test.

An AST walk over ``api/``, no database. Two rules:

1. Outside its resource's ``repository.py`` (and the modules of :data:`ALLOWED`), a guarded
   model (``Returnee``, ``Notice``, ``Referral``) may only be constructed (``Notice(...)``, a
   write through the unit of work), named in a type annotation, or tested with ``isinstance``.
   Any other use builds SQL on it: ``select(Returnee)``, ``sa.select(Returnee.id)``,
   ``col(Referral.status)``, ``session.get(Notice, id)``, ``Returnee.__table__``, an alias
   ``r = Referral``... Raw SQL naming the table (``FROM returnee``) is refused too.
2. Inside a repository, a query of its model starts from ``readable(caller)``: a ``select``
   (or ``select_from`` / ``join``) of the model, a ``session.get`` of it, or raw SQL naming its
   table, appears only in ``readable`` itself and in the other ways in listed in
   :data:`OWN_PATHS`, each with the reason it may. Writes (INSERT, UPDATE) are not reads and are
   not restricted there.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# model -> (its table, the module that holds its queries)
GUARDED = {
    "Returnee": ("returnee", "api/returnees/repository.py"),
    "Notice": ("notice", "api/notices/repository.py"),
    "Referral": ("referral", "api/referrals/repository.py"),
    "Manifest": ("manifest", "api/manifests/repository.py"),
    "ManifestPerson": ("manifest_person", "api/manifests/repository.py"),
    "RegisterPerson": ("register_person", "api/register/repository.py"),
    "Departure": ("departure", "api/register/repository.py"),
    "RecruitmentReport": ("recruitment_report", "api/alerts/repository.py"),
    "RecruitmentAlert": ("recruitment_alert", "api/alerts/repository.py"),
}

# Modules that query a guarded model without going through its repository, and why they may.
ALLOWED = {
    # Counts, never records: a district's figures are the returnees whose ORIGIN lies in the
    # caller's jurisdiction (not also those its agency sent about another district, as the
    # readable statement allows), rounded and suppressed (api/stats/service.py docstring).
    "api/stats/service.py": "aggregate counts of the jurisdiction's population by origin; returns no record",
}

# Per repository: the functions (or module-level statements) that start a query of the model
# without readable(caller), and why they may. Everything else there starts from readable().
OWN_PATHS = {
    "api/returnees/repository.py": {
        "readable": "the readable statement itself",
        "referred": "the receiver of an open referral reads its returnee; the referral (found by "
                    "api.referrals.repository for the caller) is the key",
        "listed_on": "the returnees a notice lists, for whoever may see the notice (api.notices.repository)",
        "existing_for_batch": "batch writer: reads the sender's own rows by (source_agency, source_ref) "
                              "to compare them with the batch; keys, hash and version only",
        "_PG_EXISTING": "batch writer: the same lookup, compiled for PostgreSQL",
        "returns_of_persons": "register writer: sums the records of the persons it just wrote into their "
                              "register rows (api.register.service.refresh), which are read by jurisdiction",
    },
    "api/notices/repository.py": {
        "readable": "the readable statement itself",
        "waiting_in": "agency registration (no caller): the notices waiting for an agency of the new "
                      "agency's region, to deliver them to it",
    },
    "api/manifests/repository.py": {
        "readable": "the readable statement itself (the manifests)",
        "readable_persons": "the readable statement itself (the people of the manifests)",
        "_sees_person": "the condition of readable_persons",
        "letter_registered": "writer: whether the caller's own agency already registered this letter; a yes or no",
    },
    "api/register/repository.py": {
        "readable": "the readable statement itself (the register's persons)",
        "readable_departures": "the readable statement of departure records",
        "count_rows": "counts of the readable persons (the readable condition, _in_view), published only through "
                      "the statistics' protection (api.stats.service.protect); returns no record",
        "flags_of": "register writer: whether the persons it refreshes were flagged already; a yes or no each",
        "existing_departures": "batch writer: the sender's own rows by (source_agency, source_ref), to compare",
        "departures_of_persons": "register writer: sums the departures of the persons it just wrote into their "
                                 "register rows, which are read by jurisdiction",
    },
    "api/alerts/repository.py": {
        "readable": "the readable statement itself (alerts, for the police and task force over a place)",
        "sources_of": "what the reports of an identifier say: for the writer counting independent sources, and "
                      "for the shape of alerts already found through readable",
        "alert_of": "report writer: the alert of an identifier it just counted, to raise or update it",
        "any_report": "demo loader (a writer): whether its reports are loaded; a yes or no",
        "warning_groups": "the public warning list: modus, region codes, destinations and months of reports "
                          "corroborated by enough agencies; never a person, an identifier or a text",
    },
    "api/referrals/repository.py": {
        "readable": "the readable statement itself",
        "any_with_sender_ref_prefix": "demo loader (a writer): whether its referrals are loaded; a yes or no",
    },
}

_SQL = re.compile(r"\b(select|insert|update|delete|with)\b", re.I)


def _table_in_sql(table: str) -> re.Pattern[str]:
    return re.compile(rf"\b(from|join|into|update)\s+\"?{table}\b(?!_)", re.I)


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    model: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.model}: {self.what}"


class _Module:
    """One module's AST with what the walk needs: parents, the names bound to guarded models."""

    def __init__(self, source: str, path: str) -> None:
        self.path = path
        self.tree = ast.parse(source)
        self.parent: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node
        self.names: dict[str, str] = {}  # local name -> guarded model
        self.modules: set[str] = set()  # local names of the models package / its modules
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.module and (
                node.module == "models" or node.module.startswith("models.")
            ):
                for alias in node.names:
                    if alias.name in GUARDED:
                        self.names[alias.asname or alias.name] = alias.name
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "models" or alias.name.startswith("models."):
                        self.modules.add(alias.asname or alias.name.split(".")[0])

    def model_of(self, node: ast.AST) -> str | None:
        """The guarded model ``node`` names (``Returnee``, ``models.Returnee``), if any."""
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.Attribute) and node.attr in GUARDED:
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in self.modules:
                return node.attr
        return None

    def in_annotation(self, node: ast.AST) -> bool:
        child, parent = node, self.parent.get(node)
        while parent is not None:
            if isinstance(parent, ast.arg) and child is parent.annotation:
                return True
            if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)) and child is parent.returns:
                return True
            if isinstance(parent, ast.AnnAssign) and child is parent.annotation:
                return True
            child, parent = parent, self.parent.get(parent)
        return False

    def enclosing(self, node: ast.AST) -> str:
        """The top-level function or module-level assignment ``node`` belongs to."""
        top: ast.AST | None = None
        cur: ast.AST | None = node
        while cur is not None and cur is not self.tree:
            top, cur = cur, self.parent.get(cur)
        if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return top.name
        if isinstance(top, ast.Assign) and isinstance(top.targets[0], ast.Name):
            return top.targets[0].id
        if isinstance(top, ast.AnnAssign) and isinstance(top.target, ast.Name):
            return top.target.id
        return "<module>"

    def strings(self) -> Iterator[ast.Constant]:
        """String constants, docstrings left out."""
        docstrings = set()
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                body = node.body
                if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                    docstrings.add(body[0].value)
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node not in docstrings:
                yield node


def _raw_sql(mod: _Module, models: list[str]) -> Iterator[tuple[ast.Constant, str]]:
    for const in mod.strings():
        if not _SQL.search(const.value):
            continue
        for model in models:
            if _table_in_sql(GUARDED[model][0]).search(const.value):
                yield const, model


def outside_findings(source: str, path: str) -> list[Finding]:
    """Rule 1: uses of guarded models in a module that is not their repository."""
    mod = _Module(source, path)
    found = []
    for node in ast.walk(mod.tree):
        model = mod.model_of(node)
        if model is None or GUARDED[model][1] == path:
            continue
        if isinstance(node, ast.Attribute) and isinstance(mod.parent.get(node), ast.Attribute):
            continue  # the inner part of models.returnee.Returnee: reported once, at the outer node
        parent = mod.parent.get(node)
        if isinstance(parent, ast.Call) and parent.func is node:
            continue  # Returnee(...): a new row, written through the unit of work
        if mod.in_annotation(node):
            continue
        if (isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name)
                and parent.func.id in ("isinstance", "issubclass")):
            continue
        if isinstance(parent, ast.Tuple) and isinstance(mod.parent.get(parent), ast.Call):
            call = mod.parent[parent]
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "isinstance":
                continue
        what = f"{ast.unparse(parent) if parent is not None else ast.unparse(node)}"
        found.append(Finding(path, node.lineno, model, f"query outside {GUARDED[model][1]}: {what[:100]}"))
    others = [m for m, (_, repo) in GUARDED.items() if repo != path]
    for const, model in _raw_sql(mod, others):
        found.append(Finding(path, const.lineno, model, f"raw SQL naming '{GUARDED[model][0]}' outside its repository"))
    for node in ast.walk(mod.tree):  # sa.table("returnee", ...), metadata.tables["returnee"]
        arg: ast.AST | None = None
        if isinstance(node, ast.Call) and _callee(node) in ("table", "Table") and node.args:
            arg = node.args[0]
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "tables":
            arg = node.slice
        if isinstance(arg, ast.Constant):
            for model in others:
                if arg.value == GUARDED[model][0]:
                    found.append(Finding(path, node.lineno, model, f"table '{arg.value}' by name"))
    return found


def _callee(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _tainted(mod: _Module, model: str) -> set[str]:
    """Names assigned from an expression naming ``model`` (``_TABLE = Returnee.__table__``,
    ``t = _TABLE.c``), in any scope: a query through them is a query of the model."""
    tainted: set[str] = set()
    changed = True
    while changed:
        changed = False
        for node in ast.walk(mod.tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(_names(mod, node.value, model, tainted)):
                    for t in targets:
                        if isinstance(t, ast.Name) and t.id not in tainted:
                            tainted.add(t.id)
                            changed = True
    return tainted


def _names(mod: _Module, node: ast.AST, model: str, tainted: set[str]) -> Iterator[ast.AST]:
    for sub in ast.walk(node):
        if mod.model_of(sub) == model or (isinstance(sub, ast.Name) and sub.id in tainted):
            yield sub


def inside_findings(source: str, path: str) -> list[Finding]:
    """Rule 2: in a repository, queries of its model start from ``readable`` or a listed path."""
    mod = _Module(source, path)
    models = [m for m, (_, repo) in GUARDED.items() if repo == path]
    own = OWN_PATHS.get(path, {})
    found = []
    for model in models:
        tainted = _tainted(mod, model)
        for node in ast.walk(mod.tree):
            if not isinstance(node, ast.Call):
                continue
            name = _callee(node)
            if name in ("select", "select_from", "join", "outerjoin", "join_from"):
                args: list[ast.AST] = list(node.args)
            elif name == "get" and isinstance(node.func, ast.Attribute) and node.args:
                args = [node.args[0]]  # session.get(Model, id)
            else:
                continue
            if any(any(_names(mod, a, model, tainted)) for a in args):
                where = mod.enclosing(node)
                if where not in own:
                    found.append(Finding(path, node.lineno, model,
                                         f"query of {model} in {where}() that does not start from readable(): "
                                         f"{ast.unparse(node)[:100]}"))
        for const, m in _raw_sql(mod, [model]):
            where = mod.enclosing(const)
            if where not in own:
                found.append(Finding(path, const.lineno, m, f"raw SQL naming '{GUARDED[m][0]}' in {where}"))
    return found


def _modules() -> Iterator[tuple[str, str]]:
    for file in sorted((ROOT / "api").rglob("*.py")):
        yield file.relative_to(ROOT).as_posix(), file.read_text("utf-8")


# --- the tree --------------------------------------------------------------------------------


def test_no_query_of_a_guarded_model_outside_its_repository():
    found = [f for path, src in _modules() if path not in ALLOWED for f in outside_findings(src, path)]
    assert not found, "query a returnee, notice or referral through its repository:\n" + "\n".join(map(str, found))


def test_repository_queries_start_from_the_readable_statement():
    found = [f for path, src in _modules() for f in inside_findings(src, path)]
    assert not found, "start from readable(caller), or list the path in OWN_PATHS:\n" + "\n".join(map(str, found))


def test_the_lists_name_what_exists():
    """An allow-list entry that no longer exists would hide nothing and rot: keep them exact."""
    for path in ALLOWED:
        assert (ROOT / path).is_file(), path
    for path, paths in OWN_PATHS.items():
        tree = ast.parse((ROOT / path).read_text("utf-8"))
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        assert "readable" in defined, f"{path} has no readable()"
        assert set(paths) <= defined, (path, set(paths) - defined)


# --- the walk itself: it finds what it is meant to find ----------------------------------------


OUTSIDE = "api/referrals/service.py"
INSIDE = "api/returnees/repository.py"


@pytest.mark.parametrize(
    "source",
    [
        "from models import Returnee\nstmt = select(Returnee).where(Returnee.id == x)",
        "import sqlalchemy as sa\nfrom models import Returnee\nsa.select(Returnee.id, Returnee.origin_district)",
        "from models import Returnee\nasync def f(session, id):\n    return await session.get(Returnee, id)",
        "from models import Returnee as R\nq = select(R)",
        "import models\nq = select(models.Notice)",
        "from models.notice import Notice\nt = Notice.__table__",
        "from models import Referral\nr = Referral\nq = select(r)",
        "from models import Returnee\nq = select(Event).where(col(Returnee.origin_district) == '61')",
        "from api.core.db import execute_text\nq = execute_text(s, 'SELECT id FROM returnee WHERE x', {})",
        "import sqlalchemy as sa\nq = sa.text('select * from notice n join agency a on true')",
        "import sqlalchemy as sa\nt = sa.table('referral', sa.column('id'))",
    ],
)
def test_the_walk_finds_a_query_outside_the_repository(source):
    assert outside_findings(textwrap.dedent(source), OUTSIDE)


@pytest.mark.parametrize(
    "source",
    [
        "from models import Referral, Returnee\n"
        "def f(r: Returnee) -> list[Referral]:\n    x: Returnee | None = None\n    return [Referral(id=1)]",
        "from models import Notice\nok = isinstance(x, Notice)",
        "q = sa.text('SELECT id FROM notice_returnee')\nmessage = 'the returnee comes from 61.07'",
        "from models import Returnee\ndef f():\n    '''SELECT the rows FROM returnee for f.'''",
    ],
)
def test_the_walk_lets_construction_and_types_pass(source):
    assert outside_findings(textwrap.dedent(source), OUTSIDE) == []


@pytest.mark.parametrize(
    "source",
    [
        "from models import Returnee\nasync def by_id(session, id):\n    return await session.get(Returnee, id)",
        "from models import Returnee\ndef everyone():\n    return select(Returnee)",
        "import sqlalchemy as sa\nfrom models import Returnee\n_T = Returnee.__table__\n"
        "def f():\n    t = _T.c\n    return sa.select(t.id)",
        "from models import Returnee\ndef n():\n    return sa.select(sa.func.count()).select_from(Returnee)",
        "RAW = sa.text('SELECT * FROM returnee')",
    ],
)
def test_the_walk_finds_a_repository_query_that_skips_readable(source):
    assert inside_findings(textwrap.dedent(source), INSIDE)


def test_the_walk_lets_queries_built_on_readable_pass():
    source = """
    from models import NoticeReturnee, Returnee

    def readable(caller):
        return select(Returnee).where(Returnee.source_agency == caller.agency)

    async def page(session, caller, after):
        on = sa.select(NoticeReturnee.returnee_id).where(NoticeReturnee.returnee_id == Returnee.id)
        stmt = readable(caller).where(Returnee.id > after, ~on.exists())
        return (await session.exec(stmt.with_only_columns(Returnee.id))).all()

    async def update_rows(session, rows):
        await session.execute(sa.update(Returnee.__table__), rows)
    """
    assert inside_findings(textwrap.dedent(source), INSIDE) == []
