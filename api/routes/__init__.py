"""One module per resource; `ROUTERS` is what the app includes, in this order."""

from api.routes import accounts, back_office, dashboard, health, tokens, transfers, users

ROUTERS = (
    users.router,
    tokens.router,
    accounts.router,
    transfers.router,
    dashboard.router,
    back_office.router,
    health.router,
)

__all__ = ["ROUTERS"]
