"""The ``.gsv`` volumetric-video container: encode a Gaussian sequence, random-access decode.

File = the shared chunked container (``compress/container.py``) with magic ``GSV1``: a JSON
header (fps, frame count, Gaussian count, SH degree, gop, tracked flag, coding mode, bounds,
per-segment first frame and frame count) and one ``SEGM`` chunk per segment. The chunk table gives each
segment's byte offset, size and CRC-32, so a player can fetch and verify one segment alone.
Spec: ``docs/formats/gsv.md``.
"""
from __future__ import annotations

import glob as _glob
import mmap
import os
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from compress.container import pack_container, read_chunk, read_index
from compress.scene.codec import QuantConfig
from splat.errors import FormatError, UsageError
from splat.header import get_float, get_int, get_typed
from splat.limits import require_at_most, value_cap
from splat.progress import NullProgress, Progress
from splat.scene import GaussianScene

if TYPE_CHECKING:
    from .tracking import TrackSettings

from .segment import (INTRA, TRACKED, DecodedSegment, SegmentSettings, encode_intra, encode_keyframe,
                      encode_tracked)

MAGIC = b"GSV1"
VERSION = 2  # 2: re-sorted clips (tracked segments with encoder-chosen order, deaths, births)
MODES = ("tracked", "resorted", "independent")

QUALITY = {
    # name: (position-correction factor x median scale, rotation bits, colour threshold)
    "low": (0.6, 12, 6.0 / 255.0),
    "medium": (0.35, 14, 3.0 / 255.0),
    "high": (0.15, 16, 1.5 / 255.0),
}


@dataclass
class VideoSettings:
    """Encoder settings. gop: frames per segment; quality: low/medium/high preset;
    mode: "tracked" (same Gaussians, same order every frame), "resorted" (the encoder
    recovers correspondence; births and deaths), "independent" (intra per frame), None =
    detect (:func:`detect_mode`). tracked: the older switch (True = "tracked", False =
    "independent"), used when mode is None. track: in independent mode, carry each
    keyframe's Gaussians forward by render-supervised tracking (``tracking.py``: motion,
    then a colour refresh when the moved set misses the target) instead of coding every
    frame intra; target_psnr: held-out render PSNR (dB) every decoded frame of such a segment
    must reach (measured on the decoded segment), else that frame starts a new segment."""

    fps: float = 30.0
    gop: int = 30
    quality: str = "medium"
    tracked: bool | None = None
    mode: str | None = None
    track: bool = True
    target_psnr: float = 35.0
    tracking: "TrackSettings | None" = None  # views, iterations, ... (None: defaults); target_psnr wins
    joint_fraction: float = 0.02
    k: int = 8
    # Keyframes are .lgs version 1 (no context-modelled streams): on the 50k performer the
    # context streams save 8% of the clip but add 50% to each keyframe's decode (127 -> 191 ms),
    # which takes one-thread playback below 60 fps (bench/video_decode.py).
    quant: QuantConfig = field(default_factory=lambda: QuantConfig(scale_bits=7, rotation_bits=7, opacity_bits=6,
                                                                   context_coding=False))

    def segment_settings(self) -> SegmentSettings:
        if self.quality not in QUALITY:
            raise UsageError(f"unknown quality {self.quality!r} (choose {', '.join(QUALITY)})")
        f, rb, ct = QUALITY[self.quality]
        return SegmentSettings(quant=self.quant, joint_fraction=self.joint_fraction, k=self.k, rot_bits=rb,
                               pos_factor=f, colour_threshold=ct)


@dataclass
class VideoInfo:
    """What a ``.gsv`` header says. bounds: [3] float32 over every frame's means."""

    fps: float
    n_frames: int
    n_gaussians: int  # max per frame
    sh_degree: int
    gop: int
    tracked: bool
    bounds_min: np.ndarray
    bounds_max: np.ndarray
    n_segments: int
    total_bytes: int
    segment_first: list = field(default_factory=list, repr=False)  # first frame of each segment
    segment_frames: list = field(default_factory=list, repr=False)  # frame count of each segment
    coding: str = "tracked"  # tracked, resorted or independent (version 1 files: from the tracked flag)

    def segment_of(self, frame: int) -> int:
        """Index of the segment holding ``frame``."""
        if not 0 <= frame < self.n_frames:
            raise IndexError(f"frame {frame} outside 0..{self.n_frames - 1}")
        return int(np.searchsorted(np.asarray(self.segment_first), frame, side="right") - 1)


@dataclass
class EncodeResult:
    """Encoded bytes plus a report: bytes per stream (summed over segments), per-segment
    bytes and modes, per-frame Gaussian counts, and timing."""

    data: bytes
    info: VideoInfo
    stream_bytes: dict
    segment_bytes: list
    segment_modes: list
    frame_counts: list
    encode_s: float
    tracked_detected: bool
    mode: str = "tracked"
    mode_detected: str = "tracked"


# ---------------------------------------------------------------------- input
def _natural_key(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def read_frames(source: str | os.PathLike | Sequence) -> list[Path]:
    """Frame files from a folder, a glob pattern or a list, sorted naturally
    (frame_2 before frame_10). Any format ``splat.io`` reads."""
    from splat.io import list_formats

    if isinstance(source, (list, tuple)):
        paths = [Path(p) for p in source]
    else:
        s = str(source)
        p = Path(s)
        if p.is_dir():
            exts = {e.lower() for spec in list_formats() for e in getattr(spec, "extensions", ())}
            paths = [q for q in p.iterdir() if q.is_file() and (not exts or any(q.name.lower().endswith(e) for e in exts))]
        elif any(ch in s for ch in "*?["):
            paths = [Path(q) for q in _glob.glob(s)]
        elif p.is_file():
            paths = [p]
        else:
            raise UsageError(f"{s}: no such folder, file or glob")
    paths = sorted(paths, key=lambda q: _natural_key(q.name))
    if not paths:
        raise UsageError(f"{source}: no frame files found")
    return paths


def is_tracked(frames: Sequence[GaussianScene], sample: int = 2048, pairs: int = 3) -> bool:
    """Whether consecutive frames share Gaussian order. On a few frame pairs, for a sample
    of Gaussians, the same index in the next frame must be the same Gaussian for >= 80% of
    the sample: either within 5% of the scene diagonal, or (however far it moved) with the
    same motion-invariant appearance (opacity and sorted scales within 1%). After a shuffle,
    same-index pairs are random pairs and fail both."""
    if len(frames) < 2:
        return True
    n = len(frames[0])
    if any(len(f) != n for f in frames) or n == 0:
        return False
    g = torch.Generator().manual_seed(0)
    steps = np.unique(np.linspace(0, len(frames) - 2, min(pairs, len(frames) - 1)).round().astype(int))
    for s in steps:
        a, b = frames[s], frames[s + 1]
        idx = torch.randperm(n, generator=g)[:sample]
        pa, pb = a.means.float(), b.means.float()
        diag = (pa.quantile(0.98, 0) - pa.quantile(0.02, 0)).norm() if n > 1 else torch.tensor(1.0)
        near = (pa[idx] - pb[idx]).norm(dim=1) <= 0.05 * diag + 1e-9
        sa = torch.sort(a.log_scales[idx].float(), 1).values
        sb = torch.sort(b.log_scales[idx].float(), 1).values
        same = ((sa - sb).abs().amax(1) <= 0.01) & ((a.opacities[idx] - b.opacities[idx]).abs() <= 0.01)
        if (near | same).float().mean() < 0.8:
            return False
    return True


def detect_mode(frames: Sequence[GaussianScene], pairs: int = 3, matched: float = 0.3,
                quant: QuantConfig | None = None, segment: SegmentSettings | None = None) -> str:
    """``"tracked"`` when consecutive frames share Gaussian order (:func:`is_tracked`).
    Otherwise the correspondence runs first (:func:`~compress.video.register.register_frames`,
    which survives large motion) on a few frame pairs; when it pairs at least ``matched``
    of the Gaussians, the mode is chosen by measured cost: the pair with the fewest matches
    is coded both ways (a re-sorted two-frame segment, and the second frame intra), and
    ``"resorted"`` wins when its predicted frame costs at most half the intra frame (the
    independent path's tracking by rendering typically reaches about a third of intra).
    Else ``"independent"``."""
    if is_tracked(frames):
        return "tracked"
    from .register import register_frames

    steps = np.unique(np.linspace(0, len(frames) - 2, min(pairs, len(frames) - 1)).round().astype(int))
    shares = []
    for s in steps:
        a, b = frames[s], frames[s + 1]
        m = register_frames(a, b).match
        shares.append(float((m >= 0).sum()) / max(len(a), len(b), 1))
    if min(shares) < matched:
        return "independent"
    worst = int(steps[int(np.argmin(shares))])
    quant = quant or VideoSettings().quant
    seg_st = segment or VideoSettings().segment_settings()
    pair = [frames[worst], frames[worst + 1]]
    _, rep = encode_tracked(pair, seg_st, match=True)
    predicted = sum(v for k, v in rep.items() if isinstance(v, int) and k.isupper() and k != "KEYF")
    intra, _ = encode_intra(pair[1:], quant)
    return "resorted" if predicted <= 0.5 * len(intra) else "independent"


# ---------------------------------------------------------------------- encode
def _choose_mode(st: VideoSettings, scenes: list[GaussianScene]) -> tuple[str, str]:
    """(mode used, mode detected)."""
    forced = st.mode if st.mode is not None else (None if st.tracked is None else ("tracked" if st.tracked else "independent"))
    if forced is not None and forced not in MODES:
        raise UsageError(f"unknown mode {forced!r} (choose {', '.join(MODES)})")
    detected = (detect_mode(scenes, quant=st.quant, segment=st.segment_settings())
                if forced is None or forced == "tracked" else forced)
    mode = forced or detected
    if mode == "tracked" and len({len(s) for s in scenes}) > 1:
        raise UsageError("tracked coding needs the same Gaussian count in every frame "
                         f"(counts range {min(len(s) for s in scenes)}..{max(len(s) for s in scenes)}); "
                         "use mode resorted")
    return mode, detected


def _encode_segment(job: tuple) -> tuple[bytes, dict, str, int]:
    """Encode the start of a segment ``job = (frames, mode, settings, segment settings, check
    views)``: (bytes, report, segment mode, frames used). Tracked and re-sorted input uses
    every frame; independent input with tracking uses the frames the keyframe's Gaussians can
    be carried through at ``target_psnr`` on the check views (at least one): the decoded
    segment is measured frame by frame and ends before the first frame below the target,
    which then starts the next segment. Runs in a worker (module-level)."""
    seg, mode, st, seg_st, check = job
    if len(seg[0]) < 8:
        blob, rep = encode_intra(seg, st.quant)
        return blob, rep, INTRA, len(seg)
    if mode != "independent":
        blob, rep = encode_tracked(seg, seg_st, match=mode == "resorted")
        return blob, rep, TRACKED, len(seg)
    if not st.track or len(seg) < 2:
        blob, rep = encode_intra(seg, st.quant)
        return blob, rep, INTRA, len(seg)
    from .tracking import TrackSettings, track_frames

    ts = replace(st.tracking or TrackSettings(), target_psnr=st.target_psnr, joint_fraction=st.joint_fraction,
                 k=st.k)  # the codec's skinning, so its transforms fit the carried frames
    key_blob, key, _ = encode_keyframe(seg[0], st.quant)
    tr = track_frames(seg, ts, key=key, held=check)
    m, checks = len(tr.frames), 0
    while m >= 2:
        # closed loop: every decoded frame must reach the target, or the segment ends before it
        blob, rep = encode_tracked(tr.frames[:m], seg_st, keyframe=(key_blob, key),
                                   transforms=np.stack(tr.transforms[:m]),
                                   deaths=tr.deaths[:m] if any(len(d) for d in tr.deaths[:m]) or any(tr.births[:m])
                                   else None)
        checks += 1
        short = _first_short(blob, seg[:m], check, st.target_psnr)
        if short is None:
            break
        m = short
    if m < 2:
        blob, rep = encode_intra(seg[:1], st.quant)
        rep["closed_loop_checks"] = checks
        return blob, rep, INTRA, 1
    rep["tracked_by_rendering"] = m
    rep["colour_refreshes"] = sum(tr.refreshed[:m])
    rep["closed_loop_checks"] = checks
    return blob, rep, TRACKED, m


def _first_short(blob: bytes, originals: list[GaussianScene], cams: list, target: float) -> int | None:
    """The first predicted frame of the segment ``blob`` whose decoded renders miss ``target``
    dB against ``originals`` from ``cams`` (the clip's held-out views), or None."""
    from .fidelity import held_psnr, render_views

    seg = DecodedSegment(blob)
    for f in range(1, seg.frames):
        if held_psnr(seg.frame(f), render_views(originals[f], cams), cams) < target:
            return f
    return None


def encode_video(frames: Sequence[GaussianScene | str | os.PathLike], settings: VideoSettings | None = None,
                 progress: Progress | None = None, *, workers: int = 1, address: str | None = None) -> EncodeResult:
    """Encode frames (scenes or paths) into ``.gsv`` bytes. ``progress``: one stage,
    "encoding", advanced by each segment's frame count. ``workers``/``address``: encode the
    segments as Ray tasks (:func:`splat.workers.run_tasks`); the bytes are the same."""
    from splat.workers import check_workers, run_tasks

    check_workers(workers, address)
    from splat.io import read_scene

    st = settings or VideoSettings()
    if st.tracked is False and st.mode is None:  # --untracked: plain intra coding, no tracking by rendering
        st = replace(st, track=False)
    if st.gop < 1:
        raise UsageError("gop must be >= 1")
    if not st.fps > 0:
        raise UsageError("fps must be > 0")
    seg_st = st.segment_settings()
    t0 = time.perf_counter()
    scenes = [read_scene(f) if not isinstance(f, GaussianScene) else f for f in frames]
    if not scenes:
        raise UsageError("no frames to encode")
    scenes = [s.to(dtype=torch.float32) for s in scenes]
    for i, s in enumerate(scenes):
        try:
            s.check_finite()
        except ValueError as e:
            raise UsageError(f"frame {i}: {e}") from None
    deg = max(s.sh_degree for s in scenes)
    scenes = [s if s.sh_degree == deg else s.with_sh_degree(deg) for s in scenes]
    mode, detected = _choose_mode(st, scenes)
    chunks, seg_meta, modes, seg_bytes = [], [], [], []
    streams: dict[str, int] = {}
    total = len(scenes)
    if mode == "independent" and st.track:
        # segment lengths follow tracking by rendering, so segments are encoded one after another
        results = []
        from .fidelity import eval_cameras

        check = eval_cameras(scenes[0])  # the views `splat video eval` measures: the clip's first frame's
        pg = progress or NullProgress()
        pg.start("encoding", total)
        first = 0
        while first < total:
            r = _encode_segment((scenes[first:first + st.gop], mode, st, seg_st, check))
            results.append((first, r))
            first += r[3]
            pg.advance(r[3], f"segment {len(results)} ({r[2]})")
        pg.end()
    else:
        firsts = list(range(0, total, st.gop))
        jobs = [(scenes[f:f + st.gop], mode, st, seg_st, None) for f in firsts]
        done = run_tasks(_encode_segment, jobs, workers=workers, address=address, progress=progress,
                         desc="encoding", units=[len(j[0]) for j in jobs])
        results = list(zip(firsts, done))
    for first, (blob, rep, seg_mode, used) in results:
        for kk, v in rep.items():
            if isinstance(v, int):
                streams[kk] = streams.get(kk, 0) + v
        chunks.append(("SEGM", blob))
        seg_meta.append({"first": first, "frames": used, "mode": seg_mode})
        modes.append(seg_mode)
        seg_bytes.append(len(blob))
    lo = torch.stack([s.means.min(0).values if len(s) else torch.zeros(3) for s in scenes]).min(0).values.numpy()
    hi = torch.stack([s.means.max(0).values if len(s) else torch.zeros(3) for s in scenes]).max(0).values.numpy()
    header = {
        "fps": float(st.fps), "frames": total, "gaussians": max(len(s) for s in scenes), "sh_degree": deg,
        "gop": st.gop, "tracked": mode != "independent", "coding": mode,
        "bounds_min": [float(x) for x in lo], "bounds_max": [float(x) for x in hi],
        "segments": seg_meta, "settings": {"quality": st.quality, "joint_fraction": st.joint_fraction, "k": st.k,
                                           "quant": asdict(st.quant)},
    }
    data = pack_container(MAGIC, VERSION, header, chunks)
    info = _info_from_header(header, len(data), None)
    return EncodeResult(data, info, streams, seg_bytes, modes, [len(s) for s in scenes],
                        time.perf_counter() - t0, detected == "tracked", mode, detected)


def write_video(frames, path: str | os.PathLike, settings: VideoSettings | None = None,
                progress: Progress | None = None, *, workers: int = 1, address: str | None = None) -> EncodeResult:
    """Encode and write atomically (after every segment is in)."""
    from splat.atomic import atomic_write_bytes

    res = encode_video(frames, settings, progress, workers=workers, address=address)
    atomic_write_bytes(path, res.data)
    return res


# ---------------------------------------------------------------------- decode
def _info_from_header(h: dict, total: int, path) -> VideoInfo:
    """The clip's :class:`VideoInfo`, every field checked for type, range and finiteness."""
    w, big = ".gsv header", 1 << 40
    segs = get_typed(h, "segments", list, path, w)
    if not all(isinstance(s, dict) for s in segs):
        raise FormatError(".gsv segment list is malformed", path)
    first = [get_int(s, "first", 0, big, path, ".gsv segment") for s in segs]
    counts = [get_int(s, "frames", 1, big, path, ".gsv segment") for s in segs]
    bounds = []
    for key in ("bounds_min", "bounds_max"):
        b = get_typed(h, key, list, path, w)
        if len(b) != 3 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) <= 1e30 for x in b):
            raise FormatError(f".gsv header field {key!r} must be 3 finite numbers", path)
        bounds.append(np.asarray(b, dtype=np.float32))
    info = VideoInfo(
        fps=get_float(h, "fps", 1e-6, 1e6, path, w), n_frames=get_int(h, "frames", 0, big, path, w),
        n_gaussians=get_int(h, "gaussians", 0, big, path, w), sh_degree=get_int(h, "sh_degree", 0, 3, path, w),
        gop=get_int(h, "gop", 1, big, path, w), tracked=get_typed(h, "tracked", bool, path, w),
        bounds_min=bounds[0], bounds_max=bounds[1],
        n_segments=len(segs), total_bytes=total, segment_first=first, segment_frames=counts,
        coding=get_typed(h, "coding", str, path, w) if "coding" in h else ("tracked" if h["tracked"] else "independent"),
    )
    expect = 0
    for f, c in zip(first, counts):
        if f != expect:
            raise FormatError(".gsv segment list is inconsistent", path)
        expect += c
    if expect != info.n_frames:
        raise FormatError(f".gsv header is inconsistent: segments hold {expect} frames, header says {info.n_frames}", path)
    if info.coding not in MODES:
        raise FormatError(f".gsv header has an unknown coding {info.coding[:40]!r}", path)
    return info


class VideoReader:
    """Random access over a ``.gsv`` file (path, memory-mapped) or bytes.

    ``frame(i)`` decodes frame i; the current segment's decoded state is cached, so
    sequential access costs one skinning step per frame. Not thread-safe: use one reader
    per thread (``FrameStream`` owns its own).
    """

    def __init__(self, path_or_bytes: str | os.PathLike | bytes | bytearray | memoryview, *, partial: bool = False):
        """``partial``: open a truncated file anyway (segments that end past the end of the
        file raise FormatError when read; the others decode). By default truncation is an
        error here, at open."""
        self._file = None
        self._mm = None
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            self.path = None
            self._data = memoryview(bytes(path_or_bytes))
        else:
            self.path = os.fspath(path_or_bytes)
            try:
                self._file = open(self.path, "rb")
            except FileNotFoundError:
                raise FormatError("file not found", self.path) from None
            except IsADirectoryError:
                raise FormatError("is a directory, expected a .gsv file", self.path) from None
            except OSError as e:
                raise FormatError(f"cannot read file ({e.strerror or e})", self.path) from None
            size = os.fstat(self._file.fileno()).st_size
            if size == 0:
                self._file.close()
                raise FormatError("empty file, not a .gsv video", self.path)
            self._mm = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self._data = memoryview(self._mm)
        self._index = read_index(self._data, magic=MAGIC, path=self.path, max_version=VERSION, what=".gsv file",
                                 whole=not partial)
        self.info = _info_from_header(self._index.header, len(self._data), self.path)
        if len(self._index.tags) != self.info.n_segments:
            raise FormatError(f".gsv file has {len(self._index.tags)} segment chunks, header lists {self.info.n_segments}",
                              self.path)
        for s, (frames, nbytes) in enumerate(zip(self.info.segment_frames, self._index.lengths)):
            require_at_most(frames, value_cap(nbytes), f"segment {s}'s frame count", self.path)
        self._seg_id = -1
        self._seg: DecodedSegment | None = None

    def segment_bytes(self, s: int) -> int:
        """Byte size of segment ``s``."""
        return int(self._index.lengths[s])

    def segment_range(self, s: int) -> tuple[int, int]:
        """(offset, length) of segment ``s`` in the file (for range requests)."""
        return self._index.offset(s), self._index.lengths[s]

    def segment(self, s: int) -> DecodedSegment:
        """Parse and verify segment ``s`` (FormatError naming file and segment if bad)."""
        if s == self._seg_id and self._seg is not None:
            return self._seg
        if not 0 <= s < self.info.n_segments:
            raise IndexError(f"segment {s} outside 0..{self.info.n_segments - 1}")
        try:
            blob = read_chunk(self._data, self._index, s, path=None, what=".gsv file")
            seg = DecodedSegment(blob)
        except FormatError as e:
            raise FormatError(f"segment {s} (frames {self.info.segment_first[s]}..): {e.reason}", self.path) from None
        counts = self.info.segment_frames
        if seg.frames != counts[s]:
            raise FormatError(f"segment {s} holds {seg.frames} frames, header says {counts[s]}", self.path)
        self._seg_id, self._seg = s, seg
        return seg

    def frame(self, i: int) -> GaussianScene:
        """Decode frame ``i`` (0-based)."""
        s = self.info.segment_of(i)
        seg = self.segment(s)
        try:
            return seg.frame(i - self.info.segment_first[s])
        except FormatError as e:
            raise FormatError(f"frame {i} (segment {s}): {e.reason}", self.path) from None

    def __len__(self) -> int:
        return self.info.n_frames

    def __iter__(self):
        for i in range(self.info.n_frames):
            yield self.frame(i)

    def close(self) -> None:
        self._seg = None
        self._data = None
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:
                pass
            self._mm = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def decode_video(data: bytes | bytearray | memoryview) -> list[GaussianScene]:
    """Decode every frame of ``.gsv`` bytes (one scene per frame; to stream a long clip with
    bounded memory use :class:`VideoReader`)."""
    with VideoReader(data) as reader:
        return list(reader)


def read_video(path: str | os.PathLike) -> list[GaussianScene]:
    """Read every frame of a ``.gsv`` file (see :func:`decode_video`)."""
    with VideoReader(path) as reader:
        return list(reader)


def read_video_info(path: str | os.PathLike) -> VideoInfo:
    with VideoReader(path) as r:
        return r.info
