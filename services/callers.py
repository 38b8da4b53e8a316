"""Who is asking: the caller every service acts for, and what each kind may do.

Services take the caller at construction (`AccountService(sessions, caller=...)`) and
check it themselves, so no entry point can skip the rules: the HTTP API passes the
authenticated user, while the CLI, the worker, the demo and the benchmark use the
default, `SYSTEM`, the trusted code of this process (whoever can run it can already
open the database). The caller also names the scope of its idempotency keys, so two
callers' keys never collide.

| caller | moves money out of | deposits | reads | key scope |
|---|---|---|---|---|
| `SYSTEM` / `Caller.feature(name)` | any account | yes | everything | `system` / `feature:<name>` |
| `Caller.operator(id)` | its own accounts | yes, into any account | everything | `user:<id>` |
| `Caller.user(id)` | its own accounts | no | its own user, accounts, history | `user:<id>` |
| `ANONYMOUS` | nothing | no | nothing (may only register) | none |

Someone else's account reads exactly like one that does not exist (AccountNotFound),
so ids cannot be probed; an action the role never allows is NotAllowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from models.transfer import IDEMPOTENCY_SCOPE_MAX_LENGTH
from services.errors import InvalidInput, NotAllowed

SYSTEM_SCOPE: Final = "system"
_FEATURE_NAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]*")
_FEATURE_PREFIX: Final = "feature:"


class Role(StrEnum):
    """The role stored with a user."""

    USER = "user"
    OPERATOR = "operator"


class CallerKind(StrEnum):
    """What kind of caller this is."""

    SYSTEM = "system"
    OPERATOR = "operator"
    USER = "user"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Caller:
    """The identity a service acts for. Build it with the class methods."""

    kind: CallerKind
    user_id: int | None = None
    feature_name: str | None = None

    @classmethod
    def user(cls, user_id: int) -> Caller:
        """A user who may touch only their own accounts."""
        return cls(CallerKind.USER, user_id=user_id)

    @classmethod
    def operator(cls, user_id: int) -> Caller:
        """A back-office user: deposits and reads anything, moves only its own money."""
        return cls(CallerKind.OPERATOR, user_id=user_id)

    @classmethod
    def for_role(cls, user_id: int, role: str) -> Caller:
        """The caller for a stored user and role."""
        return cls.operator(user_id) if role == Role.OPERATOR else cls.user(user_id)

    @classmethod
    def feature(cls, name: str) -> Caller:
        """Trusted in-process code whose idempotency keys live in a scope of their own
        (e.g. `Caller.feature("merchant-payments")`), so they never meet other keys."""
        if (
            not isinstance(name, str)
            or not _FEATURE_NAME.fullmatch(name)
            or len(_FEATURE_PREFIX) + len(name) > IDEMPOTENCY_SCOPE_MAX_LENGTH
        ):
            raise InvalidInput(
                "a feature name is lower-case letters, digits, '.', '_' or '-', "
                f"at most {IDEMPOTENCY_SCOPE_MAX_LENGTH - len(_FEATURE_PREFIX)} characters"
            )
        return cls(CallerKind.SYSTEM, feature_name=name)

    @property
    def idempotency_scope(self) -> str:
        """Where this caller's idempotency keys live."""
        if self.user_id is not None:
            return f"user:{self.user_id}"
        if self.kind is CallerKind.SYSTEM:
            if self.feature_name is None:
                return SYSTEM_SCOPE
            return f"{_FEATURE_PREFIX}{self.feature_name}"
        raise NotAllowed("an anonymous caller cannot move money")

    @property
    def is_trusted(self) -> bool:
        """In-process code: no ownership checks."""
        return self.kind is CallerKind.SYSTEM

    @property
    def reads_everything(self) -> bool:
        """May read any user's accounts, the audit and the job statistics."""
        return self.kind in (CallerKind.SYSTEM, CallerKind.OPERATOR)

    @property
    def may_deposit(self) -> bool:
        """Money enters the ledger only through the back office."""
        return self.kind in (CallerKind.SYSTEM, CallerKind.OPERATOR)

    def owner_filter(self) -> int | None:
        """The user whose accounts alone this caller may move money out of (None: any)."""
        if self.kind is CallerKind.ANONYMOUS:
            raise NotAllowed("an anonymous caller cannot move money")
        return None if self.is_trusted else self.user_id

    def may_read_user(self, user_id: int) -> bool:
        """Whether this caller may see `user_id`'s user record, accounts and dashboard."""
        return self.reads_everything or (self.user_id is not None and self.user_id == user_id)

    def require_back_office(self, action: str) -> None:
        """NotAllowed unless this caller is the system or an operator."""
        if not self.reads_everything:
            raise NotAllowed(f"only an operator may {action}")

    def require_authenticated(self) -> None:
        """NotAllowed for the anonymous caller."""
        if self.kind is CallerKind.ANONYMOUS:
            raise NotAllowed("this needs an authenticated caller")


SYSTEM: Final = Caller(CallerKind.SYSTEM)
ANONYMOUS: Final = Caller(CallerKind.ANONYMOUS)
