"""The plugin's layers: skd_fairseq (what --user-dir loads) never imports the experiment tools."""

import ast
import subprocess
import sys

import pytest
from conftest import REPO


def imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_no_module_of_the_plugin_imports_the_experiment_tools():
    """Also imports inside functions (read from the source, not from a run that may skip them)."""
    offenders = [
        f"{path.relative_to(REPO)}: {name}"
        for path in sorted((REPO / "skd_fairseq").rglob("*.py"))
        for name in imported_modules(path)
        if name == "skd_experiments" or name.startswith("skd_experiments.")
    ]
    assert offenders == []


@pytest.mark.slow
def test_importing_every_plugin_module_loads_no_experiment_tool():
    modules = [
        ".".join(path.relative_to(REPO).with_suffix("").parts)
        for path in sorted((REPO / "skd_fairseq").rglob("*.py"))
        if path.name != "__init__.py"
    ]
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'skd_experiments'))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
