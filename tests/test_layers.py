"""The one-way direction of src/iai (README, "Layout"): import-linter's contracts in pyproject.toml.

The second test breaks the rule in a copy of the package and checks that the contract catches it,
so the first test cannot pass by checking nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def lint_imports(pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath is not None:  # shadows the installed package (an editable install comes later on sys.path)
        env["PYTHONPATH"] = str(pythonpath)
    cmd = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
           "sys.exit(lint_imports_command())", "--config", str(REPO / "pyproject.toml"), "--no-cache"]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_layers_are_kept():
    out = lint_imports()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize("module, bad_import, contract", [
    ("core/rollout.py", "import iai.stages.evaluate", "iai: cli -> analysis"),          # core reaching up to a stage
    ("core/tasks/base.py", "import iai.core.learners", "iai.core: results"),           # tasks reaching up to learners
    # one stage importing another
    ("stages/bench/__init__.py", "import iai.stages.evaluate", "iai.stages: every stage"),
    # figures reaching up to the report
    ("analysis/figures.py", "import iai.analysis.report", "iai.analysis: report"),
])
def test_a_broken_layer_is_caught(tmp_path, module, bad_import, contract):
    shutil.copytree(REPO / "src" / "iai", tmp_path / "iai")
    path = tmp_path / "iai" / module
    path.write_text(path.read_text() + f"\n{bad_import}  # noqa: the broken rule\n")
    out = lint_imports(tmp_path)
    assert out.returncode != 0, out.stdout
    assert "BROKEN" in out.stdout and contract in out.stdout, out.stdout


def test_readme_states_the_checked_layers():
    readme = (REPO / "README.md").read_text()
    for layer in ("iai.core", "iai.stages", "iai.analysis", "iai.params", "iai.utils"):
        assert layer in readme, f"README does not name the layer {layer}"
    assert "tests/test_layers.py" in readme


def test_ruff_finds_nothing():
    """Lint and import order (pyproject.toml [tool.ruff]: pycodestyle, pyflakes, isort; 120 columns)."""
    ruff = Path(sys.executable).parent / "ruff"
    out = subprocess.run([str(ruff), "check", "--no-cache", "src", "tests", "tools"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_core_contract_covers_every_core_module():
    """A module of iai.core that no layer names is checked by nothing: each one stands in a layer."""
    import tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    core = next(c for c in contracts if c.get("containers") == ["iai.core"])
    named = {part.strip() for layer in core["layers"] for part in layer.split("|")}
    here = REPO / "src" / "iai" / "core"
    modules = {p.stem for p in here.glob("*.py") if p.stem != "__init__"} | {p.parent.name for p in
                                                                              here.glob("*/__init__.py")}
    assert modules - named == set(), f"iai.core modules in no layer of the contract: {sorted(modules - named)}"
