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


class NoContentHash(ConfigError):
    """A file that carries no content hash (not written by iai, or by a version before hashes)."""


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
    lets Snakemake and DVC trust that an existing output is a finished output. An OS error (a
    folder that cannot be written, a full disk) is one :class:`ConfigError` naming the path.
    """
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs should look like any file
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        raise ConfigError(f"{path}: could not write it ({err.strerror or err})") from err
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def check_writable(folder: str | os.PathLike) -> None:
    """Fail before any compute when ``folder`` cannot be created or written (one :class:`ConfigError`)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ConfigError(f"{folder}: output folder cannot be written ({err.strerror or err})") from err


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Sorted keys and a trailing newline: identical content gives identical bytes (DVC hashes them)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


# What a job measured about itself rather than computed: the same job gives other values on each run
# and machine. A stage summary keeps them in a sidecar, <name>.timing.json, which .dvcignore leaves out
# of DVC's hashes, so that the same numbers give the same dvc.lock on every run.
TIMING_KEYS = ("duration_s", "device_name", "tasks_per_s", "resumed_at")


def timing_path(summary_path: str | os.PathLike) -> Path:
    """``seed0.json`` -> ``seed0.timing.json``, beside it."""
    path = Path(summary_path)
    return path.with_name(f"{path.stem}.timing.json")


def write_summary(path: str | os.PathLike, summary: dict) -> None:
    """A stage summary as two JSON files: what the job computed at ``path``, its :data:`TIMING_KEYS` in
    :func:`timing_path` (read back together by :func:`read_summary`)."""
    write_json(path, {k: v for k, v in summary.items() if k not in TIMING_KEYS})
    write_json(timing_path(path), {k: summary[k] for k in TIMING_KEYS if k in summary})


def read_summary(path: str | os.PathLike) -> dict:
    """A summary written by :func:`write_summary`, with its timings where the sidecar is there."""
    path = Path(path)
    data = json.loads(path.read_text())
    timing = timing_path(path)
    if isinstance(data, dict) and timing.is_file():
        data = {**data, **json.loads(timing.read_text())}
    return data


CONTENT_HASH = "content_sha256"  # the key torch_save adds to every object it writes


def content_sha256(obj: Any) -> str:
    """A hash of an object of dicts, lists, tensors and scalars: every tensor's dtype, shape and bytes."""
    h = hashlib.sha256()

    def feed(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous().reshape(-1)
            h.update(f"T{t.dtype}{tuple(x.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(x, dict):
            h.update(f"D{len(x)}".encode())
            for k in sorted(x, key=repr):
                h.update(repr(k).encode())
                feed(x[k])
        elif isinstance(x, (list, tuple)):
            h.update(f"L{len(x)}".encode())
            for v in x:
                feed(v)
        else:
            h.update(f"S{type(x).__name__}:{x!r}".encode())

    feed(obj)
    return h.hexdigest()


def torch_save(path: str | os.PathLike, obj: dict) -> None:
    """``torch.save`` of a dict atomically, with its :func:`content_sha256` under :data:`CONTENT_HASH`
    (checked by :func:`torch_load`), and bytes that depend only on ``obj`` (DVC hashes them).

    Saving to a file names the archive's inner folder after the (random) temporary file name, so
    the object is serialized to memory first, where the folder is always called ``archive``.
    """
    if not isinstance(obj, dict) or CONTENT_HASH in obj:
        raise TypeError(f"torch_save: expected a dict without a {CONTENT_HASH!r} key")
    buffer = io.BytesIO()
    torch.save({**obj, CONTENT_HASH: content_sha256(obj)}, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu", remedy: str = "") -> Any:
    """Load a file written by :func:`torch_save` without executing code from it, and check its content
    hash: a changed byte in any tensor is one :class:`ConfigError` naming the file, the recorded and
    the found hash, and ``remedy`` (how to regenerate it)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupted, truncated, or a pickle with code in it
        raise ConfigError(f"{path}: not a readable iai file ({type(err).__name__}: {err})") from err
    if not isinstance(data, dict) or CONTENT_HASH not in data:
        raise NoContentHash(f"{path}: not an iai file (no {CONTENT_HASH}: files written by iai carry one)")
    recorded = data.pop(CONTENT_HASH)
    found = content_sha256(data)
    if found != recorded:
        raise ConfigError(f"{path}: corrupted: content hash {found[:16]} differs from the recorded {str(recorded)[:16]}"
                          + (f"; {remedy}" if remedy else ""))
    return data


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
