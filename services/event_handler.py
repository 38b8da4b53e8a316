"""The contract between the event consumer and the code that applies an event's effect.

Its own module (as services/job_handler.py is for jobs) so that a handler, such as
services/statements.py, depends on this and not on the consumer, nor on the broker client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.cloud_events import CloudEvent


@dataclass(frozen=True, slots=True)
class EventHandler:
    """What a consumer does with the events it binds to.

    `parse` turns one event into what `apply` takes, raising `InvalidInput` for data of the
    wrong shape (the message is dead-lettered with that reason). `apply` writes the effect
    of the new events of a batch, in delivery order, in the session it is given, inside the
    batch's transaction (it must not commit).
    """

    types: frozenset[str]
    parse: Callable[[CloudEvent], Any]
    apply: Callable[[AsyncSession, Sequence[Any]], Awaitable[None]]
