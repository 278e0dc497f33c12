"""The ``.lgs`` codec: a :class:`GaussianScene` <-> bytes (spec in ``docs/formats/lgs.md``).

:func:`encode` quantizes every attribute and entropy-codes it into the shared chunked
container (magic ``LGS1``); :func:`decode` inverts it. Encoding is deterministic for the
same scene, weights and settings (k-means is seeded); decoding uses integer arithmetic
and fixed float64 -> float32 dequantization, so it is deterministic too.

Extra per-Gaussian channels (``scene.extras``) are not stored.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np
import torch

from compress.container import pack_container, unpack_container
from splat.errors import FormatError, naming
from splat.header import get_int, get_typed
from splat.io._common import make_scene, read_bytes
from splat.limits import gaussian_cap, require_at_most
from splat.scene import GaussianScene, sh_rest_count

from .positions import MAX_BITS, PositionGrid, decode_positions, encode_positions, morton_order
from .quantize import SHCode, UniformQuant, decode_rotations, decode_vectree_sh, encode_rotations, vectree_sh
from .precision import MAX_DROP, coarsen_by, precision_classes, refine_by, refine_dequantize, significance_classes
from .stream_contexts import colour_context, rotation_contexts, scale_context, sh_context, with_class
from .streams import outside_range, decode_channels, encode_channels

MAGIC = b"LGS1"
VERSION = 3  # 2: context-modelled channel records (mode 2); 3: significance classes; older files still decode
MIN_POSITION_BITS = 12
MAX_COUNT = 1 << 28


@dataclass
class QuantConfig:
    """Quantization settings (bits are per value unless stated).

    position_bits: grid bits per axis (12..21). rotation_bits: per smallest-three component.
    sh_codebook: codebook entries, capped at ``sh_codebook_fraction`` x the number of
    codebook-coded Gaussians (a codebook as large as the data would cost more than it saves).
    sh_direct_fraction: the most significant fraction whose SH rest is stored directly.
    context_coding: context-modelled streams (``.lgs`` version 2; False writes version 1).
    low_fraction / low_drop: the least significant fraction of the Gaussians stores scales,
    rotations and colour ``low_drop`` bits coarser (version 2, needs ``weights``).
    max_drop / drop_reference: significance classes instead (version 3, needs ``weights``):
    a Gaussian stores them round(0.5 log2(w_ref / w)) bits coarser, at most ``max_drop``,
    w_ref the ``drop_reference`` quantile of the weights (0: off).
    """

    position_bits: int = 16
    scale_bits: int = 8
    rotation_bits: int = 8
    opacity_bits: int = 8
    dc_bits: int = 8
    sh_codebook: int = 8192
    sh_codebook_fraction: float = 0.125
    sh_codebook_bits: int = 8
    sh_direct_fraction: float = 0.05
    sh_direct_bits: int = 8
    kmeans_iters: int = 10
    seed: int = 0
    context_coding: bool = True
    low_fraction: float = 0.0
    low_drop: int = 2
    max_drop: int = 0
    drop_reference: float = 0.99

    def validate(self) -> None:
        if not MIN_POSITION_BITS <= self.position_bits <= MAX_BITS:
            raise ValueError(f"position_bits must be {MIN_POSITION_BITS}..{MAX_BITS}, got {self.position_bits}")
        for name in ("scale_bits", "rotation_bits", "opacity_bits", "dc_bits", "sh_codebook_bits", "sh_direct_bits"):
            b = getattr(self, name)
            if not 1 <= b <= 16:
                raise ValueError(f"{name} must be 1..16, got {b}")
        if self.sh_codebook < 1:  # 0 entries would leave the non-direct Gaussians without SH
            raise ValueError(f"sh_codebook must be >= 1, got {self.sh_codebook}")
        if not 0.0 < self.sh_codebook_fraction <= 1.0:
            raise ValueError("sh_codebook_fraction must be in (0, 1]")
        if not 0.0 <= self.sh_direct_fraction <= 1.0:
            raise ValueError("sh_direct_fraction must be in [0, 1]")
        if not 0.0 <= self.low_fraction < 1.0:
            raise ValueError("low_fraction must be in [0, 1)")
        if not 0 <= self.low_drop <= min(MAX_DROP, self.scale_bits - 1, self.rotation_bits - 1, self.dc_bits - 1):
            raise ValueError("low_drop must leave at least one bit of scale, rotation and colour")
        if not 0 <= self.max_drop <= min(MAX_DROP, self.scale_bits - 1, self.rotation_bits - 1, self.dc_bits - 1):
            raise ValueError("max_drop must leave at least one bit of scale, rotation and colour")
        if self.max_drop and self.low_fraction:
            raise ValueError("use either significance classes (max_drop) or low_fraction, not both")
        if not 0.0 < self.drop_reference <= 1.0:
            raise ValueError("drop_reference must be in (0, 1]")


@dataclass
class EncodeReport:
    """Bytes per stream (chunk tag -> payload bytes), total file bytes, and the order permutation
    (stored index -> input index)."""

    stream_bytes: dict[str, int]
    total_bytes: int
    count: int
    permutation: np.ndarray = field(repr=False, default=None)


STREAM_NAMES = {
    "POSN": "positions",
    "OPAC": "opacity",
    "SCAL": "scales",
    "ROTI": "rotation index",
    "ROTV": "rotation",
    "COLR": "SH DC (colour)",
    "SHIX": "SH codebook indices",
    "SHCB": "SH codebook",
    "SHDR": "SH direct",
    "PCLS": "precision classes",
}


def colour_transform(q: np.ndarray) -> np.ndarray:
    """Lossless decorrelation of quantized (r, g, b) [N,3] -> (g, r - g, b - g)."""
    return np.stack([q[:, 1], q[:, 0] - q[:, 1], q[:, 2] - q[:, 1]], axis=1)


def inverse_colour_transform(t: np.ndarray) -> np.ndarray:
    return np.stack([t[:, 1] + t[:, 0], t[:, 0], t[:, 2] + t[:, 0]], axis=1)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy()


def _rows(t: torch.Tensor, perm: np.ndarray) -> np.ndarray:
    """``t``'s rows in storage order ``perm``, float64 (gathered before the promotion, so
    no float64 copy of the whole input is made)."""
    x = t.detach().cpu()
    x = x if x.dtype in (torch.float32, torch.float64) else x.float()
    return x.numpy()[perm].astype(np.float64)


def encode(scene: GaussianScene, weights: torch.Tensor | np.ndarray | None = None,
           config: QuantConfig | None = None) -> tuple[bytes, EncodeReport]:
    """Compress ``scene`` to ``.lgs`` bytes. ``weights`` [N] (significance) steers the SH
    codebook and picks the Gaussians whose SH is stored directly (uniform when None)."""
    cfg = config or QuantConfig()
    cfg.validate()
    n = len(scene)
    if n > MAX_COUNT:
        raise ValueError(f"too many Gaussians for one .lgs file ({n} > {MAX_COUNT})")
    scene.check_finite()
    means = _np(scene.means)
    grid = PositionGrid.fit(means, cfg.position_bits)
    perm, codes = morton_order(means, grid)
    w = np.ones(n) if weights is None else np.asarray(torch.as_tensor(weights).detach().cpu().double().numpy()).reshape(n)

    ctx = cfg.context_coding
    opac = _rows(scene.opacities, perm)[:, None]
    oq = UniformQuant.fit(opac, cfg.opacity_bits)
    ls = _rows(scene.log_scales, perm)
    sq = UniformQuant.fit(ls, cfg.scale_bits)
    rot_idx, rot_vals = encode_rotations(_rows(scene.quats, perm), cfg.rotation_bits)
    dc = _rows(scene.sh_dc, perm)
    cq = UniformQuant.fit(dc, cfg.dc_bits)
    cls, table = _classes(cfg, w[perm] if weights is not None and ctx else None)
    drops = None if cls is None else np.asarray(table, dtype=np.int64)[cls]
    nc = len(table)
    opq = oq.quantize(opac)
    lsq = coarsen_by(sq.quantize(ls), drops)
    rot_vals = coarsen_by(rot_vals, drops)
    rot_idx_ctx, rot_val_ctx = rotation_contexts(sq.dequantize(refine_by(lsq, drops, sq.levels)), rot_idx,
                                                 cfg.rotation_bits)

    def chans(q, context=None, allow_delta=True) -> bytes:
        return encode_channels(q, allow_delta=allow_delta, context=context, allow_context=ctx)

    dcq = coarsen_by(cq.quantize(dc), drops)
    dc_ctx = with_class(colour_context(opq[:, 0], cfg.opacity_bits, cfg.dc_bits), cls, nc)
    colr, colour_mode = min((chans(dcq, dc_ctx), "none"), (chans(colour_transform(dcq), dc_ctx), "g,r-g,b-g"),
                            key=lambda c: len(c[0]))
    header = {
        "count": n,
        "sh_degree": scene.sh_degree,
        "positions": grid.to_json(),
        "opacity": oq.to_json(),
        "log_scales": sq.to_json(),
        "rotation": {"bits": cfg.rotation_bits, "scheme": "smallest-three"},
        "sh_dc": {**cq.to_json(), "transform": colour_mode},
        "settings": asdict(cfg),
    }
    chunks = [("POSN", encode_positions(codes))]
    if cls is not None:
        header["precision"] = ({"low_count": int(cls.sum()), "drop": table[1]} if cfg.max_drop == 0
                               else {"drops": list(table)})
        chunks.append(("PCLS", chans(cls)))
    chunks += [
        ("OPAC", chans(opq)),
        ("SCAL", chans(lsq, with_class(scale_context(opq[:, 0], cfg.opacity_bits, cfg.scale_bits), cls, nc))),
        ("ROTI", chans(rot_idx, rot_idx_ctx)),
        ("ROTV", chans(rot_vals, with_class(rot_val_ctx, cls, nc))),
        ("COLR", colr),
    ]
    k = sh_rest_count(scene.sh_degree)
    if k:
        rest = scene.sh_rest.detach().cpu().float().numpy()  # gathered in storage order inside (float32)
        n_cb = n - int(round(cfg.sh_direct_fraction * n))
        code = vectree_sh(
            rest, w[perm], rows=perm, codebook_size=min(cfg.sh_codebook, max(1, int(cfg.sh_codebook_fraction * n_cb))), direct_fraction=cfg.sh_direct_fraction,
            codebook_bits=cfg.sh_codebook_bits, direct_bits=cfg.sh_direct_bits, iters=cfg.kmeans_iters, seed=cfg.seed,
        )
        header["sh_rest"] = {
            "codebook_size": code.codebook_size,
            "direct_count": int(len(code.direct_q)),
            "codebook": code.codebook_quant.to_json(),
            "direct": code.direct_quant.to_json(),
        }
        chunks += [
            ("SHIX", chans(code.labels)),
            ("SHCB", chans(code.codebook_q, sh_context(cfg.sh_codebook_bits), allow_delta=False)),
            ("SHDR", chans(code.direct_q, sh_context(cfg.sh_direct_bits), allow_delta=False)),
        ]
    version = 1 if not ctx else (3 if "drops" in header.get("precision", {}) else 2)  # the oldest that holds it
    blob = pack_container(MAGIC, version, header, chunks)
    report = EncodeReport({tag: len(data) for tag, data in chunks}, len(blob), n, perm)
    return blob, report


def _classes(cfg: QuantConfig, weights: np.ndarray | None) -> tuple[np.ndarray | None, list[int]]:
    """(class per stored Gaussian [N] or None, dropped bits per class) from ``cfg`` and the
    weights in storage order (None: no classes)."""
    if weights is None:
        return None, [0]
    if cfg.max_drop > 0:
        d = significance_classes(weights, cfg.max_drop, cfg.drop_reference)
        return d, list(range(cfg.max_drop + 1))
    if int(cfg.low_fraction * len(weights)) > 0 and cfg.low_drop > 0:
        return precision_classes(weights, cfg.low_fraction), [0, cfg.low_drop]
    return None, [0]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-6, 1.0 - 1e-6)
    return (np.log(p) - np.log1p(-p)).astype(np.float32)


def decode(data: bytes | memoryview, path: str | os.PathLike | None = None, *,
           max_gaussians: int | None = None, on_channel=None) -> GaussianScene:
    """Decode ``.lgs`` bytes into a float32 :class:`GaussianScene` (Gaussians in Morton order).

    The header's count is capped by the file size (``splat.limits.gaussian_cap``);
    ``max_gaussians`` replaces that cap for legitimate files of degenerate data.
    ``on_channel(tag, channel, record, values, contexts, n_contexts)``: called for every decoded
    attribute channel (possibly from a second thread), e.g. by :mod:`compress.scene.bit_split`.
    """
    box = unpack_container(data, magic=MAGIC, path=path, max_version=VERSION, what=".lgs file")
    with naming(path), np.errstate(all="ignore"):
        return _decode(box.header, box, min(MAX_COUNT, gaussian_cap(len(data), max_gaussians)), path,
                       box.version, on_channel)


def _decode(h: dict, box, cap: int, path, version: int, on_channel=None) -> GaussianScene:
    ctx = version >= 2
    n = get_int(h, "count", 0, MAX_COUNT)
    require_at_most(n, cap, "Gaussian count", path, "max_gaussians")
    deg = get_int(h, "sh_degree", 0, 3)
    try:
        grid = PositionGrid.from_json(h["positions"])
        oq = UniformQuant.from_json(h["opacity"], 1, "opacity")
        sq = UniformQuant.from_json(h["log_scales"], 3, "log-scales")
        cq = UniformQuant.from_json(h["sh_dc"], 3, "SH DC")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        if isinstance(e, FormatError):
            raise
        raise FormatError("header lacks a quantizer description") from None
    rbits = get_int(get_typed(h, "rotation", dict), "bits", 1, 16, what="rotation")

    def chans(tag, rows, channels, *, lo=0, hi=None, what, context=None):
        return decode_channels(box.get(tag), rows, channels, lo=lo, hi=hi, what=what, context=context,
                               allow_context=ctx, on_record=None if on_channel is None else partial(on_channel, tag))

    # positions and the SH rest depend on nothing else, colour only on opacity and the classes:
    # they decode on a second thread while this one decodes the classes, opacity, scales and rotations
    with _Side() as side:
        rest = side.submit(_positions_and_sh, h, box, n, grid, deg, chans)
        cls, table = _precision(h, box, n, version, chans, min(sq.bits, rbits, cq.bits))
        drops = None if cls is None else np.asarray(table, dtype=np.int64)[cls]
        nc = len(table)
        opq = chans("OPAC", n, 1, hi=oq.levels, what="opacity")
        dc = side.submit(_colour, h, chans, n, opq, oq, cq, cls, drops, nc)
        logits = side.submit(lambda: _logit(oq.dequantize(opq)[:, 0]))
        ls = _refined(chans("SCAL", n, 3, hi=sq.levels, what="scales",
                            context=with_class(scale_context(opq[:, 0], oq.bits, sq.bits), cls, nc)), drops, sq)
        ridx_ctx, rval_ctx = rotation_contexts(ls, None, rbits)
        ridx = chans("ROTI", n, 1, hi=3, what="rotation index", context=ridx_ctx)[:, 0]
        rval_ctx = rotation_contexts(ls, ridx, rbits)[1]
        rvals = refine_by(chans("ROTV", n, 3, hi=(1 << rbits) - 1, what="rotation",
                                context=with_class(rval_ctx, cls, nc)),
                          drops, (1 << rbits) - 1)
        quats = decode_rotations(ridx, rvals, rbits)
        means, sh_rest = rest.result()
        sh_dc = dc.result()
    return make_scene(path, means=means, quats=quats, log_scales=ls, opacity_logits=logits.result(),
                      sh_dc=sh_dc, sh_rest=sh_rest)


class _Done:
    """A value computed inline, with the ``result()`` of a future."""

    def __init__(self, value):
        self._value = value

    def result(self):
        return self._value


class _Side:
    """A second decode thread for the block: ``submit(fn, *args)`` queues ``fn`` on it (in
    submission order) and returns an object whose ``result()`` waits for it and re-raises its
    error. When numba's thread count for this thread is 1 (e.g. under
    ``splat.threads.threads(1)``) ``fn`` runs inline instead. The thread ends with the block."""

    def __init__(self):
        self._pool = None

    def __enter__(self) -> "_Side":
        import numba

        if numba.get_num_threads() > 1:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="lgs-decode")
        return self

    def submit(self, fn, *args):
        if self._pool is None:
            return _Done(fn(*args))
        return self._pool.submit(_quiet, fn, *args)

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _quiet(fn, *args):
    with np.errstate(all="ignore"):
        return fn(*args)


def _positions_and_sh(h: dict, box, n: int, grid: PositionGrid, deg: int, chans) -> tuple[np.ndarray, np.ndarray]:
    """(positions [n,3], SH rest [n,K,3]) from ``POSN`` and the SH streams."""
    means, _ = decode_positions(box.get("POSN"), n, grid)
    return means, _sh_rest(h, chans, n, deg)


def _colour(h: dict, chans, n: int, opq: np.ndarray, oq: UniformQuant, cq: UniformQuant, cls: np.ndarray | None,
            drops: np.ndarray | None, nc: int) -> np.ndarray:
    mode = h["sh_dc"].get("transform", "none")
    if mode not in ("none", "g,r-g,b-g"):
        raise FormatError(f"unknown colour transform {str(mode)[:40]!r}")
    dcq = chans("COLR", n, 3, lo=-cq.levels, hi=cq.levels, what="SH DC",
                context=with_class(colour_context(opq[:, 0], oq.bits, cq.bits), cls, nc))
    if mode != "none":
        dcq = inverse_colour_transform(dcq)
    if n and outside_range(np.ascontiguousarray(dcq).reshape(-1), 0, cq.levels):
        raise FormatError("SH DC stream decodes outside the quantizer's range")
    return _refined(dcq, drops, cq)


def _refined(stored: np.ndarray, drops: np.ndarray | None, uq: UniformQuant) -> np.ndarray:
    """float32 values of stored grid indices [N,C] with ``drops`` bits per Gaussian dropped (one pass)."""
    return refine_dequantize(stored, drops, uq.levels, uq.lo, uq.step)


def _sh_rest(h: dict, chans, n: int, deg: int) -> np.ndarray:
    k = sh_rest_count(deg)
    if not k:
        return np.zeros((n, 0, 3), dtype=np.float32)
    s = get_typed(h, "sh_rest", dict)
    kcb = get_int(s, "codebook_size", 0, n, what="sh_rest")
    ndir = get_int(s, "direct_count", 0, n, what="sh_rest")
    try:
        cbq = UniformQuant.from_json(s["codebook"], 3 * k, "SH codebook")
        drq = UniformQuant.from_json(s["direct"], 3 * k, "SH direct")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        if isinstance(e, FormatError):
            raise
        raise FormatError("header lacks the SH rest description") from None
    labels = chans("SHIX", n, 1, hi=kcb, what="SH indices")[:, 0]
    code = SHCode(
        labels,
        chans("SHCB", kcb, 3 * k, hi=cbq.levels, what="SH codebook", context=sh_context(cbq.bits)),
        cbq,
        chans("SHDR", ndir, 3 * k, hi=drq.levels, what="SH direct", context=sh_context(drq.bits)),
        drq,
    )
    return decode_vectree_sh(code).reshape(n, k, 3)


def _precision(h: dict, box, n: int, version: int, chans, max_drop: int) -> tuple[np.ndarray | None, list[int]]:
    """(class per Gaussian or None, bits dropped per class) from the header and ``PCLS``."""
    p = h.get("precision")
    if p is None:
        return None, [0]
    if version < 2:
        raise FormatError("precision classes need .lgs version 2")
    if not isinstance(p, dict):
        raise FormatError("header field 'precision' is malformed")
    if "drops" in p:
        return _significance_classes(p["drops"], n, version, chans, max_drop)
    drop = get_int(p, "drop", 1, min(MAX_DROP, max_drop - 1), what="precision")
    low = get_int(p, "low_count", 1, n, what="precision")
    cls = chans("PCLS", n, 1, hi=1, what="precision classes")[:, 0]
    if int(cls.sum()) != low:
        raise FormatError(f"precision classes hold {int(cls.sum())} low-precision Gaussians, the header says {low}")
    return cls, [0, drop]


def _significance_classes(drops, n: int, version: int, chans, max_drop: int) -> tuple[np.ndarray, list[int]]:
    """Version-3 classes: header ``precision.drops`` (bits dropped per class) and ``PCLS``."""
    if version < 3:
        raise FormatError("precision.drops needs .lgs version 3")
    if not isinstance(drops, list) or not 2 <= len(drops) <= MAX_DROP + 1 \
            or not all(type(d) is int and 0 <= d <= min(MAX_DROP, max_drop - 1) for d in drops):
        raise FormatError(f"precision.drops must list 2..{MAX_DROP + 1} integers in [0, {min(MAX_DROP, max_drop - 1)}]")
    cls = chans("PCLS", n, 1, hi=len(drops) - 1, what="precision classes")[:, 0]
    return cls, list(drops)


def read_lgs(path: str | os.PathLike, *, max_gaussians: int | None = None) -> GaussianScene:
    """Read a ``.lgs`` file (``max_gaussians``: see :func:`decode`)."""
    return decode(read_bytes(path), path=path, max_gaussians=max_gaussians)


def write_lgs(scene: GaussianScene, path: str | os.PathLike, weights=None, config: QuantConfig | None = None) -> EncodeReport:
    """Encode ``scene`` and write it atomically to ``path``."""
    from splat.atomic import atomic_write_bytes

    blob, report = encode(scene, weights, config)
    atomic_write_bytes(path, blob)
    return report
