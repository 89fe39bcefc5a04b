"""``iai data``: download MNIST or Fashion-MNIST (the four gzipped IDX files) into a folder.

Run it once on a machine with a network; the ``image_classification`` family then reads the folder
named by its ``path`` option (``source: mnist`` or ``fashion_mnist``). Each file is tried on the
mirrors in turn, checked against its published MD5 checksum and parsed as IDX before it is moved into
place; files already there with the right checksum are kept. The pipeline and the tests never run it.

    iai data mnist --out data/mnist
    iai data fashion_mnist --out data/fashion_mnist

The digits source needs nothing (scikit-learn bundles it). Embeddings are not downloaded: write an
``.npz`` with ``x`` [n, features] float and ``y`` [n] int yourself (e.g. DINOv2 features).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import urllib.error
import urllib.request
from pathlib import Path

from iai.core.tasks.idx import read_idx
from iai.utils import ConfigError, atomic_path

log = logging.getLogger(__name__)

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")
DATASETS = {
    # mirrors in the order tried; MD5 checksums as published (and as torchvision checks them)
    "mnist": {
        "mirrors": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "https://storage.googleapis.com/cvdf-datasets/mnist/",
                    "http://yann.lecun.com/exdb/mnist/"),
        "md5": dict(zip(FILES, ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                                "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))),
    },
    "fashion_mnist": {
        "mirrors": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        "md5": dict(zip(FILES, ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                                "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))),
    },
}


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)  # the published checksums are MD5: integrity, not security
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(dataset: str, out: str | Path, timeout: float = 60.0) -> list[Path]:
    """Fetch ``dataset``'s four IDX files into ``out`` (kept if already there and intact)."""
    if dataset not in DATASETS:
        raise ConfigError(f"dataset: unknown {dataset!r}; expected one of {sorted(DATASETS)}")
    spec, out = DATASETS[dataset], Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in FILES:
        path, md5 = out / name, spec["md5"][name]
        if path.is_file() and _md5(path) == md5:
            log.info("%s: present, checksum ok", path)
            paths.append(path)
            continue
        errors = []
        for mirror in spec["mirrors"]:
            url = mirror + name
            try:
                with atomic_path(path) as tmp:
                    log.info("downloading %s", url)
                    with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
                        while chunk := r.read(1 << 20):
                            f.write(chunk)
                    got = _md5(tmp)
                    if got != md5:
                        raise ValueError(f"MD5 {got}, expected {md5}")
                    read_idx(tmp)  # parses, or raises ConfigError
                break
            except (OSError, ValueError, ConfigError) as err:  # URLError is an OSError
                errors.append(f"{url}: {err}")
        else:
            raise ConfigError(f"{dataset}: could not fetch {name} into {out}; tried "
                              + "; ".join(errors))
        paths.append(path)
    return paths


def cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", choices=sorted(DATASETS), help="which dataset to download")
    p.add_argument("--out", required=True, help="folder to write the IDX files into (the family's `path`)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")


def cli_main(args: argparse.Namespace) -> None:
    paths = download(args.dataset, args.out, args.timeout)
    print(f"{args.dataset}: {len(paths)} IDX files in {args.out} (checksums ok)")
