"""The HTTP API: FastAPI over the same services as the CLI (`api -> services`).

Build it with `create_app(ApiSettings(...))`; serve it with `ledgerctl serve`. Its request and
response bodies are `api.schemas`.
"""

from api.app import create_app
from api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
