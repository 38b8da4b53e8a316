"""Queries over API tokens, found by the hash of the presented token."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from models import ApiToken, User
from repositories.base import Repository


class TokenRepository(Repository[ApiToken]):
    """API tokens and the users they belong to."""

    model = ApiToken

    async def live_by_hash(self, token_hash: str) -> tuple[ApiToken, User] | None:
        """The unrevoked token with this hash and its user, or None."""
        query = (
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
        )
        row = (await self.session.execute(query)).first()
        return None if row is None else (row[0], row[1])

    async def revoke(self, token_id: int, now: datetime) -> bool:
        """Revoke one token; False if it was already revoked."""
        result = await self.session.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
