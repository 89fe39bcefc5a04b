"""The `iai` command: help texts, `iai generate` outputs, and clean failures on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iai.core.tasks import build_family
from iai.core.tasks.bank import load_bank
from iai.params import load_params
from iai.utils import file_sha256

ROOT = Path(__file__).resolve().parents[1]


def iai(*args, cwd):
    return subprocess.run([sys.executable, "-m", "iai.cli", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture()
def small_params(tmp_path):
    raw = yaml.safe_load((ROOT / "params" / "default.yaml").read_text())
    raw["banks"] = {"n_tasks": 4, "n_train": 32, "n_valid": 8}
    raw["evaluate"]["sizes"] = [16, 32]
    raw["report"].pop("primary", None)  # its comparisons are at n = 128
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, raw


def test_help_explains_every_command(tmp_path):
    top = iai("--help", cwd=tmp_path)
    assert top.returncode == 0 and "generate" in top.stdout and "evaluate" in top.stdout
    gen = iai("generate", "--help", cwd=tmp_path)
    assert gen.returncode == 0 and "--params" in gen.stdout and "task banks" in gen.stdout


def test_generate_writes_banks_and_manifests(tmp_path, small_params):
    path, raw = small_params
    res = iai("generate", "--params", str(path), "--out", "data/banks", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for name in raw["families"]:
        bank = load_bank(tmp_path / "data/banks" / f"{name}.pt")
        assert bank["id"].x_train.shape[:2] == (4, 32)
        assert set(bank) == set(build_family(load_params(path).family(name))[1])  # every split of the params
        manifest = json.loads((tmp_path / "data/banks" / f"{name}.json").read_text())
        assert manifest["files"][f"{name}.pt"]["sha256"] == file_sha256(tmp_path / "data/banks" / f"{name}.pt")
        assert manifest["sizes"] == raw["banks"] and manifest["root_seed"] == raw["seed"]
        assert len({s["seed"] for s in manifest["splits"].values()}) == len(manifest["splits"])
    # same params, same bytes
    first = file_sha256(tmp_path / "data/banks/linreg.pt")
    assert iai("generate", "--params", str(path), "--family", "linreg", "--out", "again", cwd=tmp_path).returncode == 0
    assert file_sha256(tmp_path / "again/linreg.pt") == first


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["families"]["linreg"].update(noise_std=-0.5), "families.linreg.noise_std: expected a number >= 0"),
    (lambda r: r["families"]["logreg"].update(dim=0), "families.logreg.dim: expected an integer >= 1"),
    (lambda r: r["families"]["linreg"].update(kind="spline_regression"), "families.linreg.kind: expected one of"),
    (lambda r: r["families"]["linreg"].update(splits={"id": {}, "far": {"noise_std": -1}}), "noise_std"),
])
def test_bad_params_fail_cleanly_and_write_nothing(tmp_path, small_params, edit, message):
    path, raw = small_params
    edit(raw)
    path.write_text(yaml.safe_dump(raw))
    res = iai("generate", "--params", str(path), "--out", "data/banks", cwd=tmp_path)
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()


def test_missing_params_file_and_unknown_family(tmp_path, small_params):
    res = iai("generate", "--params", "nowhere.yaml", cwd=tmp_path)
    assert res.returncode == 2 and "--params: file not found: nowhere.yaml" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "data").exists()
    path, _ = small_params
    res = iai("generate", "--params", str(path), "--family", "linreg", "--family", "nope", cwd=tmp_path)
    assert res.returncode == 2 and "no family 'nope'" in res.stderr and not (tmp_path / "data").exists()


def test_evaluating_the_references_together_gives_each_ones_rows(tmp_path, small_params):
    """`--learner references` (the workflow's one job per family) evaluates every reference of the params
    that applies to the family, with the same per-task numbers as evaluating each alone."""
    import pandas as pd

    from iai.core.plan import family_references
    from iai.core.tasks import build_family

    path, _ = small_params
    assert iai("generate", "--params", str(path), "--family", "linreg", "--out", "banks", cwd=tmp_path).returncode == 0
    res = iai("evaluate", "--params", str(path), "--family", "linreg", "--learner", "references", "--banks", "banks",
              "--out", "refs.parquet", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    together = pd.read_parquet(tmp_path / "refs.parquet")
    params = load_params(path)
    names = family_references(params, build_family(params.family("linreg"))[0])
    assert {"bayes", "sgd", "map"} <= set(names) and "random_order" not in names  # causal order: not linreg's
    assert sorted(together.learner.unique()) == sorted(names)
    assert json.loads((tmp_path / "refs.json").read_text())["learner"] == "references"
    for name in ("bayes", "sgd"):
        assert iai("evaluate", "--params", str(path), "--family", "linreg", "--learner", name, "--banks", "banks",
                   "--out", f"{name}.parquet", cwd=tmp_path).returncode == 0
        alone = pd.read_parquet(tmp_path / f"{name}.parquet")
        pd.testing.assert_frame_equal(together[together.learner == name].reset_index(drop=True), alone)


def test_evaluating_a_familys_runs_together_gives_each_ones_rows(tmp_path):
    """`--learner runs` (the workflow's one job per family for its learned runs) evaluates every run of
    the family, every seed of each, with the same per-task numbers as evaluating each run alone."""
    import pandas as pd

    from iai.core.learners import build_learner, save_learner

    params = load_params(ROOT / "params" / "test.yaml")
    family, _ = build_family(params.family("linreg"))
    for run in params.runs:  # untrained learners: the evaluation is what is tested
        for seed in range(run.seeds):
            save_learner(tmp_path / "models" / "linreg" / run.name / f"seed{seed}.pt",
                         build_learner(run, family, seed=seed))
    common = ["--params", str(ROOT / "params" / "test.yaml"), "--family", "linreg", "--banks", "banks",
              "--models", "models"]
    assert iai("generate", *common[:4], "--out", "banks", cwd=tmp_path).returncode == 0
    res = iai("evaluate", *common, "--learner", "runs", "--out", "runs.parquet", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    together = pd.read_parquet(tmp_path / "runs.parquet")
    assert sorted(together.learner.unique()) == ["po", "po_once"]
    assert sorted(together.seed.unique()) == [0, 1]
    assert json.loads((tmp_path / "runs.json").read_text())["learner"] == "runs"
    for name in ("po", "po_once"):
        assert iai("evaluate", *common, "--learner", name, "--out", f"{name}.parquet", cwd=tmp_path).returncode == 0
        alone = pd.read_parquet(tmp_path / f"{name}.parquet")
        pd.testing.assert_frame_equal(together[together.learner == name].reset_index(drop=True), alone)
