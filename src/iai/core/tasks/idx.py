"""A direct reader (and writer) of the IDX files MNIST and Fashion-MNIST are published in.

No torchvision: its wheels are pinned to one torch version each, and this project keeps torch a
range (``torch>=2.2,<3``), so a few lines of numpy replace it.

IDX layout (big-endian): two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16,
0x0C int32, 0x0D float32, 0x0E float64), a byte with the number of dimensions k, k uint32 sizes,
then the values in C order. Files may be gzipped (detected by their magic bytes, not their name).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from iai.utils import ConfigError

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in the IDX file ``path`` (gzipped or not), in native byte order.

    A missing, truncated or otherwise malformed file raises one :class:`ConfigError` naming the
    path and what was expected.
    """
    path = Path(path)
    expected = "an IDX file (optionally gzipped): 0x0000, a type byte, a rank byte, big-endian sizes, values"
    try:
        raw = path.read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; expected {expected}") from None
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ConfigError(f"{path}: cannot read it ({err}); expected {expected}") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_TYPES:
        raise ConfigError(f"{path}: bad header {raw[:4].hex() or '(empty file)'}; expected {expected}")
    ndim = raw[3]
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise ConfigError(f"{path}: truncated header (rank {ndim}); expected {expected}")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[raw[2]])
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - start != size:
        raise ConfigError(f"{path}: {len(raw) - start} data bytes for shape {shape} of {dtype.name} "
                          f"({size} expected); the file is truncated or not {expected}")
    return np.frombuffer(raw, dtype, offset=start).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (gzipped when ``compress``, default: when the name ends in .gz)."""
    path = Path(path)
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ConfigError(f"write_idx: dtype {array.dtype} has no IDX code; expected one of {sorted(map(str, codes))}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + array.astype(IDX_TYPES[code]).tobytes()
    if path.name.endswith(".gz") if compress is None else compress:
        data = gzip.compress(data)
    path.write_bytes(data)
    return path
