"""Events through the project's interfaces: the CloudEvents envelope, the app's lifespan
relay and /metrics, and the ledgerctl commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from api.app import create_app
from api.settings import ApiSettings
from db import BrokerSettings, DatabaseSettings, SettingsError
from models import OutboxEvent, OutboxStatus
from services import EventOutbox
from services.cloud_events import MAX_EVENT_BYTES, MalformedEvent, UnencodableEvent, decode, encode
from services.errors import InvalidInput
from tests.support.cli_process import assert_one_line_error, ledgerctl
from tests.support.events import (
    Sessions,
    count,
    declare_statements_queue,
    eventually,
    open_accounts,
)
from tests.support.paths import PROJECT_ROOT

WHEN = datetime(2026, 12, 7, 8, 30, 15, 250000, tzinfo=UTC)


def test_an_outbox_row_encodes_to_a_cloudevent_that_decodes_back() -> None:
    body = encode(41, "ledger.transfer.completed", '{"amount": 5}', WHEN, "urn:test")
    assert json.loads(body) == {
        "specversion": "1.0",
        "id": "41",
        "source": "urn:test",
        "type": "ledger.transfer.completed",
        "time": "2026-12-07T08:30:15.250000Z",
        "datacontenttype": "application/json",
        "data": {"amount": 5},
    }
    event = decode(body)
    assert (event.id, event.time, event.data) == ("41", WHEN, {"amount": 5})


@pytest.mark.parametrize(
    ("event_type", "data", "reason"),
    [
        ("ledger transfer", "{}", "is not a dotted event type"),
        ("ledger.x", None, "data is missing"),
        ("ledger.x", "{oops", "data is not JSON"),
        ("ledger.x", "7", "data is a JSON int, not an object"),
        ("ledger.x", '{"n": NaN}', "not strict JSON"),
        ("ledger.x", json.dumps({"s": "x" * MAX_EVENT_BYTES}), f"over {MAX_EVENT_BYTES}"),
    ],
)
def test_an_outbox_row_that_no_consumer_could_read_is_refused_with_the_reason(
    event_type: str, data: str | None, reason: str
) -> None:
    with pytest.raises(UnencodableEvent, match=reason):
        encode(1, event_type, data, WHEN, "urn:test")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b'{"specversion": "1.0", "id": "1", "source": "s"}', "no string attribute type"),
        (b'{"specversion":"1.0","id":"","source":"s","type":"a.b","data":{}}', "id is empty"),
        (
            b'{"specversion":"1.0","id":"1","source":"s","type":"a.b","data":[]}',
            "not a JSON object",
        ),
        (
            b'{"specversion":"1.0","id":"1","source":"s","type":"a.b","time":"yesterday","data":{}}',
            "is not RFC 3339",
        ),
    ],
)
def test_a_message_that_is_not_a_cloudevent_is_refused_with_the_reason(
    body: bytes, reason: str
) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        decode(body)


@pytest.mark.parametrize(
    ("event_type", "data", "reason"),
    [
        ("Ledger Opened", {}, "is not dotted names"),
        ("ledger.x", {"when": datetime(2026, 1, 1, tzinfo=UTC)}, "must be a JSON object"),
        ("ledger.x", {"n": float("nan")}, "must be a JSON object"),
    ],
)
async def test_an_event_added_by_code_is_checked_before_anything_is_written(
    sessions: Sessions, event_type: str, data: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidInput, match=reason):
        async with sessions.begin() as session:
            await EventOutbox.add(session, event_type, data)
    assert await count(sessions, OutboxEvent.id) == 0


def test_broker_url_is_checked_and_its_password_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BROKER_URL", raising=False)
    assert not BrokerSettings.from_env().enabled
    monkeypatch.setenv("BROKER_URL", "amqp://u:hunter2@mq:5672/v")
    settings = BrokerSettings.from_env()
    assert settings.display_url == "amqp://u:***@mq:5672/v"
    assert "hunter2" not in repr(settings)
    for wrong in ("http://mq/", "amqp://", "amqp://mq:99999/"):
        with pytest.raises(SettingsError, match="BROKER_URL"):
            BrokerSettings(url=wrong)
    monkeypatch.setenv("BROKER_NAMESPACE", "Has Spaces")
    with pytest.raises(SettingsError, match="BROKER_NAMESPACE"):
        BrokerSettings.from_env()


async def test_the_app_relays_in_its_lifespan_and_metrics_count_the_outbox(
    sessions: Sessions, broker: BrokerSettings, settings: DatabaseSettings
) -> None:
    await declare_statements_queue(broker)
    async with sessions.begin() as session:
        await session.execute(
            text(
                "INSERT INTO outbox_events (type, data, status, created_at)"
                " VALUES ('ledger.note.added', '\"text\"', 'pending', CURRENT_TIMESTAMP)"
            )
        )
    app = create_app(ApiSettings(database=settings, broker=broker))
    async with LifespanManager(app) as manager:
        await open_accounts(sessions, 1, 100)  # a deposit: its event wakes the app's relay
        await eventually(lambda: _none_pending(sessions))
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as http:
            metrics = (await http.get("/metrics")).text
    assert 'ledger_outbox_events{status="pending"} 0.0' in metrics
    assert 'ledger_outbox_events{status="failed"} 1.0' in metrics
    assert "ledger_relay_published_total 1.0" in metrics
    assert "ledger_relay_failed_total 1.0" in metrics


async def _none_pending(sessions: Sessions) -> bool:
    return await count(sessions, OutboxEvent.id, OutboxEvent.status == OutboxStatus.PENDING) == 0


def _sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    assert ledgerctl(url, "migrate").returncode == 0
    return url


def test_ledgerctl_outbox_lists_a_failed_event_with_its_reason(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
    subprocess.run(
        ["sqlite3", str(tmp_path / "ledger.db")],
        input="INSERT INTO outbox_events (id, type, data, status, error, created_at) VALUES "
        "(9, 'ledger.x', '[]', 'failed', 'cannot encode: data is a JSON list, not an object',"
        " '2026-12-07 08:00:00');",
        text=True,
        check=True,
    )
    done = ledgerctl(url, "outbox")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "outbox: 0 pending, 1 failed; no relay publishing",
        "  failed event 9 ledger.x at 2026-12-07 08:00:00Z: "
        "cannot encode: data is a JSON list, not an object",
    ]
    assert (
        ledgerctl(url, "outbox", "--retry", "9").stdout == "1 failed events put back to pending\n"
    )


def test_ledgerctl_relay_without_a_broker_url_is_one_line(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "BROKER_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "cli", "--database-url", url, "relay"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert "set BROKER_URL=amqp://" in assert_one_line_error(done)


def test_ledgerctl_relay_with_the_broker_down_says_so_in_one_line_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    url = _sqlite_url(tmp_path)
    env = {**os.environ, "BROKER_URL": "amqp://guest:guest@127.0.0.1:1/"}
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "--database-url", url, "relay"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        assert process.stdout.readline().startswith("relay ")
        warning = process.stderr.readline()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert warning.startswith("ledgerctl relay: relay ")
    assert "broker unreachable at amqp://guest:***@127.0.0.1:1/" in warning
    assert err == ""  # retried quietly: one line, not one per attempt, no traceback
    assert out.startswith("relay stopped: published 0")
    assert process.returncode == 0
