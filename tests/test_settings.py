"""Production mode never runs on missing or development keys."""

from __future__ import annotations

import base64
import os

import pytest
from pydantic import ValidationError

from api.core.settings import DEV_DATA_KEY, DEV_INDEX_KEY, Settings


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
