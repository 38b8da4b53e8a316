"""Where the project lives, for tests that run its commands as a user would."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
