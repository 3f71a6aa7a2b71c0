"""``sinergi demo --output FILE``: the demo clients' secrets are readable by their owner only."""

from __future__ import annotations

import json
import os
import stat

# The two tests of the file alone run the command on a copy of a loaded demo (``demo_copy``):
# with no credentials file the clients get new secrets and the file is written as on a first
# run, without loading the demo again (the test of a second run starts from an empty database).


def test_the_credentials_file_is_readable_by_its_owner_only(sinergi, demo_copy, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    path = folder / "demo-credentials.json"
    path.write_text("left over from an earlier run")
    path.chmod(0o644)  # e.g. made by the shell redirection that wrote it before
    r = sinergi("demo", "--output", str(path))
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    creds = json.loads(path.read_text())
    assert all(c["client_secret"] for c in creds["clients"].values())
    assert not any(c["client_secret"] in r.stdout for c in creds["clients"].values())  # not printed
    assert [p.name for p in folder.iterdir()] == ["demo-credentials.json"]  # no temporary file left


def test_a_symbolic_link_at_the_path_is_replaced_not_followed(sinergi, demo_copy, tmp_path):
    elsewhere = tmp_path / "world-readable.txt"
    elsewhere.write_text("")
    elsewhere.chmod(0o644)
    path = tmp_path / "demo-credentials.json"
    os.symlink(elsewhere, path)
    r = sinergi("demo", "--output", str(path))
    assert r.exit_code == 0, r.output
    assert elsewhere.read_text() == "" and not path.is_symlink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _counts(database_url: str) -> dict[str, int]:
    import sqlalchemy as sa

    from api.core.db import sync_url

    eng = sa.create_engine(sync_url(database_url))
    try:
        with eng.connect() as c:
            return {t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                    for t in ("notice", "referral", "returnee", "api_client")}
    finally:
        eng.dispose()


def test_a_second_demo_changes_nothing_and_keeps_the_secrets(sinergi, tmp_path, database_url):
    """What a second ``make run`` does to the demo: no new notice or referral, no client
    secret rotated (the credentials file still opens every client)."""
    import sqlalchemy as sa

    from api.core.db import sync_url

    path = tmp_path / "demo-credentials.json"
    r = sinergi("demo", "--output", str(path))
    assert r.exit_code == 0, r.output
    first, counts = json.loads(path.read_text()), _counts(database_url)
    assert counts["notice"] > 0 and counts["referral"] > 0
    eng = sa.create_engine(sync_url(database_url))
    with eng.connect() as c:
        hashes = dict(c.execute(sa.text("SELECT client_id, secret_hash FROM api_client")).all())
    r = sinergi("demo", "--output", str(path))
    assert r.exit_code == 0, r.output
    second = json.loads(path.read_text())
    assert second["clients"] == first["clients"]
    assert _counts(database_url) == counts
    with eng.connect() as c:
        assert dict(c.execute(sa.text("SELECT client_id, secret_hash FROM api_client")).all()) == hashes
    eng.dispose()
    # a file that is gone: the clients get new secrets (there is no other way to hand them out)
    path.unlink()
    r = sinergi("demo", "--output", str(path))
    assert r.exit_code == 0, r.output
    third = json.loads(path.read_text())
    assert all(third["clients"][k]["client_secret"] != first["clients"][k]["client_secret"] for k in first["clients"])
    assert _counts(database_url) == counts


def test_serve_stops_at_once_when_the_port_is_taken(sinergi, database_url):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args in (("serve", "--check"), ("serve",)):
            r = sinergi(*args, "--host", "127.0.0.1", "--port", str(port))
            assert r.exit_code == 2, r.output
            assert f"127.0.0.1:{port} is not free" in r.output and "already running" in r.output
    with socket.socket() as probe:  # a free one passes the check
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    r = sinergi("serve", "--check", "--host", "127.0.0.1", "--port", str(free))
    assert r.exit_code == 0, r.output
