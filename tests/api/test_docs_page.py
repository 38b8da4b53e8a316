"""/docs in a real browser: headless Chromium (tests/support/browser.py) against a real
`ledgerctl serve` renders the OpenAPI 3.1 document, authorizes with a bearer token and runs
`GET /accounts/{account_id}` from the page, with every file from the server itself.

One SQLite database: the page and the document do not depend on the engine. The page's
screenshot is kept in the test's temp dir (a CI artifact), also when the test fails.
"""

from __future__ import annotations

import json
from pathlib import Path

from playwright.async_api import Page, Request, Route, expect

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from services import SYSTEM, AccessService, AccountService, Role
from tests.support.api_server import serving
from tests.support.browser import chromium
from tests.support.databases import sqlite_database

GET_ACCOUNT = "#operations-accounts-get_account_accounts__account_id__get"
BALANCE = 4217
# Playwright's assertions wait 5 s by default; a loaded machine may take longer to run a
# 1.5 MB script and render the document.
WAIT_MS = 30_000


async def _account_with_token(url: str) -> tuple[int, str]:
    """A user with a funded account, made as `ledgerctl` would: (account id, token)."""
    engine = create_engine(DatabaseSettings(url=url))
    try:
        await migrations.upgrade(engine)
        sessions = create_session_factory(engine)
        made = await AccessService(sessions, caller=SYSTEM).register(
            "ada@example.com", "Ada", role=Role.USER
        )
        account = await AccountService(sessions).open(made.user.id, "EUR")
        await AccountService(sessions).deposit(account.id, BALANCE)
        return account.id, made.token
    finally:
        await engine.dispose()


async def _authorize(page: Page, token: str) -> None:
    await page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".modal-ux")
    await dialog.get_by_label("auth-bearer-value").fill(token)
    await dialog.get_by_role("button", name="Apply credentials").click()
    # Authorized: the dialog now offers to remove the token instead.
    await expect(dialog.get_by_role("button", name="Remove authorization")).to_be_visible(
        timeout=WAIT_MS
    )
    await dialog.get_by_role("button", name="Close").click()


async def _get_account_from_the_page(page: Page, account_id: int) -> str:
    """Expand the operation, try it out for `account_id`; the response body shown."""
    operation = page.locator(GET_ACCOUNT)
    await operation.locator(".opblock-summary-control").click()
    await operation.get_by_role("button", name="Try it out").click()
    await operation.locator('tr[data-param-name="account_id"] input').fill(str(account_id))
    await operation.get_by_role("button", name="Execute").click()
    answer = operation.locator(".live-responses-table .response")
    await expect(answer.locator(".response-col_status")).to_have_text("200", timeout=WAIT_MS)
    return await answer.locator(".response-col_description pre").first.inner_text()


async def test_the_docs_page_runs_a_request_with_a_token(tmp_path: Path) -> None:
    url = sqlite_database(tmp_path)
    account_id, token = await _account_with_token(url)
    foreign: list[str] = []
    errors: list[str] = []
    async with chromium() as browser, serving(url) as server:
        page = await browser.new_page()

        async def only_the_server(route: Route, request: Request) -> None:
            if request.url.startswith(f"{server.url}/"):
                await route.continue_()
            else:
                foreign.append(request.url)
                await route.abort()

        await page.route("**/*", only_the_server)
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            await page.goto(f"{server.url}/docs")
            await expect(page.locator(GET_ACCOUNT)).to_be_visible(timeout=WAIT_MS)
            await _authorize(page, token)
            body = await _get_account_from_the_page(page, account_id)
        finally:
            await page.screenshot(path=tmp_path / "docs-page.png", full_page=True)

    shown = json.loads(body)
    assert (shown["id"], shown["balance"], shown["currency"]) == (account_id, BALANCE, "EUR")
    assert not foreign, f"the page fetched files from elsewhere: {foreign}"
    assert not errors, errors
