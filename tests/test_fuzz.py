"""Schema fuzzing: schemathesis generates requests from ``/openapi.json`` for every operation,
valid ones and invalid ones, and sends them to the app in-process (ASGI) with real tokens:
one of a client holding every scope (so each operation is reached past its scope check) and
one of a client holding no scope any operation needs.

Whatever a caller sends, the service answers without a server error, and every error is an
RFC 9457 problem (``application/problem+json`` with ``type``, ``title`` and ``status``), except
at ``/oauth/token`` and ``/oauth/revoke``, whose errors follow RFC 6749 §5.2. Successful JSON
replies are checked against their route's declared model, as everywhere in the suite.

Random strings rarely hold what an attacker sends on purpose, so about one example in three
has one parameter (query, path or a string of the body) replaced by a hostile value
(:data:`HOSTILE`): a NUL, control and bidirectional-override characters, a value of 9,000
characters, integers beyond 64 bits, dates at the ends of the calendar, crafted cursors.

The suite's run is small and derandomised (a few examples per operation, the same ones every
time); ``make fuzz`` runs many more, seeded at random (``SINERGI_FUZZ_EXAMPLES``,
``SINERGI_FUZZ_SEED`` to replay a run; hypothesis prints the failing example).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis.python import asgi as schemathesis_asgi

from api.agencies import service as agencies
from api.agencies.schemas import ClientCreate
from api.app import create_app
from api.core.db import Database
from api.core.scopes import Scope
from api.core.settings import Settings
from api.core.unit import operator_unit
from tests.demo_world import DemoCopy
from tests.reply_shapes import CheckReplies

EXAMPLES = int(os.environ.get("SINERGI_FUZZ_EXAMPLES", "8"))
LONG_RUN = "SINERGI_FUZZ_EXAMPLES" in os.environ
SEED = os.environ.get("SINERGI_FUZZ_SEED")

# Errors of these operations follow RFC 6749 §5.2 ({"error", "error_description"}).
OAUTH = {"POST /oauth/token", "POST /oauth/revoke"}

# Hostile values (the penetration test of issue 8 sent these), by what a parameter holds.
def _cursor(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


HOSTILE_TEXT = ["\x00", "61.07\x00", "\x1b[2J\r\n", "\u202egnp.exe", "x" * 9000]
HOSTILE_NUMBERS = [2**64, -(2**63) - 1, "18446744073709551616"]
HOSTILE_DATES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "2025-06-01T00:00:00"]
HOSTILE_CURSORS = [_cursor({"seq": "abc"}), _cursor({"pos": True}), _cursor({"t": "2025-06-01T00:00:00", "id": "x"}),
                   _cursor({"seq": 2**70}), _cursor({"pos": -1})]
HOSTILE = [*HOSTILE_TEXT, *HOSTILE_NUMBERS, *HOSTILE_DATES, *HOSTILE_CURSORS]


@dataclass(frozen=True)
class Known:
    reason: str
    matches: Callable[[Any, str], bool]  # (case, backend name) -> whether a 5xx of it is this one


def _values(case: Any) -> Iterator[Any]:
    """Every leaf value the case sends (query, path, body)."""
    def walk(v: Any) -> Iterator[Any]:
        if isinstance(v, dict):
            for x in v.values():
                yield from walk(x)
        elif isinstance(v, list | tuple):
            for x in v:
                yield from walk(x)
        else:
            yield v
    yield from walk(case.query or {})
    yield from walk(case.path_parameters or {})
    if isinstance(case.body, dict | list):
        yield from walk(case.body)


def _any(case: Any, test: Callable[[Any], bool]) -> bool:
    return any(test(v) for v in _values(case))


def _huge(v: Any) -> bool:
    if isinstance(v, str) and re.fullmatch(r"-?\d{19,}", v):
        v = int(v)
    return isinstance(v, int) and not isinstance(v, bool) and not -(2**63) <= v < 2**63


# Server errors the fuzzing found that a change in flight is fixing. A 5xx whose case matches
# one of these is reported (the test is an expected failure naming it), not hidden; any other
# 5xx fails. Empty: every one found so far is fixed (NUL, 64-bit integers, crafted cursors,
# times at the ends of the calendar).
KNOWN_5XX: list[Known] = []


def _known(case: Any, backend: str) -> str | None:
    return next((k.reason for k in KNOWN_5XX if k.matches(case, backend)), None)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    elif isinstance(value, str | int) and not isinstance(value, bool):
        yield path


def _make_hostile(case: Any, draw: Callable[[Any], Any]) -> str | None:
    """Replace one parameter of ``case`` by a hostile value; say which (None: left as it is)."""
    slots: list[tuple[str, Any]] = [("query", p.name) for p in case.operation.query]
    slots += [("path", k) for k in case.path_parameters or {}]
    if isinstance(case.body, dict | list):
        slots += [("body", leaf) for leaf in _leaves(case.body)]
    if not slots or draw(st.integers(0, 2)) != 0:
        return None
    where, key = draw(st.sampled_from(slots))
    value = draw(st.sampled_from(HOSTILE))
    if where == "query":
        case.query[key] = value
    elif where == "path":
        case.path_parameters[key] = value if isinstance(value, str) else str(value)
    else:
        target = case.body
        for part in key[:-1]:
            target = target[part]
        target[key[-1]] = value
    return f"{where} {key!r} = {value!r:.60}"


# The broad client holds every scope, so each operation is reached past its scope check; the
# scopeless one holds only webhooks:manage, which no route needs yet.
BROAD_SCOPES = [str(s) for s in Scope]
NO_ROUTE_SCOPE = [str(Scope.webhooks_manage)]


def _operations() -> list[str]:
    doc = create_app(Settings(mode="development"), configure_logging=False).openapi()
    return [f"{method.upper()} {path}" for path, item in doc["paths"].items() for method in item
            if method in ("get", "post", "put", "patch", "delete")]


@dataclass
class Fuzz:
    schema: Any
    tokens: dict[str, str]  # "broad" / "scopeless" -> bearer token
    checked: CheckReplies
    backend: str


async def _seed(settings: Settings) -> dict[str, tuple[str, str]]:
    """Two more clients of the demo's BP3MI: one with every scope, one with none a route needs."""
    db = Database(settings)
    try:
        made = {}
        async with operator_unit(db, "test") as session:
            for name, scopes in (("broad", BROAD_SCOPES), ("scopeless", NO_ROUTE_SCOPE)):
                created = await agencies.create_client(session, "BP3MI-KALBAR", ClientCreate(scopes=scopes, name=name))
                made[name] = (created.client_id, created.client_secret)
        return made
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def fuzz(module_demo: DemoCopy) -> Iterator[Fuzz]:
    """The app on a database of its own with the demo data, served by schemathesis's ASGI
    client (which runs the app's lifespan in its own event loop thread)."""
    # Rate limits off: thousands of generated requests from one address would otherwise be
    # answered 429 by the limiter instead of by the routes under test (tests/test_rate_limits.py
    # checks the 429s, RFC 6749 members included).
    settings = module_demo.settings.model_copy(update={"rate_client": 0, "rate_source": 0, "rate_token": 0,
                                                       "rate_public": 0})
    clients = asyncio.run(_seed(settings))
    checked = CheckReplies(create_app(settings, configure_logging=False))
    schema = schemathesis.openapi.from_asgi("/openapi.json", checked)
    tokens = {}
    with schemathesis_asgi.get_client(checked) as http:
        for name, (cid, secret) in clients.items():
            r = http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
            assert r.status_code == 200, r.text
            tokens[name] = r.json()["access_token"]
    try:
        yield Fuzz(schema, tokens, checked, module_demo.backend)
    finally:
        schemathesis_asgi.shutdown_lifespans()  # closes the app's database pool


def _error_problem(label: str, response: Any) -> str | None:
    """What is wrong with an error reply, if anything."""
    ctype = (response.headers.get("content-type") or [""])[0]  # schemathesis: header -> its values
    try:
        body = response.json()
    except ValueError:
        return f"an error that is not JSON ({ctype}): {response.text[:200]!r}"
    if label in OAUTH:
        # RFC 6749 §5.2; text the input screen refuses in the form (400) and a source over its
        # limit (429) are problems that carry the same members (error, error_description)
        screened = ctype.startswith("application/problem+json") and response.status_code in (400, 429)
        ok = (ctype.startswith("application/json") or screened) and isinstance(body, dict) and "error" in body
        return None if ok else f"not an RFC 6749 error ({ctype}): {response.text[:200]!r}"
    if not ctype.startswith("application/problem+json"):
        return f"an error that is not problem+json ({ctype}): {response.text[:200]!r}"
    if not isinstance(body, dict) or not {"type", "title", "status"} <= body.keys():
        return f"a problem without type, title and status: {response.text[:200]!r}"
    if body["status"] != response.status_code:
        return f"a problem whose status {body['status']} is not the reply's {response.status_code}"
    if "Traceback" in response.text:
        return "a stack trace in the reply"
    return None


def _settings() -> settings:
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not LONG_RUN,
        database=None,  # no .hypothesis folder in the tree
        phases=[Phase.explicit, Phase.generate] if not LONG_RUN else list(Phase),
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


@pytest.mark.parametrize("label", _operations())
def test_fuzz(fuzz: Fuzz, label: str) -> None:
    operation = fuzz.schema.find_operation_by_label(label)
    assert operation is not None, label
    cases = st.one_of(operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
                      operation.as_strategy(schemathesis.GenerationMode.NEGATIVE))
    known: dict[str, list[str]] = {}  # reason -> the requests that hit it

    @_settings()
    @given(case=cases, who=st.sampled_from(sorted(fuzz.tokens)), data=st.data())
    def run(case: Any, who: str, data: st.DataObject) -> None:
        hostile = _make_hostile(case, data.draw)
        response = case.call(headers={"Authorization": f"Bearer {fuzz.tokens[who]}"})
        where = f"{label} as {who}{f' with {hostile}' if hostile else ''}: {case.as_curl_command()[:1500]}"
        if response.status_code >= 500 and (reason := _known(case, fuzz.backend)):
            known.setdefault(reason, []).append(f"{response.status_code} {where}")
            return
        assert response.status_code < 500, f"server error {response.status_code}: {where}\n{response.text[:500]}"
        if response.status_code >= 400:
            problem = _error_problem(label, response)
            assert problem is None, f"{problem}: {where}"

    if SEED is not None:
        run = seed(int(SEED))(run)
    run()
    assert not fuzz.checked.mismatches, fuzz.checked.mismatches
    if known:
        pytest.xfail("known server errors: " + "; ".join(
            f"{reason} ({len(hits)}×, e.g. {hits[0][:600]})" for reason, hits in known.items()))
