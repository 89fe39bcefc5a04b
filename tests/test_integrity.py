"""Artifacts that cannot rot silently: a changed byte in a checkpoint, a bank or a per-task table is one
clear error on load, and `iai verify` names every such file before a stage runs; a stage fails before any compute
when its inputs are missing or its output folder cannot be
written; an OS error while writing is one line naming the path, and leaves the old file."""

import errno
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from iai.cli import main
from iai.core.learners import build_learner, load_learner, save_learner
from iai.core.tasks import make_family
from iai.core.tasks.bank import load_bank, save_bank
from iai.params import RunSpec, load_params
from iai.stages.evaluate import evaluate_learner
from iai.utils import ConfigError, check_writable, content_sha256, file_sha256, torch_load, torch_save

TEST_PARAMS = "params/test.yaml"
LINREG = make_family("linear_regression", dim=3)


def flip_inside_largest_tensor(path: Path, n_bytes: int) -> None:
    """Flip ``n_bytes`` in the middle of the largest tensor record of a torch zip file (same size)."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len  # stored uncompressed: the tensor's bytes
    middle = start + info.file_size // 2 - n_bytes // 2
    assert info.compress_type == zipfile.ZIP_STORED and n_bytes <= info.file_size
    raw[middle:middle + n_bytes] = bytes(b ^ 0xFF for b in raw[middle:middle + n_bytes])
    size = path.stat().st_size
    path.write_bytes(bytes(raw))
    assert path.stat().st_size == size


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_content_hash_sees_dtype_shape_and_every_byte():
    a = {"w": torch.arange(6.0).reshape(2, 3), "name": "x", "n": 3}
    assert content_sha256(a) == content_sha256({"n": 3, "name": "x", "w": torch.arange(6.0).reshape(2, 3)})
    assert content_sha256(a) != content_sha256({**a, "w": torch.arange(6.0).reshape(3, 2)})
    assert content_sha256(a) != content_sha256({**a, "w": torch.arange(6.0).reshape(2, 3).double()})
    b = torch.arange(6.0).reshape(2, 3)
    b[1, 2] = torch.nextafter(b[1, 2], torch.tensor(10.0))  # one ulp in one element
    assert content_sha256(a) != content_sha256({**a, "w": b})
    assert content_sha256(a) != content_sha256({**a, "n": 4})


def saved_checkpoint(path: Path):
    spec = RunSpec(family="linreg", name="r", learner={"regime": "parametric", "signal": "obs"},
                   model={"width": 64, "depth": 1, "heads": 2, "ff": 64}, train={})
    save_learner(path, build_learner(spec, LINREG, seed=0))
    return load_learner


def saved_bank(path: Path):
    save_bank(path, {"id": LINREG.sample(8, 256, 16, torch.Generator().manual_seed(0))})
    return load_bank


@pytest.mark.parametrize("save, n_bytes, remedy", [(saved_checkpoint, 4096, "iai train"),
                                                   (saved_bank, 64, "iai generate")])
def test_a_flipped_artifact_fails_to_load_naming_the_file(tmp_path, save, n_bytes, remedy):
    path = tmp_path / "artifact.pt"
    load = save(path)
    load(path)  # intact: loads
    flip_inside_largest_tensor(path, n_bytes)
    with pytest.raises(ConfigError) as err:
        load(path)
    text = one_line(err)
    assert str(path) in text and "corrupted: content hash" in text and remedy in text


def test_a_file_without_the_content_hash_is_refused(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"format": 1, "splits": {}}, path)
    with pytest.raises(ConfigError, match="not an iai file"):
        torch_load(path)


def test_a_full_disk_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "blob.pt"
    torch_save(path, {"a": torch.zeros(3)})
    good = path.read_bytes()

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(ConfigError) as err:
        torch_save(path, {"a": torch.ones(3)})
    assert one_line(err) == f"{path}: could not write it (No space left on device)"
    monkeypatch.undo()
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["blob.pt"]  # no temporary left


def test_an_output_folder_that_cannot_be_made_is_named(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=rf"^{blocker}/out: output folder cannot be written"):
        check_writable(blocker / "out")


@pytest.mark.parametrize("learner, incomplete", [("po", "po"), ("runs", "po_once")])
def test_evaluate_with_a_missing_seed_fails_before_anything_is_read(tmp_path, learner, incomplete):
    """One run, or every run of the family (`runs`): each seed's checkpoint is checked before any compute."""
    params = load_params(TEST_PARAMS)
    models = tmp_path / "models"
    family = make_family(params.family("linreg").kind, **params.family("linreg").options)
    for run in params.runs:
        assert run.seeds >= 2
        for seed in range(run.seeds if run.name != incomplete else 1):
            save_learner(models / "linreg" / run.name / f"seed{seed}.pt", build_learner(run, family, seed=seed))
    # no bank either: the missing checkpoint is reported first, before any bank is loaded
    with pytest.raises(ConfigError) as err:
        evaluate_learner(params, "linreg", learner, banks_dir=tmp_path / "no_banks", models_dir=models)
    text = one_line(err)
    assert f"run linreg/{incomplete} " in text and "missing checkpoint(s)" in text
    assert f"{incomplete}/seed1.pt" in text and "seed0.pt" not in text.split("missing")[1]


@pytest.mark.parametrize("command", [
    ["evaluate", "--params", TEST_PARAMS, "--family", "linreg", "--learner", "references", "--banks", "{tmp}/banks",
     "--out", "{tmp}/a_file/linreg/references.parquet"],
    ["train", "--params", TEST_PARAMS, "--family", "linreg", "--learner", "po", "--seed", "0", "--out",
     "{tmp}/a_file"],
])
def test_an_unwritable_output_fails_before_compute(tmp_path, capsys, command):
    (tmp_path / "a_file").write_text("x")
    code = main([c.format(tmp=tmp_path) for c in command])
    err = capsys.readouterr().err.strip()
    # the folder's error, not the absent bank's or checkpoint's: it is checked before any input is read
    assert code == 2 and "\n" not in err and "output folder cannot be written" in err, err


def test_an_unknown_split_key_stops_training_naming_the_key_path_and_file(tmp_path, capsys):
    raw = yaml.safe_load(Path(TEST_PARAMS).read_text())
    split = "ood_wide"
    raw["families"]["linreg"]["splits"] = {"id": {}, split: {"prior_sd": 2.0}}  # prior_std is the key
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    code = main(["train", "--params", str(path), "--family", "linreg", "--learner", "po", "--seed", "0",
                 "--out", str(tmp_path / "models")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert f"{path}: families.linreg.splits.{split}: linear_regression: unknown parameter(s) ['prior_sd']" in err
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").rglob("*.pt"))


def test_a_changed_value_in_a_per_task_table_fails_to_load_naming_the_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from iai.core import results

    path = tmp_path / "runs.parquet"
    tasks = pd.DataFrame([{"family": "linreg", "kind": "linear_regression", "dim": 3, "split": "id", "regime": "exact",
                           "learner": "bayes", "signal": "none", "state": "none", "history": 0, "nominal": False,
                           "gain": "none", "mode": "iterative", "context": "all", "batch_size": 16, "n_train": 16 * s,
                           "step": s, "n_seen": 16 * s, "metric": "mse", "seed": 0, "task": t, "value": 1.0 / (s + t)}
                          for s in (1, 2, 4) for t in range(32)])
    results.write_tasks(tasks, path)
    intact = results.read_tasks(path)
    assert len(intact) == len(tasks)
    # one value changed by one ulp, the file's metadata (and so its recorded hash) kept: a silent corruption
    table = pq.read_table(path)
    values = table.column("value").to_numpy().copy()
    values[len(values) // 2] = np.nextafter(values[len(values) // 2], np.inf)
    changed = table.set_column(table.schema.get_field_index("value"), "value", pa.array(values))
    pq.write_table(changed.replace_schema_metadata(table.schema.metadata), path)
    with pytest.raises(ConfigError) as err:
        results.read_tasks(path)
    text = one_line(err)
    assert str(path) in text and "corrupted: content hash" in text and "dvc checkout" in text
    # a table written by other means (no recorded hash) is refused rather than trusted
    pq.write_table(table.replace_schema_metadata({}), path)
    with pytest.raises(ConfigError, match="no iai.content_sha256"):
        results.read_tasks(path)
    # bytes overwritten in the middle of the file: an error either way, never a table
    results.write_tasks(tasks, path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3:len(raw) // 3 + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match=str(path)):
        results.read_tasks(path)


def test_verify_names_each_corrupted_artifact_and_passes_intact_ones(tmp_path, capsys):
    from iai.stages.verify import verify

    banks, models = tmp_path / "data/banks", tmp_path / "data/models/linreg/r"
    saved_bank(banks / "linreg.pt")
    (banks / "linreg.json").write_text('{"files": {"linreg.pt": {"sha256": "%s"}}}' % file_sha256(banks / "linreg.pt"))
    saved_checkpoint(models / "seed0.pt")
    saved_checkpoint(models / "seed1.pt")
    torch.save({"w": torch.zeros(2)}, models / "old.pt")  # no content hash: warned about, not an error
    paths = [tmp_path / "data/banks", tmp_path / "data/models", tmp_path / "data/results"]  # results: not made yet
    assert verify(paths) == ([], [f"{models / 'old.pt'}: not an iai file (no content_sha256: files written by iai "
                                  f"carry one)"])
    assert main(["verify", *map(str, paths[:2])]) == 0
    flip_inside_largest_tensor(models / "seed1.pt", 4096)
    bad, _ = verify(paths)
    assert len(bad) == 1 and bad[0].startswith(f"{models / 'seed1.pt'}: corrupted: content hash")
    assert f"dvc checkout --force {tmp_path / 'data/models'}" in bad[0] and f"delete {models / 'seed1.pt'}" in bad[0]
    capsys.readouterr()
    assert main(["verify", *map(str, paths)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"iai verify: error: 1 corrupted artifact(s) under {' '.join(map(str, paths))}; nothing was " \
                      "run or recorded"
    flip_inside_largest_tensor(banks / "linreg.pt", 64)
    assert [line.split(":")[0] for line in verify(paths)[0]] == [str(banks / "linreg.pt"), str(models / "seed1.pt")]
