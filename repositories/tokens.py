"""Queries over API tokens, found by the hash of the presented token."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import Connection, Row, bindparam, func, select, update

from db.wakeups import TOKENS_CHANNEL
from models import ApiToken, User
from repositories.base import Repository

# Built once: every request authenticates, and building the statement (and its cache
# key) per call costs more than running it. Columns, not entities: no identity map.
_LIVE_BY_HASH: Final = (
    select(
        ApiToken.id.label("token_id"),
        ApiToken.token_hash,
        User.id,
        User.email,
        User.name,
        User.created_at,
        User.role,
    )
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))
)


def live_token_row(
    connection: Connection, token_hash: str
) -> Row[int, str, int, str, str, datetime, str] | None:
    """The unrevoked token with this hash and its user's columns, or None.

    A Core read on the caller's connection (inside its transaction), for the lookup
    every request makes: `token_id, token_hash, id, email, name, created_at, role`.
    """
    return connection.execute(_LIVE_BY_HASH, {"token_hash": token_hash}).first()


class TokenRepository(Repository[ApiToken]):
    """API tokens and the users they belong to."""

    model = ApiToken

    async def revoke(self, token_id: int, now: datetime) -> bool:
        """Revoke one token; False if it was already revoked. On PostgreSQL it also sends
        NOTIFY on the tokens channel (delivered at commit), so that every process's token
        cache forgets the token at once."""
        result = await self.session.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        revoked = bool(result.rowcount)  # type: ignore[attr-defined]
        if revoked and self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(select(func.pg_notify(TOKENS_CHANNEL, "")))
        return revoked
