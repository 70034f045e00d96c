"""The domain is pure: no module under scryon_dagster/domain imports I/O, Dagster or subprocess machinery."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[2] / "scryon_dagster" / "domain"
FORBIDDEN = frozenset(
    {"dagster", "httpx", "requests", "boto3", "botocore", "psycopg", "psycopg2", "sqlalchemy", "subprocess"}
)


def imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in {
            "__import__",
            "import_module",
        }:
            roots.update(
                arg.value.split(".")[0]
                for arg in node.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            )
    return roots


DOMAIN_FILES = sorted(DOMAIN.rglob("*.py"))


def test_the_domain_has_modules_to_check() -> None:
    assert any(path.parent.name == "transcript" for path in DOMAIN_FILES)


@pytest.mark.parametrize("path", DOMAIN_FILES, ids=lambda path: str(path.relative_to(DOMAIN)))
def test_domain_module_imports_nothing_impure(path: Path) -> None:
    assert imported_roots(path.read_text(encoding="utf-8")) & FORBIDDEN == set()


def test_the_scan_catches_every_import_form() -> None:
    source = "import httpx\nfrom dagster import asset\nimport importlib\nimportlib.import_module('boto3.session')\n"

    assert imported_roots(source) >= {"httpx", "dagster", "boto3"}
