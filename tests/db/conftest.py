"""Fixtures of the migration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from db import migrations
from tests.support.migration_scripts import add_data_revision, copy_scripts


@pytest.fixture(params=["as shipped", "with a later revision"])
def migration_scripts(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The migration scripts the test runs: the project's own, or a copy with one more
    revision after head, so that no test pins the head it was written against."""
    assert migrations.SCRIPT_LOCATION is not None
    if request.param == "as shipped":
        return migrations.SCRIPT_LOCATION
    scripts = copy_scripts(tmp_path)
    add_data_revision(scripts)
    monkeypatch.setattr(migrations, "SCRIPT_LOCATION", scripts)
    return scripts
