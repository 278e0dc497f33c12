"""The chunked container every codec of ours writes (.gsi, .lgs, .gsv, .m3).

Layout (all integers little-endian; spec in ``docs/formats/container.md``)::

    magic        4 bytes   codec-specific, e.g. b"LGS1"
    version      u16
    reserved     u16       0
    header_len   u32
    header       header_len bytes of UTF-8 JSON (an object)
    header_crc   u32       CRC-32 of every byte above (magic .. header)
    chunk_count  u32
    table        chunk_count x { tag: 4 ASCII bytes, length: u64, crc32: u32 }
    table_crc    u32       CRC-32 of chunk_count and the table
    payloads     the chunks' bytes, in table order, back to back

A reader can fetch the fixed prefix, the header and the table first and then any one
chunk by offset (e.g. with an HTTP range request): chunk i starts at
``payload_start + sum(length[:i])``.
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Sequence

from splat.errors import FormatError
from splat.header import parse_json

_PREFIX = struct.Struct("<4sHHI")
_ENTRY = struct.Struct("<4sQI")
MAX_HEADER = 64 << 20
MAX_CHUNKS = 1 << 20


@dataclass
class Chunk:
    tag: str
    data: bytes


@dataclass
class Container:
    magic: bytes
    version: int
    header: dict
    chunks: list[Chunk] = field(default_factory=list)
    path: str | os.PathLike | None = None

    def get(self, tag: str) -> bytes:
        """The first chunk with this tag (FormatError naming the file if absent)."""
        for c in self.chunks:
            if c.tag == tag:
                return c.data
        raise FormatError(f"missing chunk {tag!r}", self.path)

    def all(self, tag: str) -> list[bytes]:
        return [c.data for c in self.chunks if c.tag == tag]

    def has(self, tag: str) -> bool:
        return any(c.tag == tag for c in self.chunks)


def _tag_bytes(tag: str) -> bytes:
    b = tag.encode("ascii")
    if len(b) != 4:
        raise ValueError(f"chunk tag must be 4 ASCII characters, got {tag!r}")
    return b


def pack_container(magic: bytes, version: int, header: dict, chunks: Sequence[Chunk | tuple[str, bytes]]) -> bytes:
    """Serialise a container. ``header`` must be JSON-serialisable."""
    if len(magic) != 4:
        raise ValueError("magic must be 4 bytes")
    hdr = json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")
    head = _PREFIX.pack(magic, version, 0, len(hdr)) + hdr
    out = [head, struct.pack("<I", zlib.crc32(head))]
    table = [struct.pack("<I", len(chunks))]
    payloads = []
    for c in chunks:
        tag, data = (c.tag, c.data) if isinstance(c, Chunk) else c
        data = bytes(data)
        table.append(_ENTRY.pack(_tag_bytes(tag), len(data), zlib.crc32(data)))
        payloads.append(data)
    tbl = b"".join(table)
    out += [tbl, struct.pack("<I", zlib.crc32(tbl))]
    out += payloads
    return b"".join(out)


@dataclass
class ContainerIndex:
    """Parsed prefix of a container: enough to locate any chunk without reading payloads."""

    magic: bytes
    version: int
    header: dict
    tags: list[str]
    lengths: list[int]
    crcs: list[int]
    payload_start: int
    starts: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # prefix sums once, so offset() is O(1) (re-summing made an index of N chunks O(N^2))
        self.starts = list(accumulate(self.lengths, initial=self.payload_start))

    def offset(self, i: int) -> int:
        """Byte offset of chunk ``i``'s payload."""
        return self.starts[i]

    @property
    def total_size(self) -> int:
        return self.starts[-1]


def read_index(data: bytes | memoryview, *, magic: bytes, path: str | os.PathLike | None = None,
               max_version: int | None = None, what: str = "container", whole: bool = True) -> ContainerIndex:
    """Parse and verify the header and chunk table (not the payloads).

    ``whole``: ``data`` is the entire file, so every chunk must end inside it (pass False
    when only a prefix was fetched, e.g. by a range request).
    """
    mv = memoryview(data)
    if len(mv) < _PREFIX.size:
        raise FormatError(f"truncated {what}: {len(mv)} bytes is shorter than the {_PREFIX.size}-byte prefix", path)
    got_magic, version, _reserved, hlen = _PREFIX.unpack_from(mv, 0)
    if got_magic != magic:
        raise FormatError(f"not a {what}: magic {bytes(got_magic)!r}, expected {magic!r}", path)
    if max_version is not None and version > max_version:
        raise FormatError(f"{what} version {version} is newer than this reader supports (<= {max_version})", path)
    if hlen > MAX_HEADER:
        raise FormatError(f"header length {hlen} is implausible", path)
    end = _PREFIX.size + hlen
    if len(mv) < end + 8:
        raise FormatError(f"truncated {what}: header needs {end + 8} bytes, file has {len(mv)}", path)
    (hcrc,) = struct.unpack_from("<I", mv, end)
    if zlib.crc32(mv[:end]) != hcrc:
        raise FormatError(f"{what} header checksum mismatch (corrupt file)", path)
    header = parse_json(bytes(mv[_PREFIX.size:end]), path, f"{what} header")
    pos = end + 4
    (count,) = struct.unpack_from("<I", mv, pos)
    # the table must fit the bytes we have: this caps the count by the file size
    if count > MAX_CHUNKS or len(mv) < pos + 4 + count * _ENTRY.size + 4:
        raise FormatError(f"truncated or corrupt {what}: chunk table of {count} entries does not fit", path)
    tend = pos + 4 + count * _ENTRY.size
    (tcrc,) = struct.unpack_from("<I", mv, tend)
    if zlib.crc32(mv[pos:tend]) != tcrc:
        raise FormatError(f"{what} chunk table checksum mismatch (corrupt file)", path)
    tags, lengths, crcs = [], [], []
    for i in range(count):
        tag, length, crc = _ENTRY.unpack_from(mv, pos + 4 + i * _ENTRY.size)
        try:
            tags.append(tag.decode("ascii"))
        except UnicodeDecodeError:
            raise FormatError(f"chunk {i} has a non-ASCII tag", path) from None
        lengths.append(int(length))
        crcs.append(int(crc))
    index = ContainerIndex(bytes(got_magic), int(version), header, tags, lengths, crcs, tend + 4)
    if whole and index.total_size > len(mv):
        bad = next(i for i in range(count) if index.starts[i + 1] > len(mv))
        raise FormatError(f"truncated {what}: chunk {bad} ({tags[bad]!r}) ends at byte {index.starts[bad + 1]:,}, "
                          f"file has {len(mv):,}", path)
    return index


def read_chunk(data: bytes | memoryview, index: ContainerIndex, i: int, *, path=None, what: str = "container") -> bytes:
    """Verify and return chunk ``i``'s payload."""
    start = index.offset(i)
    stop = start + index.lengths[i]
    mv = memoryview(data)
    if stop > len(mv):
        raise FormatError(f"truncated {what}: chunk {i} ({index.tags[i]!r}) ends at byte {stop}, file has {len(mv)}", path)
    payload = mv[start:stop]
    if zlib.crc32(payload) != index.crcs[i]:
        raise FormatError(f"{what} chunk {i} ({index.tags[i]!r}) checksum mismatch (corrupt data)", path)
    return bytes(payload)


def unpack_container(data: bytes | memoryview, *, magic: bytes, path: str | os.PathLike | None = None,
                     max_version: int | None = None, what: str = "container") -> Container:
    """Parse and verify a whole container (every checksum)."""
    idx = read_index(data, magic=magic, path=path, max_version=max_version, what=what)
    if idx.total_size != len(data):
        raise FormatError(f"{what} has {len(data) - idx.total_size} trailing bytes after the last chunk", path)
    chunks = [Chunk(t, read_chunk(data, idx, i, path=path, what=what)) for i, t in enumerate(idx.tags)]
    return Container(idx.magic, idx.version, idx.header, chunks, path)
