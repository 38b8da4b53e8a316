"""ApiSettings: the API_* variables, in the same one-line format as the database's."""

from __future__ import annotations

import pytest

from api.settings import API_MAX_OVERFLOW, API_POOL_SIZE, ApiSettings
from db import SettingsError


@pytest.fixture(autouse=True)
def _no_api_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ApiSettings.model_fields:
        monkeypatch.delenv(ApiSettings.variable(name), raising=False)


def test_the_variables_override_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_REQUEST_TIMEOUT", "2.5")
    monkeypatch.setenv("API_BATCH_TRANSFERS", "off")
    monkeypatch.setenv("API_MAX_BODY_BYTES", "4096")
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///api.db")
    settings = ApiSettings()
    assert (settings.request_timeout, settings.batch_transfers) == (2.5, False)
    assert settings.max_body_bytes == 4096
    assert settings.database.url == "sqlite+aiosqlite:///api.db"


def test_the_server_keeps_a_fixed_pool_unless_the_variables_say_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DB_POOL_SIZE", raising=False)
    monkeypatch.delenv("DB_MAX_OVERFLOW", raising=False)
    pool = ApiSettings().database
    assert (pool.pool_size, pool.max_overflow) == (API_POOL_SIZE, API_MAX_OVERFLOW) == (15, 0)
    monkeypatch.setenv("DB_MAX_OVERFLOW", "3")
    pool = ApiSettings().database
    assert (pool.pool_size, pool.max_overflow) == (15, 3)


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        # A zero deadline is refused, and the message does not say it is allowed.
        ("API_REQUEST_TIMEOUT", "0", "API_REQUEST_TIMEOUT must be more than 0, got '0'"),
        ("API_REQUEST_TIMEOUT", "3601", "API_REQUEST_TIMEOUT must be at most 3600, got '3601'"),
        ("API_REQUEST_TIMEOUT", "nan", "API_REQUEST_TIMEOUT must be a finite number, got 'nan'"),
        # A fraction of a byte is refused, not truncated to 1024.
        ("API_MAX_BODY_BYTES", "1024.5", "API_MAX_BODY_BYTES must be a whole number, got '1024.5'"),
        ("API_MAX_BODY_BYTES", "255", "API_MAX_BODY_BYTES must be at least 256, got '255'"),
        (
            "API_BATCH_TRANSFERS",
            "maybe",
            "API_BATCH_TRANSFERS must be one of true/false/1/0/yes/no/on/off, got 'maybe'",
        ),
    ],
)
def test_a_bad_variable_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, line: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        ApiSettings()
    assert str(refused.value) == line


def test_a_bad_database_variable_is_refused_by_the_api_settings_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "many")
    with pytest.raises(SettingsError, match="DB_POOL_SIZE must be a whole number"):
        ApiSettings()
