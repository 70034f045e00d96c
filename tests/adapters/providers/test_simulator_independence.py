"""The simulator speaks the provider contracts from its own code: a contract drift between an adapter
and its provider can only show in a test when the two sides share nothing but the settings."""

import ast
from pathlib import Path

import scryon_dagster.simulator

SIMULATOR = Path(scryon_dagster.simulator.__file__).parent
ALLOWED_PREFIXES = ("scryon_dagster.simulator", "scryon_dagster.settings")


def product_imports(source: Path) -> list[str]:
    tree = ast.parse(source.read_text(), filename=str(source))
    modules = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    modules += [
        node.module if node.level == 0 else "." * node.level + (node.module or "")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    ]
    return [
        module
        for module in modules
        if module.startswith(".") or (module.startswith("scryon_dagster") and not module.startswith(ALLOWED_PREFIXES))
    ]


def test_the_simulator_imports_nothing_of_the_product_but_its_settings() -> None:
    offending = {path.name: found for path in sorted(SIMULATOR.glob("*.py")) if (found := product_imports(path))}
    assert offending == {}
