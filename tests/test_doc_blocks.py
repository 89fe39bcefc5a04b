"""Every code block marked runnable in README.md and docs/**/*.md runs as printed, and what the README's
examples say about the library holds.

The marker is the fence's info string, ```` ```python runnable ```` or ```` ```bash runnable ````: GitHub
highlights a block by the info string's first word and shows nothing of the rest. Mark a block only when
it runs in seconds from what the scratch directory below holds.

A marked block runs after the earlier marked blocks of its page in the same language, in one process (a
page's examples build on each other, as the README's second example reuses the first's tasks). It runs
in a scratch directory holding what such a block may read, provided cheaply: a copy of the committed
reports (``reports/*.json``, ``reports/*.md``) and, for every checkpoint path ``data/models/F/L/seedS.pt``
it names, that run of params/default.yaml saved untrained where ``iai train`` saves it (what is checked
is that the example runs, not how well). docs/gpu holds logs of GPU runs, not instructions: not searched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(\w+) runnable\n(.*?)^```$", flags=re.M | re.S)
RUNNERS = {"python": [sys.executable, "-c"], "bash": ["bash", "-euo", "pipefail", "-c"]}
CHECKPOINT = re.compile(r"data/models/(\w+)/(\w+)/seed\d+\.pt")


@dataclass(frozen=True)
class Block:
    page: str      # relative to the repository
    line: int      # of the opening fence
    language: str
    code: str
    session: str   # what runs: the page's earlier marked blocks of this language, then this one


def marked_blocks(page: Path, root: Path = REPO) -> list[Block]:
    text = page.read_text()
    out, sessions = [], {}
    for m in FENCE.finditer(text):
        language, code = m.group(1), m.group(2)
        sessions[language] = sessions.get(language, "") + code
        out.append(Block(page.relative_to(root).as_posix(), text.count("\n", 0, m.start()) + 1, language, code,
                         sessions[language]))
    return out


def pages() -> list[Path]:
    docs = REPO / "docs"
    return [REPO / "README.md"] + sorted(p for p in docs.rglob("*.md") if p.relative_to(docs).parts[0] != "gpu")


BLOCKS = [block for page in pages() for block in marked_blocks(page)]


def scratch(folder: Path, code: str) -> Path:
    """``folder`` with the committed reports and an untrained checkpoint at each path ``code`` names."""
    (folder / "reports").mkdir()
    for path in [*(REPO / "reports").glob("*.json"), *(REPO / "reports").glob("*.md")]:
        shutil.copy(path, folder / "reports" / path.name)
    checkpoints = {m.group(0): m.groups() for m in CHECKPOINT.finditer(code)}
    if checkpoints:
        from iai.core.learners import build_learner, save_learner
        from iai.core.tasks import build_family
        from iai.params import load_params

        params = load_params(REPO / "params/default.yaml")
        for path, (family, run) in checkpoints.items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            save_learner(folder / path, build_learner(params.run(family, run), build_family(params.family(family))[0]))
    return folder


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Run a block (once per test process): its completed process."""
    done = {}
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "MPLBACKEND": "Agg"}

    def run(block: Block) -> subprocess.CompletedProcess:
        if block not in done:
            cwd = scratch(tmp_path_factory.mktemp("block"), block.session)
            done[block] = subprocess.run(RUNNERS[block.language] + [block.session], cwd=cwd, env=env,
                                         capture_output=True, text=True, timeout=300)
        return done[block]

    return run


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"{b.page}:{b.line}")
def test_a_marked_block_runs(block, ran):
    res = ran(block)
    assert res.returncode == 0, f"{block.page}:{block.line}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"


def test_the_collector_finds_the_readme_examples_and_the_results_page_command():
    readme = [b for b in BLOCKS if b.page == "README.md"]
    assert [b.language for b in readme] == ["python", "python"]
    assert "rollout(" in readme[0].code and "load_learner(" in readme[1].code
    assert readme[1].session == readme[0].code + readme[1].code
    assert [b.code for b in BLOCKS if b.page == "docs/results.md"] == [
        "iai report-doc --metrics reports/metrics.json --out docs/results.md\n"]


def test_a_failing_marked_block_fails_and_an_unmarked_one_is_not_collected(tmp_path, ran):
    page = tmp_path / "page.md"
    page.write_text("```python runnable\nimport sys\nsys.exit(3)\n```\n\n```python\nnot python at all\n```\n")
    blocks = marked_blocks(page, root=tmp_path)
    assert [(b.page, b.line) for b in blocks] == [("page.md", 1)]
    assert ran(blocks[0]).returncode == 3


def readme_block(needle: str) -> Block:
    return next(b for b in BLOCKS if b.page == "README.md" and needle in b.code)


def test_in_the_library_example_bayes_beats_adam_at_every_step(ran):
    res = ran(readme_block("make_family("))
    mse = {}
    for line in res.stdout.splitlines():
        m = re.match(r"(\w+)\s+step\s+(\d+)\s+n=\s*(\d+)\s+mse=([\d.]+)", line)
        if m:
            mse.setdefault(m.group(1), []).append(float(m.group(4)))
    assert set(mse) >= {"bayes", "adam"}, res.stdout
    # the exact sequential update is optimal at every step, and both improve with data
    assert all(b <= a + 1e-9 for b, a in zip(mse["bayes"], mse["adam"]))
    assert mse["bayes"][-1] < mse["bayes"][0] and mse["adam"][-1] < mse["adam"][0]
    assert abs(mse["bayes"][-1] - 0.25) < 0.05  # the noise floor sigma^2 = 0.25


def test_the_trained_learner_example_scores_the_steps_it_asks_for(ran):
    """On a checkpoint of the default recipe's run linreg/parametric_grad, saved as `iai train` saves it."""
    res = ran(readme_block("load_learner("))
    steps = [int(m.group(1)) for m in re.finditer(r"^parametric_grad step\s+(\d+)\s+n=\s*\d+\s+mse=[\d.]+$",
                                                   res.stdout, flags=re.M)]
    assert steps == [8, 32], res.stdout
