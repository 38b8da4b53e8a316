"""The HTTP API: FastAPI over the same services as the CLI (`api -> services`).

Build it with `api.app.create_app(settings)`; serve it with `ledgerctl serve`.
"""
