"""The README's Python example runs as printed, and its claims about the library hold."""

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
