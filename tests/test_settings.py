"""The service fails closed: only development mode, set explicitly, runs on the published
development keys, and it says so at start-up."""

from __future__ import annotations

import base64
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from api.app import create_app
from api.cli import main as cli
from api.core.settings import DEV_DATA_KEY, DEV_INDEX_KEY, Settings, get_settings
from bench.common import wait_answering

ROOT = Path(__file__).resolve().parents[1]


def key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture(autouse=True)
def no_key_env(monkeypatch):
    for name in ("SINERGI_DATA_KEY", "SINERGI_INDEX_KEY", "SINERGI_MODE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param({}, id="no-keys"),
        pytest.param({"data_key": key()}, id="no-index-key"),
        pytest.param({"index_key": key()}, id="no-data-key"),
        pytest.param({"data_key": DEV_DATA_KEY, "index_key": key()}, id="dev-data-key"),
        pytest.param({"data_key": key(), "index_key": DEV_INDEX_KEY}, id="dev-index-key"),
        pytest.param({"data_key": key(), "index_key": base64.urlsafe_b64encode(b"short").decode()}, id="short"),
        pytest.param({"data_key": key(), "index_key": "not base64 at all!"}, id="garbage"),
    ],
)
def test_production_refuses(keys):
    with pytest.raises(ValidationError) as err:
        Settings(mode="production", _env_file=None, **keys)
    assert "SINERGI_" in str(err.value) or "development" in str(err.value)


def test_production_refuses_keys_from_the_environment_too(monkeypatch):
    monkeypatch.setenv("SINERGI_MODE", "production")
    monkeypatch.setenv("SINERGI_DATA_KEY", DEV_DATA_KEY)
    monkeypatch.setenv("SINERGI_INDEX_KEY", DEV_INDEX_KEY)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_production_accepts_real_keys(monkeypatch):
    data, index = key(), key()
    s = Settings(mode="production", data_key=data, index_key=index, _env_file=None)
    assert s.data_key_bytes == base64.urlsafe_b64decode(data) and len(s.index_key_bytes) == 32
    monkeypatch.setenv("SINERGI_MODE", "production")
    monkeypatch.setenv("SINERGI_DATA_KEY", data.rstrip("="))  # padding is optional
    monkeypatch.setenv("SINERGI_INDEX_KEY", index)
    assert Settings(_env_file=None).data_key_bytes == base64.urlsafe_b64decode(data)


def test_development_falls_back_to_the_development_keys():
    s = Settings(mode="development", _env_file=None)
    assert s.data_key_bytes == base64.urlsafe_b64decode(DEV_DATA_KEY)
    with pytest.raises(ValidationError):
        Settings(mode="development", data_key="c2hvcnQ=", _env_file=None)


def test_without_a_mode_the_service_needs_real_keys():
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None)
    assert "SINERGI_DATA_KEY" in str(err.value) and "SINERGI_MODE=development" in str(err.value)
    s = Settings(data_key=key(), index_key=key(), _env_file=None)
    assert s.mode == "production" and s.development_keys == []


@pytest.mark.parametrize("mode", ["test", "Development", ""])
def test_no_other_mode_falls_back_to_the_development_keys(mode, monkeypatch):
    with pytest.raises(ValidationError):
        Settings(mode=mode, _env_file=None)
    monkeypatch.setenv("SINERGI_MODE", mode)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_development_mode_names_the_development_keys_it_runs_on():
    assert Settings(mode="development", _env_file=None).development_keys == ["SINERGI_DATA_KEY", "SINERGI_INDEX_KEY"]
    assert Settings(mode="development", data_key=DEV_DATA_KEY, index_key=key(),
                    _env_file=None).development_keys == ["SINERGI_DATA_KEY"]
    assert Settings(mode="development", data_key=key(), index_key=key(), _env_file=None).development_keys == []


@pytest.fixture
def fresh_settings():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["keys", "rotate"], ["demo"]])
def test_the_command_refuses_to_run_without_real_keys(fresh_settings, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("SINERGI_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/none.db")
    r = CliRunner().invoke(cli, command)
    assert r.exit_code == 2, r.output
    assert "SINERGI_DATA_KEY" in r.stderr and "SINERGI_MODE=development" in r.stderr
    assert "Traceback" not in r.output and not (tmp_path / "none.db").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINERGI_")}
    return env | {"PYTHONPATH": str(ROOT), "SINERGI_LOG_JSON": "false"} | values


def test_a_server_without_mode_or_keys_does_not_start(tmp_path):
    port = _free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path, env=_env(SINERGI_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/none.db"),
        capture_output=True, timeout=60,
    )
    assert proc.returncode != 0
    assert b"SINERGI_DATA_KEY" in proc.stderr and b"SINERGI_MODE=development" in proc.stderr


async def test_development_keys_are_announced_at_start_up(database_url, caplog):
    caplog.set_level(logging.WARNING, logger="sinergi.app")
    app = create_app(Settings(database_url=database_url, mode="development", _env_file=None), configure_logging=False)
    async with app.router.lifespan_context(app):
        pass
    [warning] = [r for r in caplog.records if r.name == "sinergi.app" and "DEVELOPMENT KEYS" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "SINERGI_DATA_KEY, SINERGI_INDEX_KEY" in warning.getMessage()


def test_sinergi_serve_says_on_stderr_that_it_runs_on_development_keys(database_url, tmp_path):
    port = _free_port()
    err = tmp_path / "stderr"
    with err.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from api.cli import main; main()", "serve", "--port", str(port)],
            cwd=tmp_path, env=_env(SINERGI_MODE="development", SINERGI_DATABASE_URL=database_url),
            stdout=subprocess.DEVNULL, stderr=sink, start_new_session=True,
        )
        try:
            ready = wait_answering(f"http://127.0.0.1:{port}/readyz", timeout=30, alive=lambda: proc.poll() is None)
            assert proc.poll() is None, err.read_text()
            assert ready, f"the server did not become ready: {err.read_text()}"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = err.read_text()
    # the command's own line, and the service's log line at start-up
    assert "WARNING: DEVELOPMENT KEYS IN USE for SINERGI_DATA_KEY, SINERGI_INDEX_KEY" in text, text
    assert "WARNING sinergi.app DEVELOPMENT KEYS IN USE" in text, text
