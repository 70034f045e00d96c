"""The package's rooms and the doors between them (docs/architecture.md), read from the source.

Imports are collected from the syntax tree, so those under ``if TYPE_CHECKING:`` and inside functions
count: a circle of type-only imports is still a sign of a missing seam.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "scryon_dagster"
SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE [a-z_]+ SET|DELETE FROM)\b")
DAGSTER_FREE_ROOMS = ("pipeline", "adapters", "domain")
DOMAIN_THIRD_PARTY = frozenset({"pydantic"})
MAX_MODULE_LINES = 400
# A longer module says why in its docstring, e.g. "One module over 400 lines because ...".
OVER_LIMIT_REASON = re.compile(r"over 400 lines because", re.IGNORECASE)


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (migrations aside: alembic loads them by path)."""
    modules = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    return modules


def imports_of(module: str, path: Path) -> set[str]:
    return imported_names(module, path.read_text(encoding="utf-8"), is_package=path.name == "__init__.py")


def imported_names(module: str, source: str, *, is_package: bool = False) -> set[str]:
    """Every dotted name ``module`` imports, relative imports resolved, ``from a import b`` as ``a`` and ``a.b``."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    return {
        module: {name for name in imports_of(module, path) if name in modules and name != module}
        for module, path in modules.items()
    }


def find_circle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One import circle (its modules in order, the first repeated at the end), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (circle := visit(target)) is not None:
                return circle
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (circle := visit(module)) is not None:
            return circle
    return None


MODULES = module_files()


def test_the_scan_sees_the_package_and_every_import_form() -> None:
    assert {"scryon_dagster.pipeline.runner", "scryon_dagster.domain.policy"} <= set(MODULES)
    source = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .runner import CallPipeline\n"
        "def later():\n    import scryon_dagster.domain.calls\n"
    )
    names = imported_names("scryon_dagster.pipeline.probe", source)

    assert {"scryon_dagster.pipeline.runner.CallPipeline", "scryon_dagster.domain.calls"} <= names


def test_find_circle_reports_a_circle_and_only_a_circle() -> None:
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_package_imports_no_circle() -> None:
    circle = find_circle(import_graph(MODULES))

    assert circle is None, "import circle: " + " -> ".join(name.removeprefix(f"{PACKAGE}.") for name in circle or [])


@pytest.mark.parametrize("room", DAGSTER_FREE_ROOMS)
def test_pipeline_adapters_and_domain_never_import_dagster(room: str) -> None:
    offenders = {
        module
        for module, path in MODULES.items()
        if module.startswith(f"{PACKAGE}.{room}.")
        and any(name.split(".")[0] in {"dagster", "dagster_postgres"} for name in imports_of(module, path))
    }

    assert offenders == set()


def test_the_domain_imports_only_itself_the_standard_library_and_pydantic() -> None:
    outside: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        if not module.startswith(f"{PACKAGE}.domain"):
            continue
        for name in imports_of(module, path):
            root = name.split(".")[0]
            in_domain = name.startswith(f"{PACKAGE}.domain")
            if not (in_domain or root in sys.stdlib_module_names or root in DOMAIN_THIRD_PARTY or root == "__future__"):
                outside.setdefault(module, set()).add(name)

    assert outside == {}


def test_sql_lives_only_under_adapters_db() -> None:
    offenders = {
        module
        for module, path in MODULES.items()
        if not module.startswith(f"{PACKAGE}.adapters.db")
        and any(
            isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    }

    assert offenders == set()


def test_only_dagster_private_imports_the_private_dagster_api() -> None:
    users = {
        module
        for module, path in MODULES.items()
        if any(name.startswith("dagster._") for name in imports_of(module, path))
    }

    assert users == {f"{PACKAGE}.dagster_private"}


def test_every_module_over_400_lines_says_why_at_its_top() -> None:
    unexplained = set()
    for module, path in MODULES.items():
        source = path.read_text(encoding="utf-8")
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES and not OVER_LIMIT_REASON.search(ast.get_docstring(ast.parse(source)) or ""):
            unexplained.add(module)

    assert not unexplained, f"over {MAX_MODULE_LINES} lines without a reason at the top: {sorted(unexplained)}"
