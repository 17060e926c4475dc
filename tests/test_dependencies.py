"""Every module the pipeline and its scripts import is a declared dependency, pinned as locked:
nothing is used only because something else happens to bring it."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from pipelines.settings import PROJECT_DIR

OURS = {"pipelines", "__future__"}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[=<>\[ ;~!]", requirement)[0]).lower()


def _imported_modules(*folders: str) -> dict[str, set[str]]:
    """Top-level module -> files importing it (absolute imports, stdlib and our own left out)."""
    modules: dict[str, set[str]] = {}
    for folder in folders:
        for path in sorted((PROJECT_DIR / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OURS:
                        modules.setdefault(top, set()).add(str(path.relative_to(PROJECT_DIR)))
    return modules


def test_every_import_of_pipelines_and_scripts_is_declared_and_pinned_as_locked():
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())
    declared = {_name(r): r for r in project["project"]["dependencies"]}
    locked = {
        _name(p["name"]): p["version"]
        for p in tomllib.loads((PROJECT_DIR / "uv.lock").read_text())["package"]
    }
    distributions = packages_distributions()
    modules = _imported_modules("pipelines", "scripts")
    assert {"dagster", "duckdb", "tqdm", "pydantic", "urllib3"} <= set(modules)
    undeclared = {
        module: sorted(files)
        for module, files in modules.items()
        if not {_name(d) for d in distributions.get(module, [])} & set(declared)
    }
    assert undeclared == {}, "imported but not in [project] dependencies"
    for name, requirement in declared.items():
        if "==" in requirement:
            assert requirement.split("==")[1] == locked[name], (requirement, locked[name])


def test_every_import_of_the_tests_and_benchmarks_is_declared():
    """The tests and benchmarks may also use the dev group (pytest, moto, ...), nothing else."""
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())
    requirements = project["project"]["dependencies"] + project["dependency-groups"]["dev"]
    declared = {_name(r) for r in requirements}
    distributions = packages_distributions()
    modules = _imported_modules("tests", "bench")
    modules.pop("tests", None)  # the tests' own helpers
    assert {"pytest", "werkzeug", "boto3", "playwright"} <= set(modules)
    undeclared = {
        module: sorted(files)
        for module, files in modules.items()
        if not {_name(d) for d in distributions.get(module, [])} & declared
    }
    assert undeclared == {}, "imported but not in the dependencies or the dev group"
