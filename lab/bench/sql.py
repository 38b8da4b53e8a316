"""The SQL every raw-driver variant sends, written once and rendered per parameter style.

Every variant applies the same transfer to the project's migrated schema: a guarded debit
(refused when it would go below zero), a credit and a `transfers` row, in one transaction.
The debit and credit also move the account's kept totals (models/account.py) by relative
addition, as the audit checks them; without the write path's carry into the high half,
which the bench's small amounts never need.
Templates use `{}` for parameters; `render` turns them into `?`, `%s` or `$n`.
"""

from __future__ import annotations

from typing import Final, Literal

from lab.bench.ops import Op

ParamStyle = Literal["qmark", "format", "numeric"]

DEBIT: Final = (
    "UPDATE accounts SET balance = balance - {}, sent_low = sent_low + {}, "
    "movements = movements + 1, updated_at = CURRENT_TIMESTAMP WHERE id = {} AND balance >= {}"
)
CREDIT: Final = (
    "UPDATE accounts SET balance = balance + {}, received_low = received_low + {}, "
    "movements = movements + 1, updated_at = CURRENT_TIMESTAMP WHERE id = {}"
)
RECORD: Final = (
    "INSERT INTO transfers (source_account_id, destination_account_id, amount, currency) "
    "VALUES ({}, {}, {}, 'EUR')"
)
POINT: Final = "SELECT balance FROM accounts WHERE id = {}"
ACCOUNT: Final = (
    "SELECT id, owner_id, currency, balance, created_at, updated_at FROM accounts WHERE id = {}"
)
HISTORY: Final = (
    "SELECT id, source_account_id, destination_account_id, amount, currency, idempotency_key, "
    "description, created_at FROM transfers "
    "WHERE source_account_id = {} OR destination_account_id = {} ORDER BY id DESC LIMIT {}"
)
SLEEP: Final = "SELECT pg_sleep({})"
SELECT_ONE: Final = "SELECT 1"

# What the latency-bound workload waits on the server per request (pg_sleep).
SLOW_LOOKUP_SECONDS: Final = 0.005

# The dashboard shows this many transfers; it asks for one more to know if there are more,
# exactly as AccountService.history does.
HISTORY_PAGE: Final = 10


def render(template: str, style: ParamStyle) -> str:
    """`template` with its `{}` placeholders in the driver's parameter style."""
    count = template.count("{}")
    if style == "qmark":
        marks = ["?"] * count
    elif style == "format":
        marks = ["%s"] * count
    else:
        marks = [f"${n}" for n in range(1, count + 1)]
    return template.format(*marks)


class Statements:
    """The templates rendered for one parameter style."""

    def __init__(self, style: ParamStyle) -> None:
        self.debit = render(DEBIT, style)
        self.credit = render(CREDIT, style)
        self.record = render(RECORD, style)
        self.point = render(POINT, style)
        self.account = render(ACCOUNT, style)
        self.history = render(HISTORY, style)
        self.sleep = render(SLEEP, style)

    def legs(self, op: Op) -> list[tuple[str, tuple[int, ...]]]:
        """Debit and credit of `op`, in account-id order.

        Two transfers between the same pair in opposite directions then lock the rows in
        the same order, so PostgreSQL cannot deadlock them (SQLite locks the whole file).
        """
        debit = (self.debit, (op.amount, op.amount, op.account, op.amount))
        credit = (self.credit, (op.amount, op.amount, op.other))
        return [debit, credit] if op.account < op.other else [credit, debit]

    def record_params(self, op: Op) -> tuple[int, int, int]:
        """Parameters of the `transfers` row."""
        return (op.account, op.other, op.amount)

    @staticmethod
    def history_params(account: int) -> tuple[int, int, int]:
        """Parameters of the history page query."""
        return (account, account, HISTORY_PAGE + 1)


def history_checksum(ids: list[int]) -> int:
    """What a dashboard read returns: the ids of the newest page of transfers, summed."""
    return sum(ids[:HISTORY_PAGE])
