"""The README's Python examples run as printed, and its claims about the library hold."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_library_example_runs_and_bayes_beats_adam():
    block = next(b for b in python_blocks() if "rollout(" in b)
    res = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    mse = {}
    for line in res.stdout.splitlines():
        m = re.match(r"(\w+)\s+step\s+(\d+)\s+n=\s*(\d+)\s+mse=([\d.]+)", line)
        if m:
            mse.setdefault(m.group(1), []).append(float(m.group(4)))
    assert set(mse) >= {"bayes", "adam"}
    # the exact sequential update is optimal at every step, and both improve with data
    assert all(b <= a + 1e-9 for b, a in zip(mse["bayes"], mse["adam"]))
    assert mse["bayes"][-1] < mse["bayes"][0] and mse["adam"][-1] < mse["adam"][0]
    assert abs(mse["bayes"][-1] - 0.25) < 0.05  # the noise floor sigma^2 = 0.25


def test_the_trained_learner_example_runs_on_a_checkpoint_where_the_pipeline_writes_it(tmp_path):
    """The second example as printed, after the first (it reuses `family` and `tasks`), on a checkpoint
    of the default recipe's run linreg/parametric_grad saved where and as `iai train` saves it
    (weights untrained: what is checked is that the example runs, not how well)."""
    from iai.core.learners import build_learner, save_learner
    from iai.core.tasks import build_family
    from iai.params import load_params

    params = load_params(README.parent / "params/default.yaml")
    family, _ = build_family(params.family("linreg"))
    path = tmp_path / "data/models/linreg/parametric_grad/seed0.pt"
    path.parent.mkdir(parents=True)
    save_learner(path, build_learner(params.run("linreg", "parametric_grad"), family))
    first, second = python_blocks()[:2]
    assert "load_learner(" in second
    res = subprocess.run([sys.executable, "-c", first + second], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    steps = [int(m.group(1)) for m in re.finditer(r"^parametric_grad step\s+(\d+)\s+n=\s*\d+\s+mse=[\d.]+$",
                                                   res.stdout, flags=re.M)]
    assert steps == [8, 32], res.stdout
