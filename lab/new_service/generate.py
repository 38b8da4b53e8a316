"""Write a new service's project from this checkout by the rules of `lab.new_service.rules`."""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from lab.new_service import rules

ROOT = Path(__file__).resolve().parents[2]
_LAB = re.compile(r"\blab[./]")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)#\s]+)(#[^)\s]*)?\)")


class RuleFailed(Exception):
    """A rule no longer matches the repository (or the result still uses the lab)."""


def project_files(root: Path = ROOT) -> list[str]:
    """The checkout's files as git sees them: tracked or new, never ignored (no .venv, caches)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuleFailed(f"{root} must be a git checkout (git ls-files: {exc})") from exc
    return sorted(name for name in listed.split("\0") if name and (root / name).is_file())


def _matches(path: str, pattern: str) -> bool:
    if pattern.endswith("/"):
        return path.startswith(pattern)
    return fnmatch.fnmatchcase(path, pattern)


def select(files: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split `files` into kept and dropped; RuleFailed if a DROPPED pattern matches nothing."""
    files = list(files)
    for pattern in rules.DROPPED:
        if not any(_matches(path, pattern) for path in files):
            raise RuleFailed(f"DROPPED pattern {pattern!r} matches no file any more")
    patterns = (*rules.DROPPED, *rules.DROPPED_IF_PRESENT)
    dropped = [path for path in files if any(_matches(path, p) for p in patterns)]
    kept = [path for path in files if path not in dropped]
    return kept, dropped


def _edit(text: str, edit: rules.Edit) -> str:
    found = text.count(edit.old)
    if found != 1:
        raise RuleFailed(f"{edit.path}: expected {edit.old!r} once, found it {found} times")
    return text.replace(edit.old, edit.new)


def _one_index(lines: list[str], start: str, path: str) -> int:
    found = [index for index, line in enumerate(lines) if line.startswith(start)]
    if len(found) != 1:
        raise RuleFailed(f"{path}: expected one line starting {start!r}, found {len(found)}")
    return found[0]


def _drop_section(text: str, rule: rules.DropSection) -> str:
    lines = text.splitlines(keepends=True)
    first = _one_index(lines, rule.heading.rstrip() + "\n", rule.path)
    level = len(rule.heading) - len(rule.heading.lstrip("#"))
    last = first + 1
    fenced = False
    while last < len(lines):
        line = lines[last]
        fenced ^= line.startswith("```")
        hashes = len(line) - len(line.lstrip("#"))
        if not fenced and 0 < hashes <= level and line[hashes : hashes + 1] == " ":
            break
        last += 1
    return "".join(lines[:first] + lines[last:])


def _drop_paragraph(text: str, rule: rules.DropParagraph) -> str:
    paragraphs = text.split("\n\n")
    found = [i for i, paragraph in enumerate(paragraphs) if paragraph.startswith(rule.start)]
    if len(found) != 1:
        raise RuleFailed(f"{rule.path}: expected one paragraph starting {rule.start!r}")
    del paragraphs[found[0]]
    return "\n\n".join(paragraphs)


def _drop_lines(text: str, rule: rules.DropLines) -> str:
    lines = text.splitlines(keepends=True)
    first = _one_index(lines, rule.start, rule.path)
    last = first + 1
    if rule.end:
        while last < len(lines) and not lines[last].startswith(rule.end):
            last += 1
        if last == len(lines):
            raise RuleFailed(f"{rule.path}: no line starting {rule.end!r} after {rule.start!r}")
    return "".join(lines[:first] + lines[last:])


def _drop_makefile_paragraphs(text: str) -> str:
    paragraphs = text.split("\n\n")
    kept = [p for p in paragraphs if not any(m in p for m in rules.MAKEFILE_DROP_MARKERS)]
    if len(kept) == len(paragraphs):
        raise RuleFailed(f"{rules.MAKEFILE}: no paragraph runs the lab any more")
    return "\n\n".join(kept).rstrip("\n") + "\n"


def _unlink_dropped(text: str, path: str, dropped: set[str]) -> str:
    """Markdown links to a dropped file keep their text and lose the link."""
    folder = os.path.dirname(path)

    def replace(match: re.Match[str]) -> str:
        target = os.path.normpath(os.path.join(folder, match.group(2)))
        return match.group(1) if target in dropped else match[0]

    return _LINK.sub(replace, text)


def drop_plugins(source: str, dropped: set[str]) -> str:
    """`source` (a conftest) with the dropped modules taken out of its `pytest_plugins`."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "pytest_plugins"
            for target in node.targets
        ):
            plugins = ast.literal_eval(node.value)
            kept = [name for name in plugins if name.replace(".", "/") + ".py" not in dropped]
            lines = source.splitlines(keepends=True)
            rendered = "".join(f"{name!r}, " for name in kept).replace("'", '"')
            lines[node.lineno - 1 : node.end_lineno] = [f"pytest_plugins = ({rendered})\n"]
            return "".join(lines)
    return source


def imports_of(source: str) -> set[str]:
    """The absolute modules a Python source imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def generate(destination: Path, root: Path = ROOT) -> list[str]:
    """Write the new project into `destination` (which must not exist); return what was done."""
    if destination.exists():
        raise RuleFailed(f"{destination} already exists; pick a new folder")
    files = project_files(root)
    kept, dropped = select(files)
    texts: dict[str, bytes] = {path: (root / path).read_bytes() for path in kept}
    for source, target in rules.MOVED.items():
        if source not in files:
            raise RuleFailed(f"MOVED: {source} is gone")
        texts[target] = (root / source).read_bytes()

    decoded: dict[str, str] = {}
    for path, data in texts.items():
        try:
            decoded[path] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # a binary file, copied as it is
    for edit in rules.EDITS:
        decoded[edit.path] = _edit(decoded[edit.path], edit)
    for rule in rules.DOC_RULES:
        if isinstance(rule, rules.DropSection):
            decoded[rule.path] = _drop_section(decoded[rule.path], rule)
        elif isinstance(rule, rules.DropParagraph):
            decoded[rule.path] = _drop_paragraph(decoded[rule.path], rule)
        else:
            decoded[rule.path] = _drop_lines(decoded[rule.path], rule)
    decoded[rules.MAKEFILE] = _drop_makefile_paragraphs(decoded[rules.MAKEFILE])
    dropped_set = set(dropped)
    decoded[rules.CONFTEST] = drop_plugins(decoded[rules.CONFTEST], dropped_set)
    for path, text in decoded.items():
        for old, new in rules.RENAMED.items():
            text = text.replace(old, new)
        if path.endswith(".md"):
            text = _unlink_dropped(text, path, dropped_set)
        decoded[path] = text

    still = sorted(
        f"{path} imports {module}"
        for path, text in decoded.items()
        if path.endswith(".py")
        for module in imports_of(text)
        if module == "lab" or module.startswith("lab.")
    )
    if still:
        raise RuleFailed("the new project still imports the lab:\n" + "\n".join(still))

    destination.mkdir(parents=True)
    for path, data in texts.items():
        written = destination / path
        written.parent.mkdir(parents=True, exist_ok=True)
        written.write_bytes(decoded[path].encode("utf-8") if path in decoded else data)
        shutil.copymode(root / _source_of(path), written)
    rewritten = [
        path
        for path, text in decoded.items()
        if path.endswith(".py") and text != texts[path].decode("utf-8")
    ]
    sort_imports(destination, rewritten)
    mentions = sorted(
        path for path, text in decoded.items() if path.endswith(".md") and _LAB.search(text)
    )
    return [
        f"wrote {len(texts)} files to {destination}",
        f"left out {len(dropped)} files: " + ", ".join(_folders(dropped)),
        *(f"moved {source} to {target}" for source, target in rules.MOVED.items()),
        "pages that still mention the lab (mostly the commands behind their figures): "
        + ", ".join(mentions),
    ]


def sort_imports(project: Path, paths: Sequence[str]) -> None:
    """Sort the imports of the rewritten modules (a moved module sorts elsewhere) and format
    them as the project does."""
    if paths:
        ruff = [sys.executable, "-m", "ruff"]
        fix = [*ruff, "check", "--quiet", "--fix", "--select", "I001", *paths]
        subprocess.run(fix, cwd=project, check=True)
        subprocess.run([*ruff, "format", "--quiet", *paths], cwd=project, check=True)


def _source_of(path: str) -> str:
    moved_from = {target: source for source, target in rules.MOVED.items()}
    return moved_from.get(path, path)


def _folders(paths: Iterable[str]) -> list[str]:
    """The dropped paths summarised by the pattern that dropped them."""
    patterns = (*rules.DROPPED, *rules.DROPPED_IF_PRESENT)
    return [p for p in patterns if any(_matches(path, p) for path in paths)]
