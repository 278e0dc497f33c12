"""The PLY container: header parsing and element decoding (binary LE/BE and ASCII).

Shared by the INRIA PLY reader (:mod:`splat.io.ply`) and the PlayCanvas compressed
PLY reader (:mod:`splat.io.compressed_ply`). Declared element counts are checked
against the bytes actually present before anything is allocated.
"""
from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import FormatError

MAX_HEADER_BYTES = 1 << 20

PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1",
    "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4",
    "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4",
    "double": "f8", "float64": "f8",
}
FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}
_NAME = re.compile(r"^[^\s]+$")


@dataclass
class PlyProperty:
    name: str
    dtype: str  # numpy kind+size without byte order, e.g. "f4"
    list_count_dtype: str | None = None  # set for list properties

    @property
    def is_list(self) -> bool:
        return self.list_count_dtype is not None


@dataclass
class PlyElement:
    name: str
    count: int
    properties: list[PlyProperty] = field(default_factory=list)

    @property
    def has_list(self) -> bool:
        return any(p.is_list for p in self.properties)

    def row_bytes(self) -> int:
        return sum(np.dtype(p.dtype).itemsize for p in self.properties)

    def names(self) -> list[str]:
        return [p.name for p in self.properties]


@dataclass
class PlyHeader:
    format: str  # "ascii" | "binary_little_endian" | "binary_big_endian"
    elements: list[PlyElement]
    comments: list[str]
    data_offset: int  # byte offset of the first element's data

    def element(self, name: str) -> PlyElement | None:
        for e in self.elements:
            if e.name == name:
                return e
        return None


class ElementData(dict):
    """Decoded columns of one element, {property: [count] array}, in file order.

    For binary elements whose properties share one numeric type, ``matrix`` is the whole
    [count, P] table and the columns are views into it; :meth:`stack` then copies groups of
    columns in one row-major pass instead of one strided pass per column.
    """

    def __init__(self, columns: dict[str, np.ndarray], matrix: np.ndarray | None = None,
                 offset: int = 0, row_bytes: int = 0):
        super().__init__(columns)
        self.matrix = matrix
        self.index = {name: j for j, name in enumerate(columns)}
        self.offset = offset  # byte offset of the element's first row in the file
        self.row_bytes = row_bytes

    def stack_groups(self, groups: dict[str, list[str]], dtype=np.float32, chunk_rows: int = 1 << 16,
                     done: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
        """``{key: self.stack(names)}`` for every group, filled in one pass over row chunks
        of ``chunk_rows``; after each chunk ``done(start, stop)`` is called with the chunk's
        byte range in the file (so a memory-mapped reader can drop those pages). Only the
        outputs are allocated: [count, len(names)] of ``dtype`` each, C-contiguous."""
        if self.matrix is None:
            return {k: np.ascontiguousarray(self.stack(names, dtype)) for k, names in groups.items()}
        n = self.matrix.shape[0]
        out = {k: np.empty((n, len(names)), dtype) for k, names in groups.items()}
        idx = {k: [self.index[c] for c in names] for k, names in groups.items()}
        for s in range(0, n, chunk_rows):
            block = self.matrix[s: s + chunk_rows]
            for k, cols in idx.items():
                out[k][s: s + len(block)] = block[:, cols]
            if done is not None:
                done(self.offset + s * self.row_bytes, self.offset + (s + len(block)) * self.row_bytes)
        return out

    def stack(self, names: list[str], dtype=np.float32) -> np.ndarray:
        """Columns ``names`` side by side: [count, len(names)] of ``dtype``."""
        if not names:
            n = self.matrix.shape[0] if self.matrix is not None else len(next(iter(self.values()), ()))
            return np.zeros((n, 0), dtype)
        if self.matrix is not None:
            idx = [self.index[k] for k in names]
            if idx == list(range(idx[0], idx[0] + len(idx))):
                return self.matrix[:, idx[0]: idx[0] + len(idx)].astype(dtype)
            return self.matrix[:, idx].astype(dtype, copy=False)
        return np.stack([self[k].astype(dtype, copy=False) for k in names], axis=1)


def is_ply(head: bytes) -> bool:
    return head.startswith(b"ply\n") or head.startswith(b"ply\r\n")


def parse_header(data: bytes, path=None) -> PlyHeader:
    """Parse the PLY header at the start of ``data`` (FormatError on anything malformed)."""
    if not is_ply(data[:5]):
        raise FormatError("not a PLY file (missing 'ply' magic line)", path)
    m = re.search(rb"end_header[ \t]*\r?\n", memoryview(data)[:MAX_HEADER_BYTES])  # no 1 MiB copy
    if m is None:
        if len(data) < MAX_HEADER_BYTES:
            raise FormatError("PLY header is truncated (no 'end_header' line)", path)
        raise FormatError(f"PLY header longer than {MAX_HEADER_BYTES} bytes (no 'end_header' line)", path)
    try:
        text = data[: m.start()].decode("ascii")
    except UnicodeDecodeError as e:
        raise FormatError(f"PLY header holds a non-ASCII byte at offset {e.start}", path) from None
    fmt = None
    elements: list[PlyElement] = []
    comments: list[str] = []
    for lineno, raw in enumerate(text.splitlines()[1:], start=2):
        parts = raw.split()
        if not parts:
            continue
        key = parts[0]
        if key in ("comment", "obj_info"):
            comments.append(raw.partition(key)[2].strip())
        elif key == "format":
            if len(parts) != 3 or parts[1] not in FORMATS:
                raise FormatError(f"PLY header line {lineno}: unsupported format line {raw.strip()!r}", path)
            if fmt is not None:
                raise FormatError(f"PLY header line {lineno}: second 'format' line", path)
            if parts[2] != "1.0":
                raise FormatError(f"PLY header line {lineno}: unsupported PLY version {parts[2]!r}", path)
            fmt = parts[1]
        elif key == "element":
            if len(parts) != 3 or not (parts[2].isascii() and parts[2].isdigit() and len(parts[2]) <= 19):
                raise FormatError(f"PLY header line {lineno}: malformed element line {raw.strip()!r}", path)
            if any(e.name == parts[1] for e in elements):
                raise FormatError(f"PLY header line {lineno}: element {parts[1]!r} declared twice", path)
            elements.append(PlyElement(parts[1], int(parts[2])))
        elif key == "property":
            if not elements:
                raise FormatError(f"PLY header line {lineno}: property before any element", path)
            el = elements[-1]
            if len(parts) == 3 and parts[1] in PLY_TYPES:
                prop = PlyProperty(parts[2], PLY_TYPES[parts[1]])
            elif len(parts) == 5 and parts[1] == "list" and parts[2] in PLY_TYPES and parts[3] in PLY_TYPES:
                prop = PlyProperty(parts[4], PLY_TYPES[parts[3]], PLY_TYPES[parts[2]])
            else:
                raise FormatError(f"PLY header line {lineno}: malformed or unknown property type {raw.strip()!r}", path)
            if prop.name in el.names():
                raise FormatError(f"PLY header line {lineno}: property {prop.name!r} declared twice in {el.name!r}", path)
            el.properties.append(prop)
        else:
            raise FormatError(f"PLY header line {lineno}: unknown keyword {key!r}", path)
    if fmt is None:
        raise FormatError("PLY header has no 'format' line", path)
    return PlyHeader(fmt, elements, comments, m.end())


def read_elements(data: bytes | memoryview, header: PlyHeader, wanted: set[str], path=None) -> dict[str, ElementData]:
    """Decode the elements named in ``wanted`` into {element: {property: column}}.

    Columns keep the file's dtype in native byte order (views into ``data`` where possible,
    so read-only). Elements after the last wanted
    one are not touched. Raises FormatError when the data is shorter than declared.
    """
    if header.format == "ascii":
        return _read_ascii(data, header, wanted, path)
    order = FORMATS[header.format]
    out: dict[str, dict[str, np.ndarray]] = {}
    offset = header.data_offset
    last = max((i for i, e in enumerate(header.elements) if e.name in wanted), default=-1)
    for el in header.elements[: last + 1]:
        if el.has_list:
            raise FormatError(
                f"element {el.name!r} has list properties; binary PLY elements with lists are only "
                "supported after the Gaussian data", path)
        row = el.row_bytes()
        remaining = len(data) - offset
        if row == 0:
            if el.name in wanted:
                raise FormatError(f"element {el.name!r} has no properties", path)
            continue
        if el.count > remaining // row:
            raise FormatError(
                f"file is truncated: element {el.name!r} declares {el.count:,} rows of {row} bytes "
                f"({el.count * row:,} bytes) but only {max(remaining, 0):,} bytes remain", path)
        if el.name in wanted:
            types = {p.dtype for p in el.properties}
            if len(types) == 1:
                native = np.dtype(types.pop())
                mat = np.frombuffer(data, dtype=order + native.str[1:], count=el.count * len(el.properties),
                                    offset=offset).reshape(el.count, len(el.properties))
                if mat.dtype != native:
                    mat = mat.astype(native)
                out[el.name] = ElementData({p.name: mat[:, j] for j, p in enumerate(el.properties)}, mat,
                                           offset, row)
            else:
                dt = np.dtype([(p.name, order + p.dtype) for p in el.properties])
                arr = np.frombuffer(data, dtype=dt, count=el.count, offset=offset)
                out[el.name] = ElementData({p.name: arr[p.name].astype(p.dtype) for p in el.properties})
        offset += el.count * row
    return out


def _read_ascii(data: bytes, header: PlyHeader, wanted: set[str], path) -> dict[str, ElementData]:
    body = data[header.data_offset:]
    lines = body.splitlines()
    out: dict[str, dict[str, np.ndarray]] = {}
    pos = 0
    last = max((i for i, e in enumerate(header.elements) if e.name in wanted), default=-1)
    for el in header.elements[: last + 1]:
        if el.count > len(lines) - pos:
            raise FormatError(
                f"file is truncated: element {el.name!r} declares {el.count:,} rows but only "
                f"{max(len(lines) - pos, 0):,} lines remain", path)
        if el.name in wanted:
            if el.has_list:
                raise FormatError(f"element {el.name!r} has list properties, which are not supported here", path)
            chunk = b"\n".join(lines[pos: pos + el.count])
            try:
                text = chunk.decode("ascii")
            except UnicodeDecodeError:
                raise FormatError(f"element {el.name!r}: non-ASCII byte in ASCII PLY data", path) from None
            nprop = len(el.properties)
            if el.count == 0:
                table = np.zeros((0, nprop))
            else:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        table = np.loadtxt(io.StringIO(text), dtype=np.float64, ndmin=2, comments=None)
                except ValueError as e:
                    raise FormatError(f"element {el.name!r}: malformed ASCII data ({e})", path) from None
                if table.shape != (el.count, nprop):
                    raise FormatError(
                        f"element {el.name!r}: expected {el.count:,} rows of {nprop} values, "
                        f"got {table.shape[0]:,} rows of {table.shape[1] if table.ndim == 2 else 0}", path)
            cols = {}
            for j, p in enumerate(el.properties):
                col = table[:, j]
                if p.dtype[0] in "iu":
                    info = np.iinfo(np.dtype(p.dtype))
                    if col.size and (not np.isfinite(col).all() or col.min() < info.min or col.max() > info.max
                                     or (col != np.round(col)).any()):
                        raise FormatError(f"element {el.name!r}: property {p.name!r} holds a value that is not a valid {p.dtype} integer", path)
                cols[p.name] = col.astype(p.dtype)
            out[el.name] = ElementData(cols)
        pos += el.count
    return out


def build_header(fmt: str, elements: list[tuple[str, int, list[tuple[str, str]]]], comments: list[str] = ()) -> bytes:
    """Serialise a PLY header. ``elements`` holds (name, count, [(property, ply_type)])."""
    lines = ["ply", f"format {fmt} 1.0"]
    lines += [f"comment {c}" for c in comments]
    for name, count, props in elements:
        lines.append(f"element {name} {count}")
        lines += [f"property {t} {p}" for p, t in props]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")
