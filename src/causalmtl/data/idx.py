"""Reader and writer of the IDX file format (the format of the MNIST files).

An IDX file (LeCun et al., http://yann.lecun.com/exdb/mnist/) is

* a 4-byte magic number ``0x00 0x00 <type> <ndim>``, with ``<type>`` one of
  ``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32,
  ``0x0E`` float64;
* ``ndim`` big-endian uint32 dimension sizes;
* the data, big-endian, C-order — exactly ``Π dims × itemsize`` bytes.

Files may be gzip-compressed (detected from the gzip signature, not from the name).
:func:`read_idx` verifies every structural property and raises :class:`IDXFormatError`
(a ``ValueError``) naming the file and what was found: a wrong magic number, an unknown type
code, an unexpected type, number of dimensions or shape, a truncated or over-long file, or a
corrupt gzip stream.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

PathLike = str | os.PathLike[str]

#: IDX type code → NumPy dtype (big-endian).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class IDXFormatError(ValueError):
    """An IDX file whose structure is wrong (magic, dimensions, length, compression)."""


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise IDXFormatError(f"{path}: corrupt or truncated gzip stream ({exc})") from exc
    return raw


def read_idx(
    path: PathLike,
    expected_dtype: int | None = None,
    expected_shape: Sequence[int | None] | None = None,
) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a native-endian NumPy array.

    Parameters
    ----------
    path : path of the file
    expected_dtype : IDX type code (e.g. ``0x08``), optional
        Raise if the file holds another type.
    expected_shape : sequence of ints or None, optional
        Raise if the number of dimensions differs or a given (non-None) size differs.

    Raises
    ------
    IDXFormatError
        Structural errors (see the module docstring); the message names the file.
    FileNotFoundError
        If the file does not exist.
    """
    p = Path(path)
    data = _read_bytes(p)
    if len(data) < 4:
        raise IDXFormatError(f"{p}: file is truncated: {len(data)} bytes, an IDX header needs at least 4")
    magic = int.from_bytes(data[:4], "big")
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES or data[3] == 0:
        raise IDXFormatError(
            f"{p}: wrong magic number 0x{magic:08X}; an IDX file starts with 0x0000TTDD "
            f"(TT a type code in {[hex(c) for c in IDX_DTYPES]}, DD >= 1 dimensions)"
        )
    code, ndim = data[2], data[3]
    if expected_dtype is not None and code != expected_dtype:
        raise IDXFormatError(
            f"{p}: wrong magic number 0x{magic:08X}: type code 0x{code:02X}, expected 0x{expected_dtype:02X}"
        )
    if expected_shape is not None and ndim != len(expected_shape):
        raise IDXFormatError(
            f"{p}: wrong magic number 0x{magic:08X}: {ndim} dimensions, expected {len(expected_shape)}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXFormatError(f"{p}: file is truncated inside the header ({len(data)} bytes, header needs {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    if expected_shape is not None:
        for i, (got, want) in enumerate(zip(dims, expected_shape)):
            if want is not None and got != want:
                raise IDXFormatError(f"{p}: dimension {i} is {got}, expected {want} (shape {dims})")
    dtype = IDX_DTYPES[code]
    expected_len = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected_len:
        kind = "truncated" if len(data) < expected_len else "too long"
        raise IDXFormatError(
            f"{p}: file is {kind}: {len(data)} bytes (uncompressed) but the header {dims} of type "
            f"{dtype.name} needs exactly {expected_len}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: PathLike, array: npt.ArrayLike, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when ``compress`` or the name ends in ``.gz``).

    The dtype must be one of the IDX types (uint8, int8, int16, int32, float32, float64).
    """
    arr = np.asarray(array)
    native = {v.newbyteorder("=").str: k for k, v in IDX_DTYPES.items()}
    key = arr.dtype.newbyteorder("=").str
    if key not in native:
        raise ValueError(f"array dtype {arr.dtype} has no IDX type; use one of uint8, int8, int16, int32, float32, float64")
    if arr.ndim < 1 or arr.ndim > 255:
        raise ValueError(f"array must have 1 to 255 dimensions, got {arr.ndim}")
    code = native[key]
    payload = (
        bytes([0, 0, code, arr.ndim])
        + np.asarray(arr.shape, dtype=">u4").tobytes()
        + np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()
    )
    p = Path(path)
    if compress is None:
        compress = p.suffix == ".gz"
    p.write_bytes(gzip.compress(payload, mtime=0) if compress else payload)
    return p


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file's bytes (as stored, i.e. of the ``.gz`` when compressed)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
