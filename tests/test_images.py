"""Image classification task families: IDX and npz sources, held-out classes, per-task labels,
shifts, and the references (MAP, kNN, SGD, Adam) on the bundled digits. Nothing downloads."""

import gzip
import json
import time

import numpy as np
import pytest
import torch

from iai.core.learners.references import reference_learner
from iai.core.rollout import rollout
from iai.core.tasks import ImageClassificationTasks, family_splits, make_family
from iai.core.tasks.bank import load_bank, save_bank
from iai.core.tasks.idx import read_idx, write_idx
from iai.params import ReferencesConfig
from iai.utils import ConfigError, generator

IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fake_idx_folder(folder, seed=0, side=12, per_class=30, gz=True):
    """A tiny MNIST-like folder: 10 classes, each a fixed random template plus noise."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, (10, side, side))
    folder.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", per_class), ("t10k", per_class // 3)):
        y = np.repeat(np.arange(10), n).astype(np.uint8)
        x = np.clip(templates[y] + rng.normal(0, 40, (len(y), side, side)), 0, 255).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{part}-images-idx3-ubyte{suffix}", x)
        write_idx(folder / f"{part}-labels-idx1-ubyte{suffix}", y)
    return folder


def dataset_classes(fam, n_tasks, n_train, n_valid, seed=0):
    """The dataset class of every drawn point ``[T, n_valid + n_train]`` and its task label."""
    index, labels = fam.draw(n_tasks, n_train, n_valid, generator(seed))
    return fam.pool().y[index], labels, index


# ---------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, name, dtype):
    x = (np.arange(2 * 3 * 4).reshape(2, 3, 4) * 7 % 251).astype(dtype)
    path = write_idx(tmp_path / name, x)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    y = read_idx(path)
    assert y.dtype == np.dtype(dtype) and y.shape == x.shape
    np.testing.assert_array_equal(y, x)


def test_idx_header_is_the_standard_one(tmp_path):
    path = write_idx(tmp_path / "labels", np.array([3, 1, 4], np.uint8))
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 3, 1, 4])


@pytest.mark.parametrize("content, message", [
    (b"", "bad header (empty file)"),
    (b"\x89PNG\r\n\x1a\n", "bad header"),
    (bytes([0, 0, 8, 2, 0, 0, 0, 2]), "truncated header"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]), "2 data bytes for shape (5,)"),
    (b"\x1f\x8b\x08garbage", "cannot read it"),
    (gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1]), mtime=0), "1 data bytes for shape (5,)"),
])
def test_malformed_idx_names_the_path(tmp_path, content, message):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="IDX") as err:
        read_idx(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_folder_and_files_name_the_path(tmp_path):
    with pytest.raises(ConfigError, match="folder .*nowhere not found.*train-images-idx3-ubyte.*iai data mnist"):
        make_family("image_classification", source="mnist", path=str(tmp_path / "nowhere"))
    folder = fake_idx_folder(tmp_path / "mnist")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ConfigError, match=r"mnist lacks t10k-labels-idx1-ubyte\[.gz\]"):
        make_family("image_classification", source="mnist", path=str(folder))
    with pytest.raises(ConfigError, match="path: expected a folder with the mnist IDX files"):
        make_family("image_classification", source="mnist")


def test_malformed_file_in_the_folder_is_named(tmp_path):
    folder = fake_idx_folder(tmp_path / "mnist", gz=False)
    (folder / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00")
    with pytest.raises(ConfigError) as err:
        make_family("image_classification", source="mnist", path=str(folder))
    assert str(folder / "train-images-idx3-ubyte") in str(err.value)


def test_mnist_like_folder_and_a_dataset_shift_to_another(tmp_path):
    mnist = fake_idx_folder(tmp_path / "mnist", seed=0, gz=True)
    fashion = fake_idx_folder(tmp_path / "fashion", seed=1, gz=False)
    fam = make_family("image_classification", source="mnist", path=str(mnist), n_classes=4, downscale=2)
    assert fam.dim == 36  # 12x12 pooled by 2, no projection
    splits = family_splits(fam, {"id": {}, "ood_shift": {"source": "fashion_mnist", "path": str(fashion)}})
    assert splits["ood_shift"].predictor == fam.predictor  # a learner trained on one runs on the other
    b_id, b_ood = (f.sample(3, 20, 10, seed=0) for f in splits.values())
    assert b_id.x_train.shape == b_ood.x_train.shape == (3, 20, 36)
    assert not torch.allclose(b_id.x_train, b_ood.x_train)
    assert len(fam.pool().x) == 400  # train and t10k files together
    with pytest.raises(ConfigError, match="downscale: expected a divisor of the mnist image size 12x12"):
        fam.variant(downscale=5)


# ---------------------------------------------------------------------------- tasks


def test_held_out_classes_never_appear_in_id_tasks():
    fam = make_family("image_classification", n_classes=5, dim=16, held_out_classes=[7, 8, 9])
    splits = family_splits(fam)
    assert set(splits) == {"id", "ood_classes", "ood_shift"}
    held = torch.tensor([7, 8, 9])
    for name in ("id", "ood_shift"):
        cls, _, _ = dataset_classes(splits[name], 200, 64, 16)
        assert not torch.isin(cls, held).any(), name
    cls, labels, _ = dataset_classes(splits["ood_classes"], 200, 64, 16)
    for t in range(200):  # every ood task holds all three held-out classes and two seen ones
        task = set(cls[t].tolist())
        assert {7, 8, 9} <= task and len(task - {7, 8, 9}) <= 2
    with pytest.raises(ConfigError, match="n_classes: expected at most the 7 seen classes"):
        fam.variant(n_classes=8)
    with pytest.raises(ConfigError, match="held_out_classes: expected classes of the digits data"):
        fam.variant(held_out_classes=[10])


def test_labels_are_permuted_per_task_and_seeded():
    fam = make_family("image_classification", n_classes=3, held_out_classes=[3, 4, 5, 6, 7, 8, 9])
    cls, labels, _ = dataset_classes(fam, 100, 40, 20)
    mappings = set()
    for t in range(100):  # within a task, a label is one class and a class one label
        pairs = set(zip(labels[t].tolist(), cls[t].tolist()))
        assert len(pairs) == len({lab for lab, _ in pairs}) == len({c for _, c in pairs})
        mappings.add(tuple(sorted(pairs)))
    assert len(mappings) == 6  # the same three classes, all 3! label orders
    a, b, c = (fam.sample(8, 32, 16, seed=s) for s in (1, 1, 2))
    for name, value in a.state_dict().items():
        torch.testing.assert_close(value, getattr(b, name))
    assert not torch.equal(a.x_train, c.x_train) and not torch.equal(a.y_train, c.y_train)
    assert not torch.equal(a.x_train[0], a.x_train[1])  # tasks differ within a batch


def test_train_and_valid_points_are_disjoint_when_the_pool_allows():
    fam = make_family("image_classification", n_classes=5)
    _, _, index = dataset_classes(fam, 16, 200, 50)
    for t in range(16):
        valid, train = index[t, :50].tolist(), index[t, 50:].tolist()
        assert len(set(valid)) == 50 and len(set(train)) == 200 and not set(valid) & set(train)
    _, _, index = dataset_classes(fam, 16, 1500, 100)  # more than the ~900 images of 5 classes
    for t in range(16):
        valid, train = index[t, :100].tolist(), index[t, 100:].tolist()
        assert len(set(valid)) == 100 and not set(valid) & set(train)


def test_batch_semantics_bank_and_checkpoint_round_trip(tmp_path):
    fam = make_family("image_classification", n_classes=4, dim=10, held_out_classes=[0])
    b = fam.sample(5, 12, 6, seed=0)
    assert b.x_train.shape == (5, 12, 10) and b.y_train.shape == (5, 12, 4) and b.x_valid.shape == (5, 6, 10)
    assert torch.equal(b.f_valid, b.y_valid) and b.y_train.sum(-1).eq(1).all()  # no teacher: truth = labels
    assert b.theta.shape == (5, 0, fam.predictor.token_dim)
    assert set(fam.metrics(torch.zeros(5, 6, 4), b.y_valid, b.f_valid)) == {"error_rate", "nll"}
    save_bank(tmp_path / "bank.pt", {"id": b})
    torch.testing.assert_close(load_bank(tmp_path / "bank.pt")["id"].x_valid, b.x_valid)
    params = json.loads(json.dumps(fam.params()))  # as a learner checkpoint stores it
    assert make_family(params.pop("kind"), **params) == fam
    x = b.x_train.reshape(-1, 10)
    assert abs(x.mean()) < 0.2 and 0.5 < x.std() < 1.5  # standardized, then projected


def test_rotation_and_noise_shift_the_inputs():
    fam = make_family("image_classification", n_classes=5)
    clean, rotated, noised = fam.pool().x, fam.variant(rotate=45.0).pool().x, fam.variant(input_noise=1.0).pool().x
    assert clean.shape == rotated.shape == noised.shape == (1797, 64)
    assert (rotated - clean).pow(2).mean() > 0.3
    torch.testing.assert_close((noised - clean).std(), torch.tensor(1.0), atol=0.05, rtol=0)
    with pytest.raises(ConfigError, match="rotate: expected degrees"):
        fam.variant(rotate=1000.0)


def test_sampling_is_fast():
    fam = make_family("image_classification", n_classes=5, dim=16)
    fam.sample(2, 8, 8, seed=0)  # builds the pool
    start = time.perf_counter()
    b = fam.sample(128, 1024, 64, seed=1)
    assert time.perf_counter() - start < 2.0  # about 0.1 s measured on one CPU thread
    assert b.x_train.shape == (128, 1024, 16)


# ---------------------------------------------------------------------------- embeddings


def test_embeddings_npz(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, (6, 20))
    y = np.repeat(np.arange(6) * 10, 40)  # any integer labels
    x = (centers[y // 10] + rng.normal(0, 1, (240, 20))).astype(np.float32)
    path = tmp_path / "emb.npz"
    np.savez(path, x=x, y=y)
    fam = make_family("image_classification", source="embeddings", path=str(path), n_classes=3,
                      held_out_classes=[40, 50])
    assert fam.dim == 20 and set(family_splits(fam)) == {"id", "ood_classes", "ood_shift"}
    assert family_splits(fam)["ood_shift"].input_noise == 1.0
    tasks = fam.sample(16, 64, 32, seed=0)
    knn = reference_learner("knn", fam, "emb", ReferencesConfig.from_dict({"learners": ["knn"], "knn": {"k": 5}}))
    rec = rollout(knn, fam, tasks, batch_size=64, steps="last")
    assert {r["metric"]: r["value"] for r in rec}["error_rate"] < 0.1  # well separated clusters
    cls, _, _ = dataset_classes(fam, 50, 10, 10)
    assert not torch.isin(cls, torch.tensor([40, 50])).any()
    with pytest.raises(ConfigError, match="downscale: expected 1 for source 'embeddings'"):
        fam.variant(downscale=2)


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((4, 3)), "labels": np.zeros(4, int)}, "holds arrays \\['labels', 'x'\\]"),
    ({"x": np.zeros(4), "y": np.zeros(4, int)}, "x has shape \\(4,\\)"),
    ({"x": np.zeros((4, 3)), "y": np.zeros(4)}, "y has shape \\(4,\\) \\(float64\\)"),
    ({"x": np.zeros((4, 3)), "y": np.zeros(5, int)}, "y has shape \\(5,\\)"),
    ({"x": np.full((4, 3), np.nan), "y": np.zeros(4, int)}, "non-finite"),
])
def test_malformed_npz_names_the_path(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ConfigError, match=message) as err:
        make_family("image_classification", source="embeddings", path=str(path))
    assert str(path) in str(err.value) and "expected an .npz file with arrays x" in str(err.value)
    path.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="cannot read it"):
        ImageClassificationTasks(source="embeddings", path=str(path))
    with pytest.raises(ConfigError, match="file .*missing.npz not found"):
        ImageClassificationTasks(source="embeddings", path=str(tmp_path / "missing.npz"))


# ---------------------------------------------------------------------------- references


def test_references_on_digits_are_far_below_chance():
    """5-way digits (chance 0.8), dim 16, 32 tasks, n = 128 train points. Measured error rates:
    id MAP 0.12, kNN 0.12, SGD 0.17, Adam 0.18; ood_classes MAP 0.19, kNN 0.21, SGD 0.25, Adam 0.26."""
    fam = make_family("image_classification", n_classes=5, dim=16, held_out_classes=[7, 8, 9])
    splits = family_splits(fam)
    refs = ReferencesConfig.from_dict({"learners": ["map", "knn", "sgd", "adam"], "sgd": {"lr": {"digits": 1.0}},
                                       "adam": {"lr": {"digits": 0.1}}, "knn": {"k": 8}})
    errors = {}
    for split in ("id", "ood_classes"):
        f = splits[split]
        tasks = f.sample(32, 128, 64, seed=3)
        for name in ("map", "knn", "sgd", "adam"):
            learner = reference_learner(name, f, "digits", refs)
            batch = 128 if name in ("map", "knn") else 16
            rec = rollout(learner, f, tasks, batch_size=batch, steps="last")
            errors[split, name] = {r["metric"]: r["value"] for r in rec}["error_rate"]
    assert all(e < 0.35 for e in errors.values()), errors
    assert errors["id", "map"] < 0.2 and errors["id", "knn"] < 0.2, errors


# ---------------------------------------------------------------------------- meta-training / evaluation partition


def part_rows(fam):
    """The pool rows of each class in the family's part: {class: set of rows}."""
    pool = fam.pool()
    return {int(c): set(pool.table[i, :int(pool.counts[i])].tolist()) for i, c in enumerate(pool.classes)}


def test_the_partition_covers_every_class_and_is_fixed():
    from iai.core.tasks.images import held_out_mask, load_source

    fam = make_family("image_classification", n_classes=5, dim=16, held_out_classes=[7, 8, 9])
    assert fam.eval_fraction == 0.3 and fam.image_part == "train"
    _, labels = load_source("digits", "")
    train, held = part_rows(fam), part_rows(fam.bank_variant())
    for c in range(10):  # each class: the two parts are disjoint, non-empty and together the whole class
        members = set(np.flatnonzero(labels == c).tolist())
        assert train[c] and held[c] and not train[c] & held[c] and train[c] | held[c] == members, c
        assert len(held[c]) == int(np.floor(0.3 * len(members) + 0.5)), c
    mask = held_out_mask(labels, 0.3)
    assert set(np.flatnonzero(mask).tolist()) == set().union(*held.values())
    # a function of the labels and the fraction alone: not of the global RNGs, the split or the projection
    torch.manual_seed(123)
    np.random.seed(123)
    np.testing.assert_array_equal(held_out_mask(labels, 0.3), mask)
    assert held_out_mask(labels, 0.2)[~mask].sum() == 0 and held_out_mask(labels, 0.2).sum() < mask.sum()  # nested
    for other in (*family_splits(fam).values(), fam.variant(dim=8, projection_seed=5), fam.variant(input_noise=0.5)):
        assert part_rows(other) == train and part_rows(other.bank_variant()) == held
    # every bank seed stream draws the same held-out images: many tasks cover exactly the held-out part
    bank = fam.bank_variant()
    drawn = set()
    for seed in range(4):
        index, _ = bank.draw(100, 64, 16, generator(seed))
        drawn |= set(index.flatten().tolist())
    assert drawn == set().union(*(held[c] for c in range(7)))  # the seen classes' held-out images, all of them
    # eval_fraction 0: no partition (both parts are the whole pool)
    whole = fam.variant(eval_fraction=0.0)
    assert part_rows(whole) == part_rows(whole.bank_variant()) == {c: train[c] | held[c] for c in range(10)}


def test_an_empty_part_is_a_clear_error(tmp_path):
    fam = make_family("image_classification", n_classes=5)
    for bad in (0.001, 0.999):  # 0.001 * 178 images of class 0 rounds to none held out; 0.999 to all
        with pytest.raises(ConfigError, match=r"eval_fraction: expected a fraction that leaves every class images "
                                              r"in both .* class 0 of digits has 178 images"):
            fam.variant(eval_fraction=bad)
    for bad in (1.0, -0.1, True):
        with pytest.raises(ConfigError, match=r"eval_fraction: expected a fraction in \[0, 1\)"):
            fam.variant(eval_fraction=bad)
    with pytest.raises(ConfigError, match="image_part: expected one of"):
        fam.variant(image_part="test")
    path = tmp_path / "emb.npz"  # 3 images of class 5: 0.1 holds none of them out
    np.savez(path, x=np.random.default_rng(0).normal(size=(33, 4)).astype(np.float32),
             y=np.r_[np.zeros(30, int), [5] * 3])
    with pytest.raises(ConfigError, match="class 5 of embeddings has 3 images, of which it would hold out 0"):
        make_family("image_classification", source="embeddings", path=str(path), n_classes=2, eval_fraction=0.1)
    assert make_family("image_classification", source="embeddings", path=str(path), n_classes=2,
                       eval_fraction=0.5).bank_variant().pool().counts.tolist() == [15, 2]


def test_meta_training_and_tuning_never_draw_a_bank_image(tmp_path, monkeypatch):
    """The train stage (both samplers) and tune-lr draw only the meta-training part; `iai generate`'s
    banks (id, ood_classes, ood_shift) only the held-out part, so no bank image is ever trained on."""
    from iai.core.tasks import build_family
    from iai.core.tasks.bank import load_bank
    from iai.params import from_dict
    from iai.stages.generate import sample_bank, write_bank
    from iai.stages.train import train_run
    from iai.stages.tune import tune_learning_rates

    raw = {"seed": 0, "banks": {"n_tasks": 8, "n_train": 64, "n_valid": 16}, "evaluate": {"sizes": [16, 64]},
           "model": {"width": 16, "depth": 1, "heads": 2, "ff": 32},
           "train": {"batch_size": 16, "max_steps": 2, "tasks_per_batch": 4, "n_valid": 8, "iterations": 2, "warmup": 1,
                     "log_every": 1, "checkpoint_every": 2, "threads": 1}}
    raw["families"] = {"digits": {"kind": "image_classification", "n_classes": 5, "dim": 16,
                                  "held_out_classes": [7, 8, 9],
                                  "eval_fraction": 0.3,
                                  "splits": {"id": {}, "ood_classes": {"n_novel": 3}, "ood_shift": {"rotate": 45}}}}
    raw["references"] = {"learners": ["sgd"], "sgd": {"lr": {"digits": 0.1}}, "lr_grid": [0.1]}
    raw["runs"] = [{"family": "digits", "name": "po", "regime": "parametric", "signal": "obs"},
                   {"family": "digits", "name": "po_pool", "regime": "parametric", "signal": "obs",
                    "train": {"sampler": "pool", "iterations": 3}}]
    params = from_dict(raw, "test")
    drawn = []  # (image_part, split's rotate, pool rows) of every draw
    draw = ImageClassificationTasks.draw

    def recording(self, *args):
        index, labels = draw(self, *args)
        drawn.append((self.image_part, self.rotate, self.n_novel, set(index.flatten().tolist())))
        return index, labels

    monkeypatch.setattr(ImageClassificationTasks, "draw", recording)
    family, splits = build_family(params.family("digits"))
    for run in params.runs:  # what `iai train` does
        train_run(run, make_family(family.kind, **params.family("digits").options), tmp_path / "models", device="cpu",
                  progress=False)
    tune_learning_rates(params, "digits", ("sgd",), n_tasks=4)
    training = [rows for part, *_, rows in drawn if part == "train"]
    assert len(training) == len(drawn) > 5
    trained = set().union(*training)
    drawn.clear()
    bank = sample_bank(params, "digits", splits)
    assert [(part, rotate, novel) for part, rotate, novel, _ in drawn] == [("eval", 0.0, 0), ("eval", 0.0, 3),
                                                                           ("eval", 45.0, 0)]
    for (*_, rows), split in zip(drawn, bank):
        assert rows and not rows & trained, split
    # the stored bank too: its points are images of the held-out part (rows as the pool holds them)
    write_bank(params, "digits", tmp_path / "banks")
    stored = load_bank(tmp_path / "banks" / "digits.pt")["id"]
    pool = family.bank_variant().pool()
    held = set().union(*part_rows(family.bank_variant()).values())
    by_value = {}
    for row, x in enumerate(pool.x):
        by_value.setdefault(x.numpy().tobytes(), set()).add(row)
    for x in torch.cat([stored.x_valid, stored.x_train], 1).flatten(0, 1):
        assert by_value[x.numpy().tobytes()] & held
    manifest = json.loads((tmp_path / "banks" / "digits.json").read_text())
    assert {s["params"]["image_part"] for s in manifest["splits"].values()} == {"eval"}
    assert manifest["params"]["image_part"] == "train"  # the family learners train on


def test_bundled_digits_are_scikit_learns_load_digits():
    """The digits source reads scikit-learn's bundled CSV without importing sklearn.datasets: the
    same images and labels as ``load_digits``."""
    from sklearn.datasets import load_digits

    from iai.core.tasks.images import load_source

    images, labels = load_source("digits")
    d = load_digits()
    assert images.dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_array_equal(images, d.images)
    np.testing.assert_array_equal(labels, d.target)
