"""The contract between the worker and the code that does a job's work.

Its own module so that a handler (services/notifications.py) and the worker that runs it
both depend on this, and neither on the other.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.results import ClaimedJob

# A handler does the job's work in the session it is given, inside the job's transaction
# (it must not commit). It may run more than once (retries), so it must be idempotent.
JobHandler = Callable[[ClaimedJob, AsyncSession], Coroutine[Any, Any, None]]
