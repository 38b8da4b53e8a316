"""DatabaseSettings: read from the environment, refuse bad values by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from db import DatabaseSettings, SettingsError, create_engine
from tests.support.paths import PROJECT_ROOT

Environ = Callable[[Mapping[str, str]], DatabaseSettings]


@pytest.fixture
def from_env(monkeypatch: pytest.MonkeyPatch) -> Environ:
    """DatabaseSettings() read from exactly these variables (none of the caller's DB_*)."""

    def read(variables: Mapping[str, str]) -> DatabaseSettings:
        for name in DatabaseSettings.model_fields:
            monkeypatch.delenv(DatabaseSettings.variable(name), raising=False)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return DatabaseSettings()

    return read


def test_defaults_point_at_the_embedded_sqlite_file(from_env: Environ) -> None:
    settings = from_env({})
    # The checkout's file, wherever the tests run from (db/checkout.py).
    assert settings.url == f"sqlite+aiosqlite:///{PROJECT_ROOT / 'ledger.db'}"
    assert settings.backend == "sqlite"


def test_environment_variables_override_defaults(from_env: Environ) -> None:
    settings = from_env(
        {
            "DATABASE_URL": "postgresql+asyncpg://u:p@db/ledger",
            "DB_POOL_SIZE": "20",
            "DB_MAX_OVERFLOW": "0",
            "DB_POOL_TIMEOUT": "2.5",
            "DB_POOL_RECYCLE": "600",
            "DB_POOL_PRE_PING": "true",
            "DB_ECHO": "no",
            "DB_BUSY_TIMEOUT_MS": "100",
            "DB_STATEMENT_TIMEOUT_MS": "1500",
        }
    )
    assert (settings.pool_size, settings.max_overflow, settings.pool_timeout) == (20, 0, 2.5)
    assert (settings.pool_recycle, settings.pool_pre_ping, settings.echo) == (600, True, False)
    assert (settings.busy_timeout_ms, settings.statement_timeout_ms) == (100, 1500)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DB_POOL_SIZE", "five"),
        ("DB_POOL_SIZE", "0"),
        ("DB_MAX_OVERFLOW", "-1"),
        ("DB_POOL_TIMEOUT", "soon"),
        ("DB_POOL_TIMEOUT", "nan"),
        ("DB_POOL_PRE_PING", "maybe"),
        ("DB_BUSY_TIMEOUT_MS", "1.5"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str, from_env: Environ) -> None:
    with pytest.raises(SettingsError, match=variable):
        from_env({variable: value})


@pytest.mark.parametrize(
    "url",
    ["not a url", "mysql+aiomysql://h/db", "sqlite:///ledger.db", "postgresql+psycopg://h/db"],
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        DatabaseSettings(url=url)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite://",
        "sqlite+aiosqlite:///:memory:",
        "sqlite+aiosqlite:///file::memory:?cache=shared&uri=true",
    ],
)
def test_in_memory_sqlite_is_refused_because_it_would_share_one_connection(url: str) -> None:
    with pytest.raises(SettingsError, match="in-memory"):
        create_engine(DatabaseSettings(url=url))


def test_display_url_hides_the_password() -> None:
    settings = DatabaseSettings(url="postgresql+asyncpg://ledger:s3cret@db:5432/ledger")
    assert "s3cret" not in settings.display_url
    assert "***" in settings.display_url


def test_the_listen_url_is_read_from_db_listen_url_and_defaults_to_the_database_url(
    from_env: Environ,
) -> None:
    pooled = "postgresql+asyncpg://u:p@pooler:6432/ledger"
    direct = "postgresql+asyncpg://u:p@db:5432/ledger"
    settings = from_env({"DATABASE_URL": pooled, "DB_LISTEN_URL": direct})
    assert (settings.listen_url, settings.listener_url) == (direct, direct)
    default = from_env({"DATABASE_URL": pooled})
    assert (default.listen_url, default.listener_url) == (None, pooled)


@pytest.mark.parametrize(
    ("url", "listen_url"),
    [
        ("postgresql+asyncpg://h/db", "not a url"),
        ("postgresql+asyncpg://h/db", "postgresql+psycopg://h/db"),
        ("sqlite+aiosqlite:///ledger.db", "postgresql+asyncpg://h/db"),
    ],
)
def test_a_bad_listen_url_is_refused_by_name(url: str, listen_url: str) -> None:
    with pytest.raises(SettingsError, match="DB_LISTEN_URL"):
        DatabaseSettings(url=url, listen_url=listen_url)


POOLED = "postgresql+asyncpg://u@pgbouncer:6432/ledger"
DIRECT = "postgresql+asyncpg://u@db:5432/ledger"


def test_the_transaction_pooler_setting_and_the_listen_url_are_read_from_the_environment(
    from_env: Environ,
) -> None:
    settings = from_env(
        {"DATABASE_URL": POOLED, "DB_PG_POOLER": "transaction", "DB_LISTEN_URL": DIRECT}
    )
    assert (settings.pg_pooler, settings.listen_url) == ("transaction", DIRECT)
    assert settings.pooled_by_transaction


def test_without_db_pg_pooler_the_engine_talks_to_postgresql_directly(from_env: Environ) -> None:
    settings = from_env({"DATABASE_URL": DIRECT, "DB_PG_POOLER": ""})
    assert settings.pg_pooler is None
    assert not settings.pooled_by_transaction


@pytest.mark.parametrize("value", ["session", "statement", "pgbouncer", "yes"])
def test_an_unknown_pooler_mode_is_refused(value: str, from_env: Environ) -> None:
    with pytest.raises(
        SettingsError, match=f"DB_PG_POOLER must be 'transaction' or unset, got '{value}'"
    ):
        from_env({"DATABASE_URL": POOLED, "DB_PG_POOLER": value, "DB_LISTEN_URL": DIRECT})


def test_a_transaction_pooler_in_front_of_sqlite_is_refused() -> None:
    with pytest.raises(
        SettingsError, match="is for PostgreSQL behind PgBouncer; DATABASE_URL is sqlite"
    ):
        DatabaseSettings(url="sqlite+aiosqlite:///l.db", pg_pooler="transaction", listen_url=DIRECT)


@pytest.mark.parametrize("listen_url", [None, POOLED, f" {POOLED}"])
def test_a_transaction_pooler_needs_a_separate_direct_listen_url(listen_url: str | None) -> None:
    with pytest.raises(SettingsError, match="needs DB_LISTEN_URL: a direct connection"):
        DatabaseSettings(url=POOLED, pg_pooler="transaction", listen_url=listen_url)


@pytest.mark.parametrize(
    ("variables", "line"),
    [
        ({"DB_POOL_SIZE": "five"}, "DB_POOL_SIZE must be a whole number, got 'five'"),
        ({"DB_POOL_SIZE": "0"}, "DB_POOL_SIZE must be at least 1, got '0'"),
        ({"DB_POOL_TIMEOUT": "-1"}, "DB_POOL_TIMEOUT must be more than 0, got '-1'"),
        ({"DB_POOL_TIMEOUT": "inf"}, "DB_POOL_TIMEOUT must be a finite number, got 'inf'"),
        ({"DB_ECHO": "loud"}, "DB_ECHO must be one of true/false/1/0/yes/no/on/off, got 'loud'"),
    ],
)
def test_every_bad_variable_is_one_line_in_one_format(
    variables: Mapping[str, str], line: str, from_env: Environ
) -> None:
    with pytest.raises(SettingsError) as refused:
        from_env(variables)
    assert str(refused.value) == line


def test_a_value_given_in_code_wins_and_the_environment_gives_the_rest(
    from_env: Environ, monkeypatch: pytest.MonkeyPatch
) -> None:
    # How `DB_SQLITE_ONE_HOP=false pytest` reaches every engine a test builds.
    from_env({"DB_SQLITE_ONE_HOP": "false", "DB_POOL_SIZE": "7"})
    settings = DatabaseSettings(url="sqlite+aiosqlite:///other.db", pool_size=2)
    assert (settings.url, settings.pool_size, settings.sqlite_one_hop) == (
        "sqlite+aiosqlite:///other.db",
        2,
        False,
    )


def test_a_copy_with_changes_is_checked_like_the_original() -> None:
    settings = DatabaseSettings(url=DIRECT, pool_size=3)
    assert settings.replace(pool_size=4).pool_size == 4
    assert settings.replace(pool_size=4).url == DIRECT
    with pytest.raises(SettingsError, match="DB_POOL_SIZE must be at least 1"):
        settings.replace(pool_size=0)


def test_the_settings_repr_does_not_show_the_password() -> None:
    settings = DatabaseSettings(url="postgresql+asyncpg://ledger:s3cret@db/ledger")
    assert "s3cret" not in repr(settings)
