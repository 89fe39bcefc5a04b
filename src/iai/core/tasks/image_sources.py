"""The raw data of the image (and embedding) sources: scikit-learn's bundled digits, MNIST-format IDX
folders (MNIST, Fashion-MNIST) and .npz feature tables, each read from local files with one clear
error naming the file and what was expected. :mod:`iai.core.tasks.images` builds tasks from them."""

from __future__ import annotations

import importlib.util
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from iai.core.tasks.idx import read_idx
from iai.utils import ConfigError

SOURCES = ("digits", "mnist", "fashion_mnist", "embeddings")
IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
NPZ_FORMAT = "an .npz file with arrays x (n, features) float and y (n,) integer class labels"


@lru_cache(maxsize=4)
def load_source(source: str, path: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The raw data of a source: images ``[n, H, W]`` (or features ``[n, F]``) as stored (uint8 for IDX
    files, so the cache stays small) and int64 labels ``[n]``."""
    if source == "digits":
        return _bundled_digits()
    if source == "embeddings":
        return _load_npz(Path(path))
    return _load_idx_folder(source, Path(path))


def _bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (no download): its CSV read as ``load_digits`` reads it,
    without importing ``sklearn.datasets`` (3 s of every digits job's start); ``load_digits`` itself
    where that file is not found."""
    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if csv is None or not csv.is_file():
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.images.astype(np.float32), d.target.astype(np.int64)
    data = np.loadtxt(csv, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8).astype(np.float32), data[:, -1].astype(np.int64)


def _load_idx_folder(source: str, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    files = ", ".join(f"{s}[.gz]" for s in IDX_STEMS)
    hint = f"`iai data {source} --out {folder}` downloads them on a machine with a network"
    if not folder.is_dir():
        raise ConfigError(f"image_classification.path: folder {folder} not found; expected a folder holding the "
                          f"{source} IDX files {files}; {hint}")
    found = {}
    for stem in IDX_STEMS:
        found[stem] = next((p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()), None)
    missing = [s for s, p in found.items() if p is None]
    if missing:
        raise ConfigError(f"image_classification.path: {folder} lacks {', '.join(f'{s}[.gz]' for s in missing)}; "
                          f"expected the {source} IDX files {files}; {hint}")
    xs, ys = [], []
    for part in ("train", "t10k"):
        x_path, y_path = found[f"{part}-images-idx3-ubyte"], found[f"{part}-labels-idx1-ubyte"]
        x, y = read_idx(x_path), read_idx(y_path)
        if x.ndim != 3:
            raise ConfigError(f"{x_path}: images of shape {x.shape}; expected an IDX image file [n, rows, cols]")
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise ConfigError(f"{y_path}: labels of shape {y.shape} ({y.dtype}); expected an integer IDX "
                              f"label file [{len(x)}] matching {x_path.name}")
        if x.shape[1:] != (xs[0].shape[1:] if xs else x.shape[1:]):
            raise ConfigError(f"{x_path}: images of size {x.shape[1:]}, but the train images are {xs[0].shape[1:]}")
        xs.append(x)
        ys.append(y.astype(np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise ConfigError(f"image_classification.path: file {path} not found; expected {NPZ_FORMAT}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "x" not in data.files or "y" not in data.files:
                raise ConfigError(f"{path}: holds arrays {sorted(data.files)}; expected {NPZ_FORMAT}")
            x, y = data["x"], data["y"]
    except ConfigError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ConfigError(f"{path}: cannot read it ({type(err).__name__}: {err}); expected {NPZ_FORMAT}") from None
    if x.ndim != 2 or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ConfigError(f"{path}: x has shape {x.shape} ({x.dtype}); expected {NPZ_FORMAT}")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"{path}: y has shape {y.shape} ({y.dtype}) for x of shape {x.shape}; expected {NPZ_FORMAT}")
    x = x.astype(np.float32)
    if len(x) == 0 or not np.isfinite(x).all():
        raise ConfigError(f"{path}: x is empty or has non-finite values; expected {NPZ_FORMAT}")
    return x, y.astype(np.int64)
