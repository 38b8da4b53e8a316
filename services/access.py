"""Use cases for API access: register with a token, authenticate a token, revoke it.

A token is 32 random bytes (URL-safe base64, 43 characters), shown once. Only its
SHA-256 is stored: the table cannot be used to log in, and since a token carries 256
bits of randomness, a fast unsalted hash is enough (there is nothing to brute-force, as
there is with a password). The lookup is by hash through a unique index; the stored
hash is then compared with `hmac.compare_digest`, so no comparison in Python leaks
timing. (The index lookup works on the hash, which an attacker cannot steer.)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from db.wakeups import TOKENS_CHANNEL, wake_after_commit
from models import utcnow
from repositories import TokenRepository, live_token_row
from services.base import Service
from services.callers import ANONYMOUS, Caller, Role
from services.errors import InvalidToken
from services.registration import register_user
from services.results import Authenticated, Registration, UserRecord
from services.token_cache import TokenCache
from services.transactions import Sessions, run_in_transaction, run_read

TOKEN_BYTES: Final = 32
# URL-safe base64 of 32 bytes is 43 characters; anything much longer is not one of ours.
_TOKEN_MAX_LENGTH: Final = 64


def token_hash(token: str) -> str:
    """The stored form of a token: hex SHA-256."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class AccessService(Service):
    """Registration, tokens and authentication, for one caller (default: anonymous,
    which may register plain users; only the trusted SYSTEM may create operators).
    With `tokens`, authentication reads through that cache (services/token_cache.py)."""

    def __init__(
        self,
        sessions: Sessions,
        *,
        caller: Caller = ANONYMOUS,
        timeout: float | None = None,
        tokens: TokenCache | None = None,
    ) -> None:
        super().__init__(sessions, caller=caller, timeout=timeout)
        self._tokens = tokens

    async def register(
        self,
        email: str,
        name: str,
        *,
        role: Role = Role.USER,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> Registration:
        """Create a user and a token for them in one transaction (services/registration.py)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        user = await register_user(
            self._sessions,
            self._caller,
            email,
            name,
            role=role,
            token_hash=token_hash(token),
            timeout=self._deadline(timeout),
        )
        return Registration(user=user, token=token)

    async def authenticate(
        self,
        token: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> Authenticated:
        """The caller a live token stands for; InvalidToken for any other string."""
        if not isinstance(token, str) or not 0 < len(token) <= _TOKEN_MAX_LENGTH:
            raise InvalidToken("the API token is missing or malformed")
        wanted = token_hash(token)
        generation = 0
        if self._tokens is not None:
            cached = self._tokens.get(wanted)
            if cached is not None:
                return cached
            generation = self._tokens.generation

        # Every request comes through here: a Core read in one greenlet (run_read), not
        # an ORM session; with a TokenCache, only once per token and bound (its docstring).
        def work(connection: Connection) -> Authenticated | None:
            row = live_token_row(connection, wanted)
            if row is None or not hmac.compare_digest(row.token_hash, wanted):
                return None
            user = UserRecord(
                id=row.id, email=row.email, name=row.name, created_at=row.created_at, role=row.role
            )
            return Authenticated(
                caller=Caller.for_role(user.id, user.role), user=user, token_id=row.token_id
            )

        result = await run_read(
            self._sessions, work, one_statement=True, timeout=self._deadline(timeout)
        )
        if result is None:
            raise InvalidToken("the API token is not valid (unknown or revoked)")
        if self._tokens is not None:
            self._tokens.put(wanted, result, generation)
        return result

    async def revoke(
        self,
        token: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> None:
        """Revoke `token` (the caller's own: it is presented, so it is theirs)."""
        current = await self.authenticate(token, timeout=self._deadline(timeout))

        async def work(session: AsyncSession) -> bool:
            # Token caches of this process forget it at commit (other processes: NOTIFY
            # on PostgreSQL, sent by the repository; services/token_cache.py).
            wake_after_commit(session, TOKENS_CHANNEL)
            return await TokenRepository(session).revoke(current.token_id, utcnow())

        if not await run_in_transaction(self._sessions, work, timeout=self._deadline(timeout)):
            raise InvalidToken("the API token is not valid (unknown or revoked)")
