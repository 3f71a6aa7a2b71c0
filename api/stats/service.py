"""Statistics: counts of returnees and referrals, grouped in SQL, protected by cell keys.

Why not suppression alone
-------------------------
Suppressing the cells under the threshold (and complementary cells within one table) does not
survive a second query: a district's total minus its counts for three trafficking statuses gives
the fourth, suppressed one; the same month counted in two overlapping date windows gives the
suppressed month by subtraction. Any exact published figure is a term of such an equation.

The rule: fixed random rounding driven by a cell key
----------------------------------------------------
This is the cell-key method of the Australian Bureau of Statistics (TableBuilder) and the UK
ONS census tables, with rounding to a base (as IOM's CTDC publishes, base 5) as the
perturbation, the cell key deciding the direction (Statistics New Zealand's "fixed random
rounding"):

* Every record has a **record key**, a pseudo-random number in ``[0, 2**24)`` that never changes
  while the record keeps its attributes: HMAC-SHA256 under a key derived from the index key
  (:func:`stats_secret`; the index key is outside the database). A returnee's record key is
  derived from its origin district and return date (see *the returnee record key* below), a
  referral's from its id.
* A **cell's key** is the sum of its records' keys modulo ``2**24``, computed in the same
  GROUP BY as the count. It depends on which records the cell holds and nothing else: whichever
  query produces a cell (other grouping, other filters, another caller, another day), the same
  records give the same key.
* The count ``n`` of a cell is published **rounded to a multiple of the base** ``b`` (the
  configured ``suppression_threshold``, 5): down to ``b * floor(n / b)`` or up to the next
  multiple, up with probability ``(n mod b) / b``, the coin being the cell's key
  (:func:`rounded`). The rounding is unbiased and never moves a count by ``b`` or more; a
  multiple of ``b`` is published as it is.
* A cell whose true count is ``1 .. threshold - 1`` is **suppressed** (``count: null``), and so
  is one whose rounded count is under the caller's threshold (only possible with a raised one).
  No count under the threshold is published, exactly or rounded.
* ``total`` and a referral row's ``overdue`` are cells in their own right (their own records,
  their own key), not sums of published cells; ``overdue`` is never shown above ``count``.

What it protects
~~~~~~~~~~~~~~~~
* **Differencing across queries.** Every published figure is a multiple of ``b``, so any sum or
  difference of published figures, from any number of queries, is a multiple of ``b`` too: it
  is never a count from 1 to ``b - 1``. "Total minus three statuses", "window A minus window B",
  "all minus the men" give 0 or ``b`` (or a multiple), never the suppressed count.
* **Repeating the query.** The same cell always comes back with the same value (the key is a
  function of its records), so asking again, with other filters that select the same records,
  or as another agency, yields no new draw to average.
* Complementary suppression is no longer needed for that (and is not applied): tables keep the
  figures they can show.

What it does not protect
~~~~~~~~~~~~~~~~~~~~~~~~
* **Existence.** A suppressed row says the cell holds 1 to ``threshold - 1`` records and a
  missing row that it holds none. Narrowing filters (one day, one district, one status) can
  show that *someone* with those attributes returned that day, though not how many.
* **Bounds.** A published ``P`` means a true count in ``P - b + 1 .. P + b - 1``. Combining many
  tables (the linear-programming attack on rounded tables) can narrow a cell's range; one
  difference never pins a suppressed count.
* **Averaging many different record sets.** Cells that hold different records get unrelated
  roundings; an attacker who writes the same small cell as differences of hundreds of
  *different* cells (say hundreds of date windows that each add other records) can average the
  rounding away. It takes many queries, each of which is audited with its filters, and it is the
  limit of every perturbation method short of a query budget.
* **Changes of the data and of the key.** A cell whose records change is a new cell with a new
  key; rotating the index key draws every rounding again (the old and the new figures together
  are two draws). Keep the index key stable.
* **A raised threshold.** The guarantee is for counts 1 to ``b - 1``; the counts a caller hides
  with a higher threshold of its own are protected by the rounding only.
* Tables are **not additive**: rows need not sum to ``total``, nor a month to its days.

The returnee record key
~~~~~~~~~~~~~~~~~~~~~~~
The district × month table over a large table is one index-only scan of ``(origin_district,
return_date)``; a key derived from the record id would need every row of the heap (≈ 1.5× the
bare GROUP BY on 1,000,000 returnees). So a returnee's record key is
``HMAC(secret, "returnee|<origin_district>|<return_date>")``: the records of one district and
day share one key, and the count of a district and day times that key is the group's key sum.
Consistency and the multiple-of-``b`` guarantee do not depend on that choice; what it gives up
is that two cells holding the same number of records of every district and day have the same
key (and, having the same count, the same value). A random key stored with each record and
included in that index (a migration) would give per-record keys at the same speed: the inner
GROUP BY would sum it instead of multiplying each group's count by its group key.

The threshold is :attr:`api.core.settings.Settings.suppression_threshold`; a caller may ask for a
higher one, never a lower one, and the rounding base stays the configured threshold whatever the
caller asks (a base per caller would be a new draw per caller).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BIT
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import audit, clock
from api.core.access import in_jurisdiction
from api.core.context import Caller
from api.core.errors import ValidationFailed
from api.core.sql import dialect_of, table_of
from api.core.unit import unit_of
from api.referrals.service import counted_for as referrals_counted_for
from models import OPEN_STATUSES, Referral, Returnee

RETURNEE_DIMENSIONS = ("district", "month", "sex", "age_group", "returned_from_country", "return_type",
                       "trafficking_status")
REFERRAL_DIMENSIONS = ("status", "to_agency", "reason", "month", "urgency", "district")
AGE_GROUPS = ("0-17", "18-24", "25-34", "35-44", "45-59", "60+", "unknown")

KEY_BITS = 24
KEY_SPACE = 1 << KEY_BITS  # record and cell keys live in [0, KEY_SPACE)
_SECRET_CONTEXT = b"sinergi/stats/cell-key/v1"
_SQLITE_KEY_FUNCTION = "sinergi_stats_key"


def parse_group_by(values: Sequence[str] | None, allowed: Sequence[str]) -> list[str]:
    """``group_by`` repeated or as a comma list, duplicates dropped; an unknown name is a 422
    (the reply quotes at most 32 characters of it)."""
    out: list[str] = []
    for value in values or []:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if part not in allowed:
                shown = part[:32].encode("ascii", "backslashreplace").decode()
                raise ValidationFailed(
                    "See 'errors' for the fields at fault",
                    errors=[{"field": "query.group_by", "message": f"'{shown}' is not one of {', '.join(allowed)}"}],
                )
            if part not in out:
                out.append(part)
    return out


def effective_threshold(configured: int, asked: int | None) -> int:
    return max(configured, asked or 0)


# --- cell keys and the rounding --------------------------------------------------------------


def stats_secret(index_key: bytes) -> bytes:
    """The key of the record keys: derived from the index key (which never enters the database),
    under its own context so that no record key is a blind-index value."""
    return hmac.digest(index_key, _SECRET_CONTEXT, "sha256")


def record_key(secret: bytes, message: str) -> int:
    """The record key of ``message`` (``returnee|61.07|2025-06-10``, ``referral|<id hex>``): the
    first 24 bits of its HMAC-SHA256. The SQL of both databases computes exactly this."""
    return int.from_bytes(hmac.digest(secret, message.encode(), "sha256")[:3], "big")


def rounded(n: int, key: int, base: int) -> int:
    """``n`` rounded to a multiple of ``base``: up with probability ``(n mod base) / base``,
    the coin being the cell key (``key / KEY_SPACE`` is the uniform draw), so unbiased, within
    ``base - 1`` of ``n``, and the same whenever the cell (and so its key) is the same."""
    low, rest = divmod(n, base)
    up = (key % KEY_SPACE) * base < rest * KEY_SPACE
    return (low + up) * base


def publish(n: int, key: int, base: int, threshold: int) -> int | None:
    """The published value of a cell of true count ``n``: None (suppressed) when ``n`` is under
    the threshold or its rounding is; 0 stays 0."""
    if n <= 0:
        return 0
    if n < threshold:
        return None
    value = rounded(n, key, base)
    return value if value >= threshold else None


def _hmac_pads(secret: bytes) -> tuple[bytes, bytes]:
    block = secret.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def _key_sql(dialect: str, secret: bytes, message: Any) -> sa.ColumnElement[int]:
    """:func:`record_key` of the SQL text ``message``, in SQL. PostgreSQL: HMAC-SHA256 written
    out with the built-in ``sha256`` (the padded keys are bound parameters); SQLite: a function
    registered on the connection (:func:`_register_sqlite_key`)."""
    if dialect != "postgresql":
        return sa.func.sinergi_stats_key(message, type_=sa.Integer)
    ipad, opad = _hmac_pads(secret)
    inner = sa.func.sha256(sa.literal(ipad, sa.LargeBinary).op("||")(sa.func.convert_to(message, "UTF8")))
    digest = sa.func.sha256(sa.literal(opad, sa.LargeBinary).op("||")(inner))
    # the first 3 bytes as an integer, the digest written (and computed) once: 'x<6 hex>'::bit(24)::int
    hex24 = sa.literal("x") + sa.func.encode(sa.func.substring(digest, 1, 3), "hex")
    return sa.cast(sa.cast(hex24, BIT(KEY_BITS)), sa.Integer)


async def _register_sqlite_key(session: AsyncSession, secret: bytes) -> None:
    """Make :func:`record_key` callable from SQL on this SQLite connection (once per pooled
    connection and secret)."""
    conn = await session.connection()
    fingerprint = hashlib.sha256(secret).hexdigest()

    def register(sync_conn: Any) -> None:
        fairy = sync_conn.connection
        if fairy.info.get(_SQLITE_KEY_FUNCTION) == fingerprint:
            return
        fairy.dbapi_connection.create_function(
            _SQLITE_KEY_FUNCTION, 1, lambda message: record_key(secret, message), deterministic=True)
        fairy.info[_SQLITE_KEY_FUNCTION] = fingerprint

    await conn.run_sync(register)


async def prepare(session: AsyncSession) -> tuple[str, bytes, int]:
    """(dialect, secret, base) for this session's statistics: the record keys' secret, and the
    record key function registered on a SQLite connection. Every protected table starts here."""
    settings = unit_of(session).settings
    secret = stats_secret(settings.index_key_bytes)
    dialect = dialect_of(session)
    if dialect != "postgresql":
        await _register_sqlite_key(session, secret)
    return dialect, secret, settings.suppression_threshold


# --- SQL expressions -------------------------------------------------------------------------


def _month(dialect: str, column: Any, timestamp: bool = False) -> sa.ColumnElement[str]:
    """``YYYY-MM`` of a date (or of a UTC timestamp)."""
    if dialect == "postgresql":
        value = sa.func.timezone("UTC", column) if timestamp else column
        return sa.func.to_char(value, "YYYY-MM")
    return sa.func.strftime("%Y-%m", column)


def _age_group(birth: Any, on: Any) -> sa.ColumnElement[str]:
    """The age group of someone born ``birth`` on the day ``on`` (whole years, birthday
    included), computed in SQL with EXTRACT (SQLite: strftime), the same on both databases."""

    def md(c: Any) -> Any:
        return sa.extract("month", c) * 100 + sa.extract("day", c)

    age = sa.extract("year", on) - sa.extract("year", birth) - sa.case((md(on) < md(birth), 1), else_=0)
    return sa.case(
        (birth.is_(None), "unknown"),
        (age < 0, "unknown"),
        (age < 18, "0-17"),
        (age < 25, "18-24"),
        (age < 35, "25-34"),
        (age < 45, "35-44"),
        (age < 60, "45-59"),
        else_="60+",
    )


def id_key_sql(dialect: str, secret: bytes, kind: str, id_column: Any) -> sa.ColumnElement[int]:
    """The record key of a row keyed by its id, in SQL: ``record_key(secret, "<kind>|<id hex>")``
    (``referral|…``, the register's ``person|…``)."""
    id_hex = (sa.func.replace(sa.cast(id_column, sa.String), "-", "") if dialect == "postgresql"
              else sa.cast(id_column, sa.String))
    return _key_sql(dialect, secret, sa.literal(f"{kind}|") + id_hex)


def _returnee_key_sql(dialect: str, secret: bytes, district: Any, day: Any) -> sa.ColumnElement[int]:
    """The record key of the returnees of ``district`` returned on ``day`` (see the module
    docstring): ``record_key(secret, "returnee|61.07|2025-06-10")``."""
    day_text = sa.func.to_char(day, "YYYY-MM-DD") if dialect == "postgresql" else sa.cast(day, sa.String)
    return _key_sql(dialect, secret, sa.literal("returnee|") + district + sa.literal("|") + day_text)


def _returnees_in_jurisdiction(caller: Caller) -> sa.ColumnElement[bool]:
    """Returnees whose origin lies in the caller's jurisdiction (only that: a record the
    caller's agency sent about another district is not its district's figure).
    ``origin_district`` is always a district code of the reference (the batch validates it), so a
    district caller is one equality on the leading column of the (origin_district, return_date)
    index, a province caller a prefix of it, and a sub-district caller is matched on
    ``origin_subdistrict``."""
    depth = caller.jurisdiction.count(".")
    if depth == 1:
        return col(Returnee.origin_district) == caller.jurisdiction
    if depth == 0:
        return in_jurisdiction(caller, col(Returnee.origin_district))
    return in_jurisdiction(caller, col(Returnee.origin_subdistrict))


def _by_position(n: int) -> list[Any]:
    # the same expression written twice with bound parameters is, to PostgreSQL, two different
    # expressions: group by position
    return [sa.literal_column(str(i + 1)) for i in range(n)]


# --- tables ----------------------------------------------------------------------------------


@dataclass
class Table:
    group_by: list[str]
    threshold: int
    base: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: int | None = None
    extra: tuple[str, ...] = ()  # per-row counts published beside ``count`` (``overdue``)
    # each extra over all records, a cell of its own (as ``total`` is), published as the rows'
    # extras are: what the same query without ``group_by`` gives as its one row's extra
    extra_totals: dict[str, int | None] = field(default_factory=dict)


@dataclass
class _Cell:
    n: int = 0
    key: int = 0
    extra: list[tuple[int, int]] = field(default_factory=list)  # (count, key) of each extra


def _table(group_by: list[str], threshold: int, base: int, cells: Sequence[tuple[tuple[Any, ...], _Cell]],
           total: _Cell, extra: tuple[str, ...] = ()) -> Table:
    """Publish every cell by :func:`publish`; ``total`` is its own cell."""
    data = sorted(((k, c) for k, c in cells if c.n > 0),  # without group_by an empty set gives one row of 0
                  key=lambda t: tuple((v is None, str(v)) for v in t[0]))
    rows = []
    for k, cell in data:
        row: dict[str, Any] = {name: str(v) if v is not None else None for name, v in zip(group_by, k, strict=True)}
        count = publish(cell.n, cell.key, base, threshold)
        row["count"] = count
        row.update(_extras(cell, count, extra, base, threshold))
        row["suppressed"] = count is None
        rows.append(row)
    whole = publish(total.n, total.key, base, threshold)
    return Table(group_by, threshold, base, rows, whole, extra, _extras(total, whole, extra, base, threshold))


def _extras(cell: _Cell, count: int | None, extra: tuple[str, ...], base: int, threshold: int) -> dict[str, int | None]:
    """A cell's extras (each a count of some of its records): published as cells of their own,
    never above the cell's count, and hidden when the cell's count is."""
    out: dict[str, int | None] = {}
    for name, (n, key) in zip(extra, cell.extra, strict=True):
        value = None if count is None else publish(n, key, base, threshold)
        out[name] = None if value is None or count is None else min(value, count)
    return out


def protect(result: Sequence[Sequence[Any]], group_by: list[str], threshold: int, base: int,
            extra: tuple[str, ...] = ()) -> Table:
    """The published table of grouped rows ``(dims..., count, key sum, [extra count, extra key
    sum]...)``: every cell (and the total, and each extra) rounded by its cell key and small
    cells suppressed (:func:`publish`). The one implementation of the rule: every protected
    table (returnees, referrals, the register) is published through it."""
    cells, total = _cells(result, len(group_by), len(extra))
    return _table(group_by, threshold, base, cells, total, extra)


def _cells(result: Sequence[Sequence[Any]], ndims: int, nextra: int) -> tuple[list[tuple[tuple[Any, ...], _Cell]], _Cell]:
    """Rows of (dims..., count, key sum, [extra count, extra key sum]...) as cells, and the total
    cell (its count and key are sums over all records, as any cell's are)."""
    cells = []
    total = _Cell(extra=[(0, 0)] * nextra)
    for r in result:
        n, key = int(r[ndims] or 0), int(r[ndims + 1] or 0)
        more = [(int(r[ndims + 2 + 2 * i] or 0), int(r[ndims + 3 + 2 * i] or 0)) for i in range(nextra)]
        cells.append((tuple(r[:ndims]), _Cell(n, key % KEY_SPACE, [(c, k % KEY_SPACE) for c, k in more])))
        total.n += n
        total.key = (total.key + key) % KEY_SPACE
        total.extra = [(tn + c, (tk + k) % KEY_SPACE) for (tn, tk), (c, k) in zip(total.extra, more, strict=True)]
    return cells, total


def _audit_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.isoformat() if isinstance(value, date) else str(value)


def _filters_for_audit(filters: dict[str, Any]) -> dict[str, Any]:
    return {k: _audit_value(v) for k, v in filters.items() if v is not None}


# --- queries ---------------------------------------------------------------------------------

# the stored columns (or expressions) a returnee dimension is grouped by in the inner statement
_INNER_RETURNEE: dict[str, Any] = {
    "sex": lambda c: c.sex,
    "age_group": lambda c: _age_group(c.birth_date, c.return_date),
    "returned_from_country": lambda c: c.returned_from_country,
    "return_type": lambda c: c.return_type,
    "trafficking_status": lambda c: c.trafficking_status,
}


async def returnee_stats(
    session: AsyncSession, caller: Caller, group_by: list[str], threshold: int, *,
    since: date | None = None, until: date | None = None, district: str | None = None,
    return_type: str | None = None, trafficking_status: str | None = None,
) -> Table:
    """Returnees of the caller's jurisdiction counted by ``group_by``, with each cell's key sum
    (one statement).

    The inner GROUP BY counts by origin district and return date (plus whatever else the
    dimensions need): for district x month that is an index-only scan of (origin_district,
    return_date) with no function per row. The record key of each (district, day) is computed
    once per distinct pair, and the outer GROUP BY formats the month over the far fewer groups."""
    dialect, secret, base = await prepare(session)
    conditions = [_returnees_in_jurisdiction(caller)]
    if district:
        conditions.append(col(Returnee.origin_district) == district)
    if since:
        conditions.append(col(Returnee.return_date) >= since)
    if until:
        conditions.append(col(Returnee.return_date) <= until)
    if return_type:
        conditions.append(col(Returnee.return_type) == str(return_type))
    if trafficking_status:
        conditions.append(col(Returnee.trafficking_status) == str(trafficking_status))
    t = table_of(Returnee).c
    others = [name for name in group_by if name in _INNER_RETURNEE]
    inner_cols = [t.origin_district, t.return_date, *(_INNER_RETURNEE[name](t).label(name) for name in others)]
    inner = (sa.select(*inner_cols, sa.func.count().label("n")).where(*conditions)
             .group_by(*_by_position(len(inner_cols))))
    g: Any
    if not others:
        # each inner row is one (district, day): its key right there
        g = inner.subquery("g")
        group_key: Any = _returnee_key_sql(dialect, secret, g.c.origin_district, g.c.return_date)
        source: Any = g
    else:
        # the key once per distinct (district, day), joined to the finer groups
        g = inner.cte("g")
        pairs = sa.select(g.c.origin_district, g.c.return_date).distinct().subquery("p")
        k = sa.select(pairs.c.origin_district, pairs.c.return_date,
                      _returnee_key_sql(dialect, secret, pairs.c.origin_district, pairs.c.return_date).label("c"),
                      ).cte("k")
        group_key = k.c.c
        source = g.join(k, sa.and_(k.c.origin_district == g.c.origin_district, k.c.return_date == g.c.return_date))

    def outer(name: str) -> Any:
        if name == "district":
            return g.c.origin_district.label(name)
        if name == "month":
            return _month(dialect, g.c.return_date).label(name)
        return g.c[name].label(name)

    dims = [outer(name) for name in group_by]
    # n * key reduced modulo the key space fits an int4, whose sum PostgreSQL keeps in an int8
    group_sum = sa.cast((g.c.n * group_key) % KEY_SPACE, sa.Integer)
    stmt = sa.select(*dims, sa.func.sum(g.c.n).label("count"), sa.func.sum(group_sum).label("key")
                     ).select_from(source)
    if dims:
        stmt = stmt.group_by(*_by_position(len(dims)))
    result = (await session.execute(stmt)).all()
    table = protect(result, group_by, threshold, base)
    audit.record(session, "stats.returnees", resource_type="stats", group_by=group_by, threshold=threshold,
                 rounding_base=base,
                 filters=_filters_for_audit({"from": since, "to": until, "district": district,
                                             "return_type": return_type,
                                             "trafficking_status": trafficking_status}))
    return table


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


DISTRICT_CODE_LENGTH = 5  # ``61.07``: every district code of the reference, the head of every code below it


def _referral_district(subject_region: Any) -> sa.ColumnElement[str | None]:
    """The district of a referral's subject, in SQL: the referred returnee's origin district
    (``subject_region`` holds its origin sub-district or district, copied at creation) or the
    district of the place an inline subject lives in; NULL when the subject's region is not
    known or is a whole province. Every code below a district starts with it
    (``61.07.07`` -> ``61.07``), so it is the column's first five characters: the same region the
    referral's oversight (``subject_region`` in the jurisdiction) and its events are filed under."""
    return sa.case((sa.func.length(subject_region) >= DISTRICT_CODE_LENGTH,
                    sa.func.substr(subject_region, 1, DISTRICT_CODE_LENGTH)), else_=sa.null())


async def referral_stats(
    session: AsyncSession, caller: Caller, group_by: list[str], threshold: int, *,
    since: date | None = None, until: date | None = None, status: str | None = None,
    to_agency: str | None = None, reason: str | None = None, urgency: str | None = None,
    district: str | None = None, open_: bool | None = None,
) -> Table:
    """Referrals of the caller's jurisdiction (and those its agency sent or received) counted by ``group_by``,
    each row with how many of them are overdue (open and past ``due_at``) now; a referral's
    record key is derived from its id.

    ``district`` (dimension and filter) is the district of the referral's subject
    (:func:`_referral_district`); ``open_`` keeps the open referrals (requested, received,
    accepted, in-progress, on-hold) or, false, the closed ones. Which referrals are counted is
    :func:`api.referrals.service.counted_for` whatever the dimensions: a district agency's table
    holds the referrals about people of its district and, under other districts, those sent from
    or addressed to its district (its own agency's among them) about people of elsewhere;
    nothing else."""
    dialect, secret, base = await prepare(session)
    r = Referral
    subject_district = _referral_district(col(r.subject_region))
    exprs: dict[str, Any] = {
        "status": col(r.status),
        "to_agency": col(r.to_agency),
        "reason": col(r.reason),
        "urgency": col(r.urgency),
        "district": subject_district,
    }
    dims = [(_month(dialect, col(r.created_at), timestamp=True) if n == "month" else exprs[n]).label(n)
            for n in group_by]
    key = id_key_sql(dialect, secret, "referral", col(r.id))
    is_open = col(r.status).in_(sorted(s.value for s in OPEN_STATUSES))
    is_overdue = sa.and_(is_open, col(r.due_at) < clock.now())
    stmt = sa.select(
        *dims, sa.func.count().label("count"), sa.func.sum(key).label("key"),
        sa.func.sum(sa.case((is_overdue, 1), else_=0)).label("overdue"),
        sa.func.sum(sa.case((is_overdue, key), else_=0)).label("overdue_key"),
    ).select_from(Referral).where(referrals_counted_for(caller))
    if since:
        stmt = stmt.where(col(r.created_at) >= _start_of(since))
    if until and until < date.max:
        stmt = stmt.where(col(r.created_at) < _start_of(until + timedelta(days=1)))
    for column, value in ((r.status, status), (r.to_agency, to_agency), (r.reason, reason), (r.urgency, urgency)):
        if value:
            stmt = stmt.where(col(column) == str(value))
    if district:
        # the district and every region in it: the same referrals as the dimension's value, on the index
        stmt = stmt.where(sa.or_(col(r.subject_region) == district,
                                 col(r.subject_region).startswith(district + ".", autoescape=True)))
    if open_ is not None:
        stmt = stmt.where(is_open if open_ else sa.not_(is_open))
    if dims:
        stmt = stmt.group_by(*_by_position(len(dims)))
    result = (await session.execute(stmt)).all()
    table = protect(result, group_by, threshold, base, extra=("overdue",))
    audit.record(session, "stats.referrals", resource_type="stats", group_by=group_by, threshold=threshold,
                 rounding_base=base,
                 filters=_filters_for_audit({"from": since, "to": until, "status": status,
                                             "to_agency": to_agency, "reason": reason, "urgency": urgency,
                                             "district": district, "open": open_}))
    return table
