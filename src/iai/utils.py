"""Small shared infrastructure: errors, seeds, devices and atomic file writes.

Everything in the package may import this module; it imports nothing from the package.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch


class ConfigError(ValueError):
    """A bad parameter, file or argument. The CLI prints its message alone and exits 2."""


# ---------------------------------------------------------------------------- seeds


def derive_seed(base: int, *names: object) -> int:
    """A stable 63-bit seed for a named stream (e.g. ``derive_seed(seed, "bank", family, split)``).

    Python's ``hash`` is salted per process, so it cannot be used for reproducible seeds.
    """
    text = "/".join(str(n) for n in (base, *names))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def generator(seed: int) -> torch.Generator:
    """A CPU generator: sampling happens on the CPU so that seeds give the same numbers on any device."""
    return torch.Generator().manual_seed(int(seed))


# ---------------------------------------------------------------------------- devices


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"device: expected 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {device!r} was asked for but CUDA is not available here")
    return dev


def describe_device(device: torch.device) -> str:
    """A human name for the machine a number was measured on (GPU model, or CPU model and threads)."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"CPU {model}, {torch.get_num_threads()} torch thread(s) of {os.cpu_count()} cores"


# ---------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    A crash or an exception leaves the old file (or no file) and no partial one, which is what
    lets Snakemake and DVC trust that an existing output is a finished output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs should look like any file
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Sorted keys and a trailing newline: identical content gives identical bytes (DVC hashes them)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def torch_save(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` atomically, with bytes that depend only on ``obj`` (DVC hashes them).

    Saving to a file names the archive's inner folder after the (random) temporary file name, so
    the object is serialized to memory first, where the folder is always called ``archive``.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Load a file written by :func:`torch_save` without executing code from it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupted, truncated, or a pickle with code in it
        raise ConfigError(f"{path}: not a readable iai file ({type(err).__name__}: {err})") from err


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
