"""What every use-case class holds: the session factory, the caller, and the deadline.

The deadline is chosen once, where the service is built (the API builds one per request
with API_REQUEST_TIMEOUT), so no call site repeats it; a call's own `timeout=` still
overrides it for that call.
"""

from __future__ import annotations

from services import validation
from services.callers import SYSTEM, Caller
from services.transactions import Sessions


class Service:
    """A use-case class for one caller, whose calls share one deadline (`timeout`
    seconds each; None: none)."""

    def __init__(
        self,
        sessions: Sessions,
        *,
        caller: Caller = SYSTEM,
        timeout: float | None = None,
    ) -> None:
        self._sessions = sessions
        self._caller = caller
        self._timeout = validation.timeout(timeout)

    def _deadline(self, timeout: float | None) -> float | None:
        """A call's deadline: its own `timeout`, else the service's."""
        return self._timeout if timeout is None else timeout
