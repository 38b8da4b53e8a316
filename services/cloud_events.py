"""CloudEvents 1.0 in JSON (structured content mode): an outbox row to bytes and back.

The envelope is the spec's JSON format: `specversion`, `id` (the outbox id), `source`,
`type`, `time` (RFC 3339, UTC), `datacontenttype` and `data`, a JSON object. Encoding
refuses what no consumer could read (`UnencodableEvent`, the row is marked failed with the
reason); decoding refuses what is not such an envelope (`MalformedEvent`, the message is
dead-lettered with the reason). Both reasons are one line for a person to read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

SPECVERSION: Final = "1.0"
CONTENT_TYPE: Final = "application/cloudevents+json"
DATA_CONTENT_TYPE: Final = "application/json"
DEFAULT_SOURCE: Final = "urn:async-ledger:ledger"
# Well below RabbitMQ's max_message_size; an event is a fact, not a document.
MAX_EVENT_BYTES: Final = 256 * 1024
# Reverse-DNS-like dotted names, as the spec recommends: ledger.transfer.completed.
EVENT_TYPE: Final = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$")
_REQUIRED: Final = ("specversion", "id", "source", "type")
_REASON_MAX: Final = 300


class UnencodableEvent(ValueError):
    """An outbox row that cannot become a CloudEvent; the message says why."""


class MalformedEvent(ValueError):
    """A message that is not a CloudEvent this consumer can read; the message says why."""


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """A decoded event: its context attributes and its `data` object."""

    id: str
    source: str
    type: str
    time: datetime | None
    data: dict[str, Any]


def encode(
    event_id: int, event_type: str, data_json: str | None, time: datetime, source: str
) -> bytes:
    """The JSON envelope of one outbox row (its data as stored JSON text)."""
    if not EVENT_TYPE.match(event_type or ""):
        raise UnencodableEvent(f"type {_shown(event_type)} is not a dotted event type")
    if data_json is None:
        raise UnencodableEvent("data is missing (NULL)")
    try:
        data = json.loads(data_json)
    except ValueError as exc:
        raise UnencodableEvent(f"data is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UnencodableEvent(f"data is a JSON {type(data).__name__}, not an object")
    envelope = {
        "specversion": SPECVERSION,
        "id": str(event_id),
        "source": source,
        "type": event_type,
        "time": time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": DATA_CONTENT_TYPE,
        "data": data,
    }
    try:
        body = json.dumps(envelope, separators=(",", ":"), allow_nan=False).encode()
    except ValueError as exc:  # NaN or Infinity: valid to Python's parser, not JSON
        raise UnencodableEvent(f"data is not strict JSON: {exc}") from None
    if len(body) > MAX_EVENT_BYTES:
        raise UnencodableEvent(f"the event is {len(body)} bytes, over {MAX_EVENT_BYTES}")
    return body


def decode(body: bytes) -> CloudEvent:
    """The event in `body`, or `MalformedEvent` saying what is wrong with it."""
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedEvent(f"not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise MalformedEvent(f"a JSON {type(envelope).__name__}, not a CloudEvents object")
    missing = [name for name in _REQUIRED if not isinstance(envelope.get(name), str)]
    if missing:
        raise MalformedEvent(f"no string attribute {', '.join(missing)}")
    if envelope["specversion"] != SPECVERSION:
        raise MalformedEvent(f"specversion {_shown(envelope['specversion'])}, not {SPECVERSION}")
    for name in ("id", "source", "type"):
        if not envelope[name]:
            raise MalformedEvent(f"attribute {name} is empty")
    content_type = envelope.get("datacontenttype", DATA_CONTENT_TYPE)
    if content_type != DATA_CONTENT_TYPE:
        raise MalformedEvent(f"datacontenttype {_shown(content_type)}, not {DATA_CONTENT_TYPE}")
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise MalformedEvent("data is not a JSON object")
    return CloudEvent(
        id=envelope["id"],
        source=envelope["source"],
        type=envelope["type"],
        time=_time(envelope.get("time")),
        data=data,
    )


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedEvent("time is not an RFC 3339 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedEvent(f"time {_shown(value)} is not RFC 3339") from None
    if parsed.tzinfo is None:
        raise MalformedEvent(f"time {_shown(value)} has no offset")
    return parsed.astimezone(UTC)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _REASON_MAX else text[: _REASON_MAX - 1] + "…"
