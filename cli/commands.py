"""One coroutine per ledgerctl command. Each returns the process exit code."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import datetime
from typing import Any

from cli.context import AppContext
from cli.demo import run_demo
from cli.errors import CommandError
from cli.inputs import parse_amount, parse_id
from cli.progress import AuditProgress
from cli.worker import WorkerOptions, run_worker
from db import migrations
from services import (
    AccountService,
    Dashboard,
    DashboardService,
    JobQueue,
    LedgerAuditor,
    TransferRecord,
    TransferService,
    UserService,
)
from services.currencies import format_amount


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, TransferRecord):
            data["kind"] = value.kind
        return data
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def emit(args: argparse.Namespace, value: Any, text: str) -> None:
    """Print JSON with --json, else the human line."""
    if getattr(args, "json", False):
        print(json.dumps(_jsonable(value), indent=2, sort_keys=True))
    else:
        print(text)


def describe_transfer(t: TransferRecord) -> str:
    """A transfer on one line."""
    source = "(outside)" if t.source_account_id is None else f"#{t.source_account_id}"
    destination = (
        "(outside)" if t.destination_account_id is None else f"#{t.destination_account_id}"
    )
    key = f" key={t.idempotency_key}" if t.idempotency_key else ""
    note = f" {t.description!r}" if t.description else ""
    replay = " (replayed: this key's earlier transfer; nothing moved now)" if t.replayed else ""
    return (
        f"transfer {t.id} {t.kind} {source} -> {destination} "
        f"{format_amount(t.amount, t.currency)} "
        f"at {t.created_at:%Y-%m-%d %H:%M:%S}Z{key}{note}{replay}"
    )


async def no_subcommand(app: AppContext, args: argparse.Namespace) -> int:
    """Unreachable: argparse requires a subcommand (kept so every parser has a handler)."""
    raise CommandError("a subcommand is required (see --help)")


async def migrate(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl migrate."""
    before = await migrations.current_revision(app.engine)
    await migrations.upgrade(app.engine)
    after = await migrations.current_revision(app.engine)
    if before == after:
        print(f"{app.settings.display_url}: already at revision {after}")
    else:
        print(f"{app.settings.display_url}: migrated {before or 'empty'} -> {after}")
    return 0


async def demo(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl demo."""
    ok = await run_demo(
        app,
        transfers=args.transfers,
        concurrency=args.concurrency,
        users=args.users,
        seed=args.seed,
        batched=not args.unbatched,
    )
    return 0 if ok else 1


async def user_add(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl user add EMAIL NAME."""
    user = await UserService(app.sessions).register(args.email, args.name)
    emit(args, user, f"user {user.id} {user.email} ({user.name})")
    return 0


async def account_open(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl account open USER_ID CURRENCY."""
    account = await AccountService(app.sessions).open(
        parse_id(args.user_id, "user id"), args.currency
    )
    emit(args, account, f"account {account.id} of user {account.owner_id} in {account.currency}")
    return 0


async def move_money(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl deposit | withdraw | transfer: the parser names the ends each one has."""
    one_end = not ("source_id" in args and "destination_id" in args)
    source = _account_id(args, "source_id", one_end)
    destination = _account_id(args, "destination_id", one_end)
    amount = parse_amount(args.amount)
    options = {"idempotency_key": args.key, "description": args.description}
    if source is None:
        assert destination is not None
        record = await AccountService(app.sessions).deposit(destination, amount, **options)
    elif destination is None:
        record = await AccountService(app.sessions).withdraw(source, amount, **options)
    else:
        record = await TransferService(app.sessions).transfer(
            source, destination, amount, **options
        )
    emit(args, record, describe_transfer(record))
    return 0


def _account_id(args: argparse.Namespace, name: str, one_end: bool) -> int | None:
    if name not in args:
        return None
    # Named as the user sees it: ACCOUNT_ID for deposit and withdraw, SOURCE_ID and so on.
    return parse_id(getattr(args, name), "account id" if one_end else name.replace("_", " "))


async def balance(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl balance ACCOUNT_ID."""
    account = await AccountService(app.sessions).get(parse_id(args.account_id, "account id"))
    emit(args, account, f"account {account.id}: {format_amount(account.balance, account.currency)}")
    return 0


async def history(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl history ACCOUNT_ID."""
    before = None if args.before is None else parse_id(args.before, "--before")
    page = await AccountService(app.sessions).history(
        parse_id(args.account_id, "account id"),
        limit=parse_id(args.limit, "--limit"),
        before=before,
    )
    lines = [describe_transfer(t) for t in page.items] or ["no transfers"]
    if page.next_before is not None:
        lines.append(f"(more: --before {page.next_before})")
    emit(args, page, "\n".join(lines))
    return 0


async def export(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl export ACCOUNT_ID: the whole history, oldest first, one JSON object per
    line, streamed (memory stays flat however long it is)."""
    account_id = parse_id(args.account_id, "account id")
    async with AccountService(app.sessions).history_stream(account_id) as transfers:
        async for transfer in transfers:
            print(json.dumps(_jsonable(transfer), sort_keys=True))
    return 0


async def audit(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl audit: exit 0 when the ledger is consistent, 1 otherwise; on a large
    ledger, a line of progress on stderr."""
    progress = AuditProgress(sys.stderr)
    report = await LedgerAuditor(app.sessions).verify(progress=progress)
    progress.finish()
    verdict = "ok" if report.ok else f"FAILED ({len(report.problems)} problems)"
    text = "\n".join(
        [
            f"audit {verdict}: {report.accounts_checked} accounts, "
            f"{report.transfers_checked} transfers; in minor units of all "
            f"currencies together: deposits {report.deposits}, "
            f"withdrawals {report.withdrawals}, balances {report.balances_total}",
            *(f"  - {problem}" for problem in report.problems),
        ]
    )
    emit(args, {**_jsonable(report), "ok": report.ok}, text)
    return 0 if report.ok else 1


async def worker(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl worker: run jobs until SIGINT/SIGTERM, with a live line of progress."""
    options = WorkerOptions(
        concurrency=args.concurrency,
        poll_interval=args.poll_interval,
        lease_seconds=args.lease_seconds,
        shutdown_timeout=args.shutdown_timeout,
        job_timeout=args.job_timeout,
        drain=args.drain,
        progress_interval=args.progress_interval,
    )
    await run_worker(app, options)
    return 0


async def jobs(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl jobs: the queue by status, and the latest dead jobs with their errors."""
    queue = JobQueue(app.sessions)
    stats = await queue.stats()
    dead = await queue.dead(limit=parse_id(args.dead, "--dead")) if args.dead != "0" else []
    lines = [
        f"jobs: {stats.queued} queued ({stats.due} due), {stats.running} running "
        f"({stats.expired_leases} with expired leases), {stats.done} done, {stats.dead} dead"
    ]
    lines += [
        f"  dead job {j.id} {j.kind} after {j.attempts} attempts: {j.last_error}" for j in dead
    ]
    emit(
        args,
        {**_jsonable(stats), "total": stats.total, "dead_jobs": _jsonable(dead)},
        "\n".join(lines),
    )
    return 0


def describe_dashboard(page: Dashboard) -> str:
    """A user's dashboard as text."""
    lines = [f"{page.user.name} <{page.user.email}> (user {page.user.id})", "accounts:"]
    lines += [f"  #{a.id} {format_amount(a.balance, a.currency)}" for a in page.accounts] or [
        "  none"
    ]
    lines.append("totals:")
    lines += [
        f"  {s.currency}: {s.accounts} account{'' if s.accounts == 1 else 's'} hold "
        f"{format_amount(s.balance, s.currency)}; "
        f"received {format_amount(s.received, s.currency)}, "
        f"sent {format_amount(s.sent, s.currency)} in {s.movements} movements"
        for s in page.summary
    ] or ["  none"]
    lines.append("recent transfers:")
    lines += [f"  {describe_transfer(t)}" for t in page.recent_transfers] or ["  none"]
    if page.counterparties:
        lines.append(
            "other side: "
            + ", ".join(
                f"#{c.account_id} {c.owner_name} (user {c.owner_id})" for c in page.counterparties
            )
        )
    lines.append("notifications:")
    lines += [f"  {n.created_at:%Y-%m-%d %H:%M:%S}Z {n.message}" for n in page.notifications] or [
        "  none"
    ]
    return "\n".join(lines)


async def dashboard(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl dashboard USER_ID."""
    page = await DashboardService(app.sessions).for_user(
        parse_id(args.user_id, "user id"), recent=parse_id(args.recent, "--recent")
    )
    emit(args, page, describe_dashboard(page))
    return 0
