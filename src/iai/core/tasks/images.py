"""Image classification task families: N-way tasks drawn from a real labelled dataset.

A task is an N-way problem (N = ``n_classes``): N classes drawn from the dataset's classes, given
the labels 0..N-1 in a random order of their own (seeded, per task), and train and valid points
drawn from those classes, each point's label uniform over the N. The parametric predictor is the
softmax-linear map of :class:`~iai.core.tasks.classification.LinearClassificationTasks`; metrics are
error rate and NLL, so the MAP, SGD, Adam and kNN references apply unchanged.

Sources (``source``):

- ``digits``: scikit-learn's bundled handwritten digits (8x8, 1,797 images, 10 classes; no download).
- ``mnist`` / ``fashion_mnist``: the standard IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each gzipped
  or not) in the folder ``path``; the pool is all 70,000 images (train and t10k files together).
  ``iai data mnist --out FOLDER`` downloads them on a machine with a network.
- ``embeddings``: an ``.npz`` file ``path`` holding ``x``, float ``[n, features]`` (e.g. DINOv2
  features of ImageNet or CIFAR-10 images) and ``y``, integer ``[n]`` class labels (any integers).

Inputs: images are optionally rotated (``rotate`` degrees, bilinear, an offline dataset shift),
average-pooled by ``downscale``, flattened, then standardized: each feature centred and all divided
by one common scale so that the mean feature variance is 1 (one scale, not one per pixel: border
pixels that are almost always 0 would otherwise blow up). The standardization statistics are the
source's own, computed on its clean images (before rotation and noise), so a shift is not normalized
away. ``input_noise`` then adds fixed Gaussian noise (std in standardized units, drawn once per image
from a fixed seed: an offline shift too). Last, when ``dim`` differs from the number of features,
a fixed random Gaussian projection (seeded by ``projection_seed``, entries N(0, 1/features), so the
mean variance stays about 1) maps them to ``dim``; ``dim: 0`` means no projection and is resolved to
the native size when the family is built. Inputs are finally multiplied by ``input_scale``.

Out-of-distribution splits (:meth:`ImageClassificationTasks.default_splits`):

- ``ood_classes`` (when ``held_out_classes`` is set): held-out classes never appear in an id task (nor
  in meta-training, which samples the id family); an ood task has ``n_novel`` of them (default: as
  many as fit, ``min(N, len(held_out_classes))``) and the rest from the seen classes.
- ``ood_shift``: a dataset shift. Default: digits rotated by 45 degrees for image sources, and
  ``input_noise: 1.0`` for embeddings. Between datasets, override the source in the params, e.g.
  ``ood_shift: {source: fashion_mnist, path: data/fashion_mnist}`` for a family on ``mnist`` (same
  28x28 inputs; ``dim`` is kept, so a learner trained on one runs on the other).

Meta-training and evaluation images (``eval_fraction``, default 0.3): the pool is partitioned once,
per class, into a meta-training part and a held-out evaluation part. A new task is a new label
permutation of a new draw, but its images come from one finite pool: were the evaluation banks drawn
from the images meta-training sees, a learned learner could be scored on images it was trained on,
which flatters "learned learners beat MAP with few points" (MAP never sees them). So every split
of the ``iai generate`` banks (``id``, ``ood_classes``, ``ood_shift``: the rotated, noised or
re-sourced images of the same rows) draws only held-out images (:meth:`~ImageClassificationTasks.bank_variant`
sets ``image_part: eval``), while everything else (meta-training, ``iai tune-lr``'s tasks, the benches:
the default ``image_part: train``) draws only the rest. The partition (:func:`held_out_mask`) holds
out, per class, the first ``round(eval_fraction * count)`` of the class's images in a random order
seeded by ``PARTITION_SEED`` and the class label alone: it is the same for every run seed, seed
stream and split (a split's rotation or noise keeps the rows; a split over another source partitions
that source the same way), and a larger fraction holds out a superset. Both parts hold every class
(held-out classes too: an ``ood_classes`` bank task draws their held-out part), else the family
raises a ConfigError naming ``eval_fraction``. ``eval_fraction: 0`` turns the partition off (both
parts are the whole pool: the banks then reuse training images). Digits has about 180 images per
class, so at 0.3 about 54 per class are held out and 126 train.

Sampling: classes and labels are drawn per task; within a task the valid points are distinct images,
and the train points are distinct images not among the valid ones, as long as the class's part has
enough images; beyond that the part's images repeat (sampling with replacement: train points first,
valid points only when the valid points alone exhaust the part). Across tasks images are reused
freely. A 5-way digits bank task (held-out part) thus holds about 270 distinct images: its 64 valid
points and about 200 train points are distinct, and the train points of a larger n repeat (at n =
1024, each about five times); a meta-training task (training part) has about 630 distinct images.

There is no teacher: ``TaskBatch.f_valid`` holds the one-hot valid labels (the truth for real data,
so a ``target: noiseless`` training run scores against the observed labels) and ``TaskBatch.theta``
is empty, ``[T, 0, token_dim]``. No metric or learner reads either.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from iai.core.predictors import LinearPredictor
from iai.core.tasks.base import ClassificationFamily, TaskBatch, _is_int, _is_num
from iai.core.tasks.image_sources import SOURCES, load_source
from iai.utils import ConfigError, derive_seed, generator

_CHUNK = 1 << 22  # random keys per chunk of tasks when drawing each class's order
PARTITION_SEED = 0  # the fixed seed of the meta-training / evaluation partition (never a run seed)
IMAGE_PARTS = ("train", "eval")


@dataclass(frozen=True)
class Pool:
    """The preprocessed inputs of a source and, per class, the indices of its points."""

    x: Tensor  # [P, dim] float32
    y: Tensor  # [P] the dataset's class label of each row
    classes: np.ndarray  # [C] the dataset's class labels, sorted
    table: Tensor  # [C, L] pool indices of each class's points (padded with 0)
    counts: Tensor  # [C] points per class


@lru_cache(maxsize=4)
def build_pool(source: str, path: str, downscale: int, rotate: float, input_noise: float, dim: int,
               projection_seed: int) -> Pool:
    """The preprocessed pool of a family's settings (module docstring: rotate, downscale, standardize,
    noise, project), cached: every split and every sample of a family share it."""
    raw, labels = load_source(source, path)
    x = torch.from_numpy(raw.astype(np.float32))
    if x.ndim == 3:  # images: rotate, then pool, then flatten
        clean = F.avg_pool2d(x.unsqueeze(1), downscale).flatten(1) if downscale > 1 else x.flatten(1)
        if rotate:
            a = math.radians(rotate)
            rot = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])
            grid = F.affine_grid(rot.expand(len(x), 2, 3), [len(x), 1, *x.shape[1:]], align_corners=False)
            x = F.grid_sample(x.unsqueeze(1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            x = (F.avg_pool2d(x, downscale) if downscale > 1 else x).flatten(1)
        else:
            x = clean
    else:
        clean = x
    mean = clean.mean(0)
    scale = clean.var(0).mean().sqrt().clamp_min(1e-12)
    x = (x - mean) / scale
    if input_noise:
        x = x + input_noise * torch.randn(x.shape, generator=generator(derive_seed(projection_seed, "input_noise")))
    if dim != x.shape[1]:
        seed = derive_seed(projection_seed, "projection", x.shape[1], dim)
        proj = torch.randn(x.shape[1], dim, generator=generator(seed))
        x = x @ (proj / math.sqrt(x.shape[1]))
    classes, table, counts = _class_table(labels, np.arange(len(labels)))
    return Pool(x=x.contiguous(), y=torch.from_numpy(labels), classes=classes, table=table, counts=counts)


def _class_table(labels: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, Tensor, Tensor]:
    """(classes ``[C]``, table ``[C, L]`` of the ``rows`` of each class, padded with 0, counts ``[C]``)."""
    classes, inverse, counts = np.unique(labels[rows], return_inverse=True, return_counts=True)
    table = torch.zeros(len(classes), int(counts.max()), dtype=torch.long)
    order = rows[np.argsort(inverse, kind="stable")]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for c, (s, n) in enumerate(zip(starts, counts)):
        table[c, :n] = torch.from_numpy(order[s:s + n])
    return classes, table, torch.from_numpy(counts)


def held_out_counts(labels: np.ndarray, eval_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(classes, images per class, held-out images per class) of the partition of ``labels``."""
    classes, counts = np.unique(labels, return_counts=True)
    return classes, counts, np.floor(eval_fraction * counts + 0.5).astype(np.int64)


@lru_cache(maxsize=8)
def _held_out_mask(source: str, path: str, eval_fraction: float) -> np.ndarray:
    _, labels = load_source(source, path)
    return held_out_mask(labels, eval_fraction)


def held_out_mask(labels: np.ndarray, eval_fraction: float) -> np.ndarray:
    """The evaluation part of a pool (bool ``[n]``, True = held out of meta-training; module docstring).

    Per class, its images (in dataset order) are put in a random order seeded by
    ``derive_seed(PARTITION_SEED, "image-partition", class)`` alone, and the first
    ``round(eval_fraction * count)`` are held out: the partition is a function of the labels and
    ``eval_fraction`` only (never of a run seed, a split's shift or the projection), and a larger
    fraction holds out a superset.
    """
    mask = np.zeros(len(labels), dtype=bool)
    classes, _, n_eval = held_out_counts(labels, eval_fraction)
    for c, k in zip(classes.tolist(), n_eval.tolist()):
        members = np.flatnonzero(labels == c)
        rng = np.random.default_rng(derive_seed(PARTITION_SEED, "image-partition", int(c)))
        mask[members[rng.permutation(len(members))[:k]]] = True
    return mask


@lru_cache(maxsize=8)
def build_part(source: str, path: str, downscale: int, rotate: float, input_noise: float, dim: int,
               projection_seed: int, eval_fraction: float, part: str) -> Pool:
    """The pool of :func:`build_pool` whose class table holds only the rows of one part (``"train"``:
    the meta-training images, ``"eval"``: the held-out ones; ``eval_fraction`` 0: every row in both).
    The inputs ``x`` are the whole pool's, so a row index means the same image in every part and split."""
    pool = build_pool(source, path, downscale, rotate, input_noise, dim, projection_seed)
    if eval_fraction == 0:
        return pool
    held = _held_out_mask(source, path, eval_fraction)
    classes, table, counts = _class_table(pool.y.numpy(), np.flatnonzero(held if part == "eval" else ~held))
    assert np.array_equal(classes, pool.classes), "every class has images in both parts (checked by the family)"
    return dataclasses.replace(pool, table=table, counts=counts)


# ---------------------------------------------------------------------------- the family


def resolve_source(family) -> tuple[np.ndarray, np.ndarray]:
    """Check the data options a family over real images shares (``held_out_classes``, ``downscale``,
    ``rotate``), load its source, and resolve ``dim: 0`` to the native number of features; returns
    the raw data and labels. ``family`` is a frozen dataclass with those fields and ``_check``."""
    held = family.held_out_classes
    family._check("held_out_classes", isinstance(held, (list, tuple)) and all(_is_int(c, 0) for c in held)
                  and len(set(held)) == len(held), "a list of distinct class labels (integers >= 0)")
    object.__setattr__(family, "held_out_classes", tuple(sorted(held)))
    raw, labels = load_source(family.source, family._path_key)
    if raw.ndim == 3:
        h, w = raw.shape[1:]
        family._check("downscale", h % family.downscale == 0 and w % family.downscale == 0,
                      f"a divisor of the {family.source} image size {h}x{w}")
        native = (h // family.downscale) * (w // family.downscale)
    else:
        family._check("downscale", family.downscale == 1, "1 for source 'embeddings' (features are not images)")
        family._check("rotate", family.rotate == 0, "0 for source 'embeddings' (features are not images)")
        native = raw.shape[1]
    if family.dim == 0:
        object.__setattr__(family, "dim", native)
    return raw, labels


@dataclass(frozen=True)
class ImageClassificationTasks(ClassificationFamily):
    """N-way tasks from a real dataset (see the module docstring); ``n_classes`` is N.

    ``prior_std / temperature`` is only the Gaussian prior std of the MAP reference's theta;
    ``input_dist`` is not used.
    """

    kind: ClassVar[str] = "image_classification"

    dim: int = 0
    n_classes: int = 5
    source: str = "digits"
    path: str = ""
    downscale: int = 1
    projection_seed: int = 0
    held_out_classes: tuple[int, ...] = ()
    n_novel: int = 0
    rotate: float = 0.0
    input_noise: float = 0.0
    eval_fraction: float = 0.3
    image_part: str = "train"

    def __post_init__(self) -> None:
        self._check("source", self.source in SOURCES, f"one of {list(SOURCES)}")
        self._check("eval_fraction", _is_num(self.eval_fraction, 0) and self.eval_fraction < 1,
                    "a fraction in [0, 1) (0 = no held-out images)")
        self._check("image_part", self.image_part in IMAGE_PARTS,
                    f"one of {list(IMAGE_PARTS)} (set by `iai generate`, not a params option)")
        self._check("path", isinstance(self.path, str),
                    "a string (a folder for mnist/fashion_mnist, an .npz file for embeddings)")
        if self.source in ("mnist", "fashion_mnist", "embeddings") and not self.path:
            what = "an .npz file" if self.source == "embeddings" else f"a folder with the {self.source} IDX files"
            raise ConfigError(f"{self.kind}.path: expected {what} for source {self.source!r}, got none")
        self._check("dim", _is_int(self.dim, 0), "an integer >= 0 (0 = the native number of features)")
        self._check("downscale", _is_int(self.downscale, 1), "an integer >= 1")
        self._check("projection_seed", _is_int(self.projection_seed, 0), "an integer >= 0")
        self._check("n_novel", _is_int(self.n_novel, 0), "an integer >= 0")
        self._check("rotate", _is_num(self.rotate, -360) and self.rotate <= 360, "degrees in -360..360")
        self._check("input_noise", _is_num(self.input_noise, 0), "a number >= 0")
        raw, labels = resolve_source(self)
        held = self.held_out_classes
        super().__post_init__()
        classes = set(np.unique(labels).tolist())
        unknown = sorted(set(held) - classes)
        self._check("held_out_classes", not unknown, f"classes of the {self.source} data (it has {sorted(classes)})")
        seen = len(classes) - len(held)
        n = self.n_classes
        self._check("n_novel", self.n_novel <= min(n, len(held)),
                    f"at most min(n_classes, number of held_out_classes) = {min(n, len(held))}")
        self._check("n_classes", n - self.n_novel <= seen,
                    f"at most the {seen} seen classes of {self.source} plus n_novel = {self.n_novel}")
        if self.eval_fraction:
            cls, counts, n_eval = held_out_counts(labels, self.eval_fraction)
            bad = [i for i in range(len(cls)) if not 0 < n_eval[i] < counts[i]]
            if bad:
                i = bad[0]
                raise ConfigError(
                    f"{self.kind}.eval_fraction: expected a fraction that leaves every class images in both the "
                    f"meta-training and the held-out evaluation part, got {self.eval_fraction!r}: class {cls[i]} of "
                    f"{self.source} has {counts[i]} images, of which it would hold out {n_eval[i]}")

    @property
    def _path_key(self) -> str:
        return "" if self.source == "digits" else str(Path(self.path).expanduser().resolve())

    @property
    def predictor(self) -> LinearPredictor:
        return LinearPredictor(self.dim, self.n_classes, bias=True)

    def default_splits(self) -> dict[str, dict[str, Any]]:
        raw, _ = load_source(self.source, self._path_key)
        splits: dict[str, dict[str, Any]] = {"id": {}}
        if self.held_out_classes:
            splits["ood_classes"] = {"n_novel": min(self.n_classes, len(self.held_out_classes))}
        splits["ood_shift"] = {"rotate": 45.0} if raw.ndim == 3 else {"input_noise": 1.0}
        return splits

    def bank_variant(self) -> "ImageClassificationTasks":
        """The same family drawing from the held-out evaluation images (``image_part: eval``)."""
        return self if self.image_part == "eval" else self.variant(image_part="eval")

    def pool(self) -> Pool:
        """The preprocessed pool; its class table (what :meth:`draw` samples) holds only this family's
        part (``image_part``) of each class's images, its inputs are every image's."""
        return build_part(self.source, self._path_key, self.downscale, float(self.rotate),
                          float(self.input_noise), self.dim, self.projection_seed, float(self.eval_fraction),
                          self.image_part)

    def draw(self, n_tasks: int, n_train: int, n_valid: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """The pool rows ``[T, n_valid + n_train]`` (valid points first) of new tasks and their labels
        ``[T, n_valid + n_train]`` in 0..N-1 (what :meth:`sample` turns into a :class:`TaskBatch`)."""
        pool = self.pool()
        t, n_way, n = n_tasks, self.n_classes, n_train + n_valid
        held = np.isin(pool.classes, self.held_out_classes)
        seen_c, novel_c = torch.from_numpy(np.flatnonzero(~held)), torch.from_numpy(np.flatnonzero(held))

        def pick(candidates: Tensor, k: int) -> Tensor:  # k distinct of the candidates per task
            return candidates[torch.rand(t, len(candidates), generator=gen).argsort(-1)[:, :k]]

        picked = torch.cat([pick(novel_c, self.n_novel), pick(seen_c, n_way - self.n_novel)], 1)
        task_classes = picked.gather(1, torch.rand(t, n_way, generator=gen).argsort(-1))  # [T, N]; label j -> class
        # points: valid first (the first n_valid), then train; a label each, uniform over the N
        lab = torch.randint(n_way, (t, n), generator=gen)
        # rank of each point among the task's points of its label (valid points rank first)
        per_label = torch.zeros(t, n_way, dtype=torch.long).scatter_add_(1, lab, torch.ones_like(lab))
        ar = torch.arange(n).expand(t, n)
        order = (lab * n + ar).argsort(1)
        first = (per_label.cumsum(1) - per_label).gather(1, lab.gather(1, order))
        rank = torch.empty_like(lab).scatter_(1, order, ar - first)
        n_val = torch.zeros(t, n_way, dtype=torch.long).scatter_add_(1, lab[:, :n_valid],
                                                                     torch.ones_like(lab[:, :n_valid]))
        cls = task_classes.gather(1, lab)  # [T, n] class of each point
        count = pool.counts[cls]
        vc = n_val.gather(1, lab)
        avail = count - vc
        # position in the class's random order: valid points take the first vc, train points the rest
        train_pos = torch.where(avail > 0, vc + (rank - vc) % avail.clamp_min(1), rank % count)
        pos = torch.where(ar < n_valid, rank % count, train_pos)
        # a random order of each (task, label)'s class, drawn only as far as needed
        k = int(pos.max()) + 1
        slot = torch.empty(t, n_way, k, dtype=torch.long)
        width = pool.table.shape[1]
        step = max(1, _CHUNK // (n_way * width))
        col = torch.arange(width)
        for s in range(0, t, step):
            c = task_classes[s:s + step]
            keys = torch.rand(len(c), n_way, width, generator=gen).masked_fill(col >= pool.counts[c].unsqueeze(-1), 2.0)
            slot[s:s + step] = keys.topk(k, -1, largest=False).indices if k < width else keys.argsort(-1)
        in_class = slot.view(t, n_way * k).gather(1, lab * k + pos)
        return pool.table[cls, in_class], lab

    def sample(self, n_tasks: int, n_train: int, n_valid: int, seed: int | torch.Generator) -> TaskBatch:
        """Draw ``n_tasks`` N-way tasks (CPU): classes, label order and points per task."""
        for name, value in (("n_tasks", n_tasks), ("n_train", n_train), ("n_valid", n_valid)):
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"{name}: expected an integer >= 1, got {value!r}")
        gen = seed if isinstance(seed, torch.Generator) else generator(seed)
        index, lab = self.draw(n_tasks, n_train, n_valid, gen)
        x = self.pool().x[index]
        if self.input_scale != 1:
            x = self.input_scale * x
        y = F.one_hot(lab, self.n_classes).to(x.dtype)
        theta = x.new_zeros(n_tasks, 0, self.predictor.token_dim)
        return TaskBatch(x_train=x[:, n_valid:], y_train=y[:, n_valid:], x_valid=x[:, :n_valid],
                         y_valid=y[:, :n_valid], f_valid=y[:, :n_valid].clone(), theta=theta)
