"""Typed errors of the public API. Every failure a caller can act on is one of these."""

from __future__ import annotations

from services.currencies import format_amount


class LedgerError(Exception):
    """Base of every error the services raise on purpose."""


class InvalidInput(LedgerError):
    """A request was malformed; nothing was read or written."""


class InvalidAmount(InvalidInput):
    """An amount that is not a positive whole number of minor units within 64 bits."""


class InvalidCurrency(InvalidInput):
    """Not a known ISO-4217 currency code."""


class InvalidEmail(InvalidInput):
    """An email address that is empty, too long or not of the form local@domain."""


class InvalidText(InvalidInput):
    """A name, description or idempotency key that is empty, too long or has control characters."""


class InvalidId(InvalidInput):
    """An id that is not a positive whole number."""


class SameAccount(InvalidInput):
    """A transfer whose source and destination are the same account."""


class NotFound(LedgerError):
    """A referenced row does not exist."""


class AccountNotFound(NotFound):
    """No account has this id."""

    def __init__(self, account_id: int) -> None:
        super().__init__(f"account {account_id} does not exist")
        self.account_id = account_id


class UserNotFound(NotFound):
    """No user has this id."""

    def __init__(self, user_id: int) -> None:
        super().__init__(f"user {user_id} does not exist")
        self.user_id = user_id


class CurrencyMismatch(LedgerError):
    """The accounts of a transfer hold different currencies."""


class InsufficientFunds(LedgerError):
    """The source account holds less than the amount; nothing was changed."""

    def __init__(
        self, account_id: int, balance: int, amount: int, currency: str | None = None
    ) -> None:
        held, asked = (
            (f"{balance}", f"{amount}")
            if currency is None
            else (format_amount(balance, currency), format_amount(amount, currency))
        )
        super().__init__(f"account {account_id} holds {held}, less than the {asked} requested")
        self.account_id = account_id
        self.balance = balance
        self.amount = amount
        self.currency = currency


class IdempotencyConflict(LedgerError):
    """The idempotency key was already used for a different request."""

    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency key {key!r} was already used for a different request")
        self.key = key


class DuplicateEmail(LedgerError):
    """A user with this email already exists."""

    def __init__(self, email: str) -> None:
        super().__init__(f"a user with email {email!r} already exists")
        self.email = email


class DatabaseBusy(LedgerError):
    """The database stayed busy (locked, serialization failure, deadlock) through every retry."""


class OperationTimeout(LedgerError):
    """An operation ran past its deadline and was cancelled; what it had not committed was
    rolled back and its connection went back to the pool (or was discarded)."""


class PoolExhausted(OperationTimeout):
    """No pooled connection became free within DB_POOL_TIMEOUT."""


class PermanentJobFailure(LedgerError):
    """Raised by a job handler when retrying cannot help: the job goes dead at once."""


class JobLeaseLost(LedgerError):
    """A job's lease was taken over by another worker; this run's work was rolled back."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"the lease on job {job_id} was taken over by another worker")
        self.job_id = job_id


class SchemaNotMigrated(LedgerError):
    """The database's schema is not at the revision this code expects (never migrated, behind,
    or migrated by newer code); nothing was changed. Migrate it: `ledgerctl migrate`, or
    `await db.migrations.upgrade(engine)` at start-up."""

    def __init__(self, message: str, current: str | None = None, head: str | None = None) -> None:
        super().__init__(message)
        self.current = current
        self.head = head


class DatabaseUnavailable(LedgerError):
    """The database server could not be reached (refused, unknown host, no answer), or the
    connection to it was lost before the work committed (e.g. during a failover): nothing
    was committed, and the same call can be retried once the database is back."""


class OutcomeUnknown(LedgerError):
    """The connection was lost after COMMIT was sent and before its answer came back:
    the work may or may not have committed. Retrying is safe only with an idempotency
    key (transfers with one resolve this themselves); without one, read first."""


class StorageFull(LedgerError):
    """The database has no room for the write (disk full, or out of memory): nothing of
    the request was written. Writes succeed again once space is back; reads go on."""


class NotAllowed(LedgerError):
    """The caller's role does not allow this (e.g. a deposit by a user); nothing changed."""


class InvalidToken(LedgerError):
    """An API token that is missing, unknown or revoked."""


class BatcherClosed(LedgerError):
    """The transfer batcher is shutting down (or was never started) and takes no new
    requests; nothing of the refused request happened."""
