"""Machine and version facts recorded with every result."""

from __future__ import annotations

import os
import platform
import sqlite3
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("sqlalchemy", "aiosqlite", "asyncpg", "psycopg", "alembic", "greenlet")


def cpu_model() -> str:
    """The CPU's model name, where the OS tells it."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def describe(postgres_version: str | None) -> dict[str, Any]:
    """Machine, interpreter, library and database versions."""
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions["sqlite"] = sqlite3.sqlite_version
    versions["postgresql"] = postgres_version
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "machine": {
            # Other processes on the machine make every figure noisier; this says how busy
            # it was when the results were written.
            "load_average_1_5_15_min": None if load is None else list(load),
            "platform": platform.platform(),
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "versions": versions,
    }
