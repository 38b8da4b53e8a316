"""`make new-service` writes a project without the lab that passes its own lint and tests.

The generated project runs on this virtualenv (linked in as its `.venv`, see
lab/new_service/check.py) on every engine under test; the rules that write it stop, naming
themselves, when the repository no longer matches them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from lab.new_service import rules
from lab.new_service.check import check, link_virtualenv
from lab.new_service.generate import RuleFailed, generate, imports_of, project_files, select


def test_a_new_service_has_no_lab_and_passes_its_lint_and_tests(tmp_path: Path) -> None:
    project = tmp_path / "payments"
    generate(project)
    files = {path.relative_to(project).as_posix() for path in project.rglob("*")}
    assert not [path for path in files if path.startswith(("lab/", "tests/lab/"))]
    extras = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert "lab" not in extras["optional-dependencies"]
    assert "lab" not in (project / "Makefile").read_text()
    link_virtualenv(project)
    log = check(project)  # raises CheckFailed, with the output, when lint or a test fails
    assert [line.split(":")[0] for line in log][:2] == ["import the app", "make lint"]


def test_every_rule_still_matches_the_repository() -> None:
    # What generate() checks first, without writing anything: a stale rule names itself.
    kept, dropped = select(project_files())
    assert dropped
    assert kept
    assert all(source in dropped for source in rules.MOVED)


def test_a_drop_pattern_that_matches_nothing_stops_the_generator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rules, "DROPPED", (*rules.DROPPED, "reports/"))
    with pytest.raises(RuleFailed, match="'reports/' matches no file"):
        select(project_files())


def test_an_edit_whose_text_is_gone_stops_the_generator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = rules.Edit("pyproject.toml", "[tool.hatch]\n", "")
    monkeypatch.setattr(rules, "EDITS", (*rules.EDITS, stale))
    with pytest.raises(RuleFailed, match=r"pyproject.toml: expected '\[tool.hatch\]\\n' once"):
        generate(tmp_path / "payments")
    assert not (tmp_path / "payments").exists()


def test_a_kept_module_that_imports_the_lab_stops_the_generator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the move, the PgBouncer backend's test support still imports lab.servers.
    monkeypatch.setattr(rules, "MOVED", {})
    monkeypatch.setattr(rules, "RENAMED", {})
    with pytest.raises(RuleFailed, match=r"tests/support/pgbouncer\.py imports lab\.servers"):
        generate(tmp_path / "payments")
    assert not (tmp_path / "payments").exists()


def test_the_generator_never_writes_into_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(RuleFailed, match="already exists"):
        generate(tmp_path)


def test_imports_are_read_from_the_source() -> None:
    source = "import lab.bench\nfrom services import X\nfrom . import y\n"
    assert imports_of(source) == {"lab.bench", "services"}
