"""Imports point one way: cli, api -> services -> repositories -> models, with db beneath;
the lab (lab/) stands apart and uses the app only through its public names.

Read from the source with `ast` (nothing is imported), so an import inside a function
counts too, and a failure names the file, the line and the import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.support.paths import PROJECT_ROOT

# The project's packages under the rule, and the project packages each may import besides
# itself. Downward jumps are fine (cli may read a model); upward ones never are.
MAY_IMPORT: Final[dict[str, frozenset[str]]] = {
    "cli": frozenset({"api", "services", "repositories", "models", "db"}),
    "api": frozenset({"services", "repositories", "models", "db"}),
    "services": frozenset({"repositories", "models", "db"}),
    "repositories": frozenset({"models", "db"}),
    "models": frozenset({"db"}),
    "db": frozenset(),
}
# The repository's tools and tests: above every layer, so no layer may import them.
TOOLS: Final = frozenset({"lab", "tests"})
# Within services, the modules that run other code sit on top: the worker runs job
# handlers and the batcher runs transfers, so a handler or a use case must not import them.
RUNNERS: Final = frozenset({"services.worker", "services.batcher"})


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement's target, where it is, and whether it runs at import time."""

    module: str
    target: str
    line: int
    lazy: bool
    names: tuple[str, ...] = ()


def imports(module: str, source: str) -> Iterator[Import]:
    """Every module `source` (the text of `module`) imports, with absolute names."""
    tree = ast.parse(source)
    # The package a relative import starts from: the module's own for an __init__.
    package = module.split(".")[:-1]

    def visit(node: ast.AST, lazy: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(module, alias.name, child.lineno, lazy)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package[: len(package) - child.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                names = tuple(alias.name for alias in child.names)
                yield Import(module, base, child.lineno, lazy, names)
            else:
                inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                yield from visit(child, inner)

    yield from visit(tree, False)


def _runner(module: str) -> str | None:
    """The runner `module` belongs to (a runner's package holds its parts), if any."""
    return next((r for r in RUNNERS if module == r or module.startswith(f"{r}.")), None)


def violation(found: Import) -> str | None:
    """Why `found` breaks the layer order, or None if it does not."""
    importer = found.module.split(".")[0]
    target = found.target.split(".")[0]
    if importer == target:
        runner = _runner(found.target)
        if (
            importer == "services"
            and runner is not None
            and _runner(found.module) != runner
            and found.module != "services.__init__"
        ):
            return f"a service imports {found.target}, which runs services (RUNNERS)"
        return None
    if target not in MAY_IMPORT and target not in TOOLS:
        return None  # the standard library or a dependency
    if target not in MAY_IMPORT[importer]:
        return f"{importer} may not import {target}"
    return None


def modules_of(packages: Iterable[str]) -> Iterator[tuple[str, Path]]:
    """(dotted name, path) of every module of `packages`."""
    for package in packages:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            relative = path.relative_to(PROJECT_ROOT).with_suffix("")
            yield ".".join(relative.parts), path


def project_modules() -> Iterator[tuple[str, Path]]:
    """(dotted name, path) of every module of the layered packages."""
    return modules_of(MAY_IMPORT)


def test_no_module_imports_a_layer_above_it() -> None:
    problems = [
        f"{path.relative_to(PROJECT_ROOT)}:{found.line}: imports {found.target}: {reason}"
        for module, path in project_modules()
        for found in imports(module, path.read_text(encoding="utf-8"))
        if (reason := violation(found)) is not None
    ]
    assert problems == [], "\n".join(problems)


def test_the_check_names_an_upward_import() -> None:
    source = "from cli.commands import emit\n"
    (found,) = imports("services.accounts", source)
    assert violation(found) == "services may not import cli"
    assert (found.target, found.line) == ("cli.commands", 1)


def test_the_check_finds_an_import_inside_a_function() -> None:
    source = "def f() -> None:\n    from services import worker\n"
    (found,) = imports("repositories.accounts", source)
    assert (found.line, found.lazy) == (2, True)
    assert violation(found) == "repositories may not import services"


def test_the_check_refuses_a_handler_that_imports_the_worker() -> None:
    (found,) = imports("services.notifications", "from services.worker import Worker\n")
    assert violation(found) is not None


def test_the_check_refuses_a_handler_that_imports_a_part_of_the_worker() -> None:
    (found,) = imports("services.notifications", "from services.worker.settlement import X\n")
    assert violation(found) is not None
    (inside,) = imports("services.worker.scheduling", "from services.worker.settlement import X\n")
    assert violation(inside) is None


def test_the_check_resolves_relative_imports() -> None:
    sibling, upward = imports("services.accounts", "from .errors import X\nfrom ..cli import y\n")
    assert sibling.target == "services.errors"
    assert violation(upward) == "services may not import cli"


# The lab and the examples stand beside the app, like a service that uses it: they may import
# the app's public names only (what these modules' __all__ lists, or, without one, their
# names without a leading underscore) and the tests' support code, so that a change inside
# the app cannot break them and a service grown from this repository can delete them whole.
APART: Final = ("lab", "examples")
PUBLIC_SURFACES: Final = frozenset(
    {
        *("services", "services.errors", "services.transactions"),
        *("db", "db.migrations", "models", "api", "api.schemas"),
    }
)


def _top_level_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else []
    if isinstance(node, ast.AnnAssign):
        targets = [node.target]
    return [target.id for target in targets if isinstance(target, ast.Name)]


def public_names(module: str) -> frozenset[str]:
    """The names `module` (one of PUBLIC_SURFACES) offers, read from its source: its
    `__all__`, or without one every top-level name without a leading underscore."""
    package = PROJECT_ROOT.joinpath(*module.split("."))
    path = package / "__init__.py" if package.is_dir() else package.with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and "__all__" in _top_level_names(node):
            return frozenset(ast.literal_eval(node.value))
    names = (name for node in tree.body for name in _top_level_names(node))
    return frozenset(name for name in names if not name.startswith("_"))


def apart_violation(found: Import) -> str | None:
    """Why `found`, in the lab or the examples, reaches past the app's public names."""
    target = found.target.split(".")[0]
    if target not in MAY_IMPORT:
        return None  # itself, tests.support, the standard library or a dependency
    if found.target not in PUBLIC_SURFACES:
        return f"{found.target} is not a public surface ({', '.join(sorted(PUBLIC_SURFACES))})"
    submodules = {name for name in found.names if f"{found.target}.{name}" in PUBLIC_SURFACES}
    hidden = sorted(set(found.names) - public_names(found.target) - submodules)
    if hidden:
        return f"{found.target} does not export {', '.join(hidden)}"
    return None


def test_no_app_module_imports_the_lab_or_the_tests() -> None:
    problems = [
        f"{path.relative_to(PROJECT_ROOT)}:{found.line}: imports {found.target}"
        for module, path in project_modules()
        for found in imports(module, path.read_text(encoding="utf-8"))
        if found.target.split(".")[0] in TOOLS
    ]
    assert problems == [], "\n".join(problems)


def test_the_lab_and_the_examples_use_the_app_only_through_its_public_names() -> None:
    problems = [
        f"{path.relative_to(PROJECT_ROOT)}:{found.line}: imports {found.target}: {reason}"
        for module, path in modules_of(APART)
        for found in imports(module, path.read_text(encoding="utf-8"))
        if (reason := apart_violation(found)) is not None
    ]
    assert problems == [], "\n".join(problems)


def test_the_check_refuses_a_private_module_and_an_unexported_name() -> None:
    (inner,) = imports("lab.bench.x", "from services.transfer_core import Outcome\n")
    (unexported,) = imports("lab.bench.x", "from services import transfer_core\n")
    (public,) = imports("lab.bench.x", "from services import TransferService\n")
    assert apart_violation(inner) is not None
    assert apart_violation(unexported) == "services does not export transfer_core"
    assert apart_violation(public) is None
