"""The HTTP API: FastAPI over the same services as the CLI (`api -> services`).

Build it with `create_app(ApiSettings(...))`; serve it with `ledgerctl serve`. Its request and
response bodies are `api.schemas`. `LedgerMiddleware` is the outermost layer of its requests
(request id, body limits, the 500 of last resort), for an app built beside it.
"""

from api.app import create_app
from api.middleware import LedgerMiddleware
from api.settings import ApiSettings

__all__ = ["ApiSettings", "LedgerMiddleware", "create_app"]
