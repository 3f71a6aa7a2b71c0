"""0017 the audit chain's append as one function call per commit

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 14:00:00

On PostgreSQL the entries a commit appends to a chain (one unit's, or a group of reads',
``api.core.audit.append_and_commit``) go to the database as ONE call of
``sinergi_audit_append``: the entries as one JSON array instead of a prepared statement
executed once per entry with thirteen parameters each. The function takes the chain's head
(made from the genesis if the chain has none yet), links the entries in their order with the
chain's rule, ``sha256(prev_hash "\\n" seq "\\n" body)`` (``api.core.audit.chain_hash``), inserts
them and their subjects, and moves the head once. It returns how many entries it appended.
SQLite has no such function: the service appends there itself (it holds the database's write
lock for the whole transaction).
"""
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _link(prev: str, seq: str) -> str:
    """The chain's rule in SQL: an entry's hash from the previous hash and its seq (SQL
    expressions) and the entry's body ``e.body``."""
    return f"encode(sha256(convert_to({prev} || E'\\n' || ({seq})::text || E'\\n' || e.body, 'UTF8')), 'hex')"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        rf"""
        CREATE FUNCTION sinergi_audit_append(p_chain text, p_genesis text, p_subjects json, p_entries json)
        RETURNS integer LANGUAGE plpgsql AS $$
        DECLARE
            h_seq bigint;
            h_prev text;
            h_hash text;
            appended integer := 0;
            e record;
        BEGIN
            IF json_array_length(p_subjects) > 0 THEN
                INSERT INTO audit_subject (event_id, resource_type, resource_id)
                SELECT s.event_id, s.resource_type, s.resource_id
                  FROM json_to_recordset(p_subjects) AS s(event_id uuid, resource_type text, resource_id text);
            END IF;
            FOR e IN
                SELECT x.* FROM ROWS FROM (json_to_recordset(p_entries) AS (
                    id uuid, occurred_at timestamptz, client_id text, agency text, action text,
                    resource_type text, resource_id text, outcome text, request_id text, body text))
                    WITH ORDINALITY AS x(id, occurred_at, client_id, agency, action, resource_type,
                                         resource_id, outcome, request_id, body, n)
                 ORDER BY x.n
            LOOP
                IF appended = 0 THEN
                    -- the first entry moves the head (made from the genesis if the chain has none
                    -- yet) and locks it until the transaction ends
                    INSERT INTO audit_head AS a (chain, seq, prev_hash, hash)
                    VALUES (p_chain, 1, p_genesis, {_link("p_genesis", "1")})
                    ON CONFLICT (chain) DO UPDATE
                       SET seq = a.seq + 1, prev_hash = a.hash, hash = {_link("a.hash", "a.seq + 1")}
                    RETURNING seq, prev_hash, hash INTO h_seq, h_prev, h_hash;
                ELSE
                    h_prev := h_hash;
                    h_seq := h_seq + 1;
                    h_hash := {_link("h_prev", "h_seq")};
                END IF;
                INSERT INTO audit_event (chain, seq, id, occurred_at, client_id, agency, action, resource_type,
                                         resource_id, outcome, request_id, body, prev_hash, hash)
                VALUES (p_chain, h_seq, e.id, e.occurred_at, e.client_id, e.agency, e.action, e.resource_type,
                        e.resource_id, e.outcome, e.request_id, e.body, h_prev, h_hash);
                appended := appended + 1;
            END LOOP;
            IF appended > 1 THEN  -- the head at the last entry (the first one moved it already)
                UPDATE audit_head SET seq = h_seq, prev_hash = h_prev, hash = h_hash WHERE chain = p_chain;
            END IF;
            RETURN appended;
        END $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS sinergi_audit_append(text, text, json, json)")
