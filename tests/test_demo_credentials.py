"""``sinergi demo --output FILE``: the demo clients' secrets are readable by their owner only."""

from __future__ import annotations

import json
import os
import stat


def test_the_credentials_file_is_readable_by_its_owner_only(sinergi, tmp_path):
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


def test_a_symbolic_link_at_the_path_is_replaced_not_followed(sinergi, tmp_path):
    elsewhere = tmp_path / "world-readable.txt"
    elsewhere.write_text("")
    elsewhere.chmod(0o644)
    path = tmp_path / "demo-credentials.json"
    os.symlink(elsewhere, path)
    r = sinergi("demo", "--output", str(path))
    assert r.exit_code == 0, r.output
    assert elsewhere.read_text() == "" and not path.is_symlink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
