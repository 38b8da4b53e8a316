"""The `transfer.completed` job: tell the receiving account's owner about the money."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from repositories import NotificationRepository, Receipt
from services import validation
from services.currencies import format_amount
from services.errors import InvalidInput, PermanentJobFailure
from services.job_handler import JobHandler
from services.outbox import TRANSFER_COMPLETED
from services.results import ClaimedJob


def describe_receipt(receipt: Receipt) -> str:
    """The notification text for the receiving side of a transfer."""
    money = format_amount(receipt.amount, receipt.currency)
    if receipt.source_account_id is None:
        return f"{money} deposited into account #{receipt.destination_account_id}"
    return (
        f"account #{receipt.destination_account_id} received {money} "
        f"from account #{receipt.source_account_id}"
    )


class TransferNotifier:
    """Handler of `transfer.completed`: one notification per transfer, however often it runs.

    A withdrawal has no receiving account, so it notifies no one. The unique index on
    `notifications.transfer_id` makes a repeated run a no-op, whatever ran it.
    """

    async def __call__(self, job: ClaimedJob, session: AsyncSession) -> None:
        """Write the notification for `job.payload["transfer_id"]` in the job's transaction."""
        try:
            transfer_id = validation.identifier(job.payload.get("transfer_id"), "transfer_id")
        except InvalidInput as exc:
            raise PermanentJobFailure(f"payload has no valid transfer_id: {exc}") from None
        repo = NotificationRepository(session)
        receipt = await repo.receipt(transfer_id)
        if receipt is None:
            raise PermanentJobFailure(f"transfer {transfer_id} does not exist")
        if receipt.recipient_id is None:
            return
        await repo.add_once(
            user_id=receipt.recipient_id,
            transfer_id=transfer_id,
            message=describe_receipt(receipt),
        )


def ledger_handlers() -> dict[str, JobHandler]:
    """The handlers for every job kind the ledger enqueues."""
    return {TRANSFER_COMPLETED: TransferNotifier()}
