"""Fixtures of the event tests: a broker namespace of each test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from db import BrokerSettings
from tests.support.broker import broker_namespace


@pytest.fixture
async def broker() -> AsyncIterator[BrokerSettings]:
    """RabbitMQ settings with a fresh namespace, deleted afterwards (skip without a broker,
    fail in CI)."""
    async with broker_namespace() as settings:
        yield settings
