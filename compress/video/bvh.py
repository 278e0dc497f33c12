"""A small BVH (Biovision hierarchy) motion-capture reader and forward kinematics.

BVH = a HIERARCHY of joints (OFFSET from the parent, CHANNELS: positions and Euler
rotations in degrees, applied in the listed order) and a MOTION block (frame count, frame
time, one line of channel values per frame).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from splat.errors import FormatError

_CHANNELS = {"Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation"}


@dataclass
class Joint:
    name: str
    parent: int              # -1 for the root
    offset: np.ndarray       # [3] from the parent joint
    channels: list[str] = field(default_factory=list)
    end_site: np.ndarray | None = None  # offset of an End Site child, if any


@dataclass
class Motion:
    """A parsed BVH clip. ``values`` [F, C] channel values; joint ``j``'s channels start
    at column ``channel_start[j]``."""

    joints: list[Joint]
    frame_time: float
    values: np.ndarray
    channel_start: list[int]

    @property
    def n_frames(self) -> int:
        return self.values.shape[0]

    @property
    def n_channels(self) -> int:
        return self.values.shape[1]

    def global_transforms(self, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Forward kinematics for every frame: rotations [F,J,3,3] and positions [F,J,3]
        (world space, times ``scale``)."""
        F, J = self.n_frames, len(self.joints)
        rots = np.zeros((F, J, 3, 3))
        pos = np.zeros((F, J, 3))
        for j, jt in enumerate(self.joints):
            local_r = np.tile(np.eye(3), (F, 1, 1))
            local_t = np.tile(jt.offset, (F, 1)).astype(np.float64)
            c0 = self.channel_start[j]
            for c, name in enumerate(jt.channels):
                v = self.values[:, c0 + c]
                axis = "XYZ".index(name[0])
                if name.endswith("position"):
                    local_t[:, axis] += v
                else:
                    local_r = local_r @ _axis_rotation(axis, np.radians(v))
            if jt.parent < 0:
                rots[:, j], pos[:, j] = local_r, local_t
            else:
                p = jt.parent
                rots[:, j] = rots[:, p] @ local_r
                pos[:, j] = pos[:, p] + (rots[:, p] @ local_t[:, :, None])[:, :, 0]
        return rots, pos * scale


def _axis_rotation(axis: int, ang: np.ndarray) -> np.ndarray:
    c, s = np.cos(ang), np.sin(ang)
    m = np.zeros((len(ang), 3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    m[:, axis, axis] = 1
    m[:, i, i] = c
    m[:, j, j] = c
    m[:, i, j] = -s
    m[:, j, i] = s
    return m


def parse_bvh(text: str, path: str | os.PathLike | None = None) -> Motion:
    """Parse BVH text (FormatError naming the file on malformed input)."""
    tok = text.split()
    pos = 0

    def take() -> str:
        nonlocal pos
        if pos >= len(tok):
            raise FormatError("unexpected end of BVH file", path)
        pos += 1
        return tok[pos - 1]

    def num() -> float:
        t = take()
        try:
            return float(t)
        except ValueError:
            raise FormatError(f"expected a number, got {t!r}", path) from None

    if take() != "HIERARCHY":
        raise FormatError("not a BVH file: missing HIERARCHY", path)
    joints: list[Joint] = []
    starts: list[int] = []
    n_ch = 0
    stack: list[int] = []
    kw = take()
    if kw != "ROOT":
        raise FormatError(f"expected ROOT, got {kw!r}", path)
    pending = ("joint", take())
    while True:
        kind, name = pending
        if take() != "{":
            raise FormatError(f"expected '{{' after {name}", path)
        if take() != "OFFSET":
            raise FormatError(f"joint {name} lacks an OFFSET", path)
        off = np.array([num(), num(), num()])
        if kind == "end":
            if take() != "}":
                raise FormatError("End Site block not closed", path)
            if not stack:
                raise FormatError("End Site outside a joint", path)
            joints[stack[-1]].end_site = off
        else:
            if take() != "CHANNELS":
                raise FormatError(f"joint {name} lacks CHANNELS", path)
            cnt = int(num())
            chans = [take() for _ in range(cnt)]
            bad = [c for c in chans if c not in _CHANNELS]
            if bad:
                raise FormatError(f"joint {name} has unknown channels {bad}", path)
            joints.append(Joint(name, stack[-1] if stack else -1, off, chans))
            starts.append(n_ch)
            n_ch += cnt
            stack.append(len(joints) - 1)
        # children or close
        while True:
            t = take()
            if t == "JOINT":
                pending = ("joint", take())
                break
            if t == "End":
                take()  # "Site"
                pending = ("end", "End Site")
                break
            if t == "}":
                if not stack:
                    raise FormatError("unbalanced braces", path)
                stack.pop()
                if not stack:
                    pending = None
                    break
                continue
            raise FormatError(f"unexpected token {t!r} in HIERARCHY", path)
        if pending is None:
            break
    if take() != "MOTION":
        raise FormatError("missing MOTION section", path)
    if take() != "Frames:":
        raise FormatError("missing 'Frames:'", path)
    frames = int(num())
    if take() != "Frame" or take() != "Time:":
        raise FormatError("missing 'Frame Time:'", path)
    ft = num()
    need = frames * n_ch
    rest = tok[pos:pos + need]
    if len(rest) < need:
        raise FormatError(f"MOTION holds {len(rest)} values, expected {frames} frames x {n_ch} channels = {need}", path)
    try:
        vals = np.asarray(rest, dtype=np.float64).reshape(frames, n_ch)
    except ValueError:
        raise FormatError("MOTION holds a non-numeric value", path) from None
    if not np.isfinite(vals).all():
        raise FormatError("MOTION holds non-finite values", path)
    return Motion(joints, ft, vals, starts)


def read_bvh(path: str | os.PathLike) -> Motion:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        raise FormatError("file not found", path) from None
    return parse_bvh(text, path)
