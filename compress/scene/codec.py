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
from compress.uniform import MAX_LEVELS, is_power_of_two_levels, levels_for_bits
from splat.errors import FormatError, naming
from splat.header import get_int, get_typed
from splat.io._common import make_scene, read_bytes
from splat.limits import gaussian_cap, require_at_most
from splat.scene import GaussianScene, sh_rest_count

from .positions import MAX_BITS, PositionGrid, decode_positions, encode_positions, morton_order
from .quantize import SHCode, UniformQuant, decode_rotations, decode_vectree_sh, encode_rotations, vectree_sh
from .precision import (MAX_DROP, coarsen_by_factor, drop_factors, precision_classes, refine_by_factor, refine_dequantize,
                        significance_classes)
from .stream_contexts import colour_context, rotation_contexts, scale_context, sh_context, with_class
from .streams import outside_range, decode_channels, encode_channels

MAGIC = b"LGS1"
VERSION = 4  # 2: context-modelled records (mode 2); 3: significance classes; 4: any number of levels; older files decode
MAX_FACTOR = 256  # coarsest grid factor of a precision class (version 4)
MIN_POSITION_BITS = 12
MAX_COUNT = 1 << 28


@dataclass
class QuantConfig:
    """Quantization settings (bits are per value unless stated).

    Every ``*_bits`` may be fractional: a quantizer of b bits has round(2^b) - 1 steps, so
    b = log2(steps + 1); whole bits give the power-of-two grids of versions 1-3, other values
    need ``.lgs`` version 4.
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
    class_step: class c's grid is round(2^(c * class_step)) times coarser (1: whole bits,
    ``max_drop`` classes; other values need version 4).
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
    class_step: float = 1.0

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
        if not 0.0 < self.class_step <= 2.0:
            raise ValueError("class_step must be in (0, 2]")


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
    rlev = levels_for_bits(cfg.rotation_bits)
    rot_idx, rot_vals = encode_rotations(_rows(scene.quats, perm), 1, levels=rlev)
    dc = _rows(scene.sh_dc, perm)
    cq = UniformQuant.fit(dc, cfg.dc_bits)
    cls, table = _classes(cfg, w[perm] if weights is not None and ctx else None)
    ftable = _class_factors(cfg, table, min(sq.levels, rlev, cq.levels))
    factors = None if cls is None else np.asarray(ftable, dtype=np.int64)[cls]
    nc = len(table)
    opq = oq.quantize(opac)
    lsq = coarsen_by_factor(sq.quantize(ls), factors)
    rot_vals = coarsen_by_factor(rot_vals, factors)
    rot_idx_ctx, rot_val_ctx = rotation_contexts(sq.dequantize(refine_by_factor(lsq, factors, sq.levels)), rot_idx, rlev)

    def chans(q, context=None, allow_delta=True) -> bytes:
        return encode_channels(q, allow_delta=allow_delta, context=context, allow_context=ctx)

    dcq = coarsen_by_factor(cq.quantize(dc), factors)
    dc_ctx = with_class(colour_context(opq[:, 0], oq.levels, cq.levels), cls, nc)
    colr, colour_mode = min((chans(dcq, dc_ctx), "none"), (chans(colour_transform(dcq), dc_ctx), "g,r-g,b-g"),
                            key=lambda c: len(c[0]))
    header = {
        "count": n,
        "sh_degree": scene.sh_degree,
        "positions": grid.to_json(),
        "opacity": oq.to_json(),
        "log_scales": sq.to_json(),
        "rotation": {**_size_json(rlev), "scheme": "smallest-three"},
        "sh_dc": {**cq.to_json(), "transform": colour_mode},
        "settings": asdict(cfg),
    }
    chunks = [("POSN", encode_positions(codes))]
    if cls is not None:
        header["precision"] = ({"low_count": int(cls.sum()), "drop": table[1]} if cfg.max_drop == 0
                               else {"drops": list(table)} if ftable == [1 << d for d in table]
                               else {"factors": ftable})
        chunks.append(("PCLS", chans(cls)))
    chunks += [
        ("OPAC", chans(opq)),
        ("SCAL", chans(lsq, with_class(scale_context(opq[:, 0], oq.levels, sq.levels), cls, nc))),
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
            ("SHCB", chans(code.codebook_q, sh_context(code.codebook_quant.levels), allow_delta=False)),
            ("SHDR", chans(code.direct_q, sh_context(code.direct_quant.levels), allow_delta=False)),
        ]
    version = _version(header, ctx)
    blob = pack_container(MAGIC, version, header, chunks)
    report = EncodeReport({tag: len(data) for tag, data in chunks}, len(blob), n, perm)
    return blob, report


def _size_json(levels: int) -> dict:
    """``{bits}`` for 2^bits - 1 steps, else ``{levels}`` (version 4)."""
    return {"bits": int(levels).bit_length()} if is_power_of_two_levels(levels) else {"levels": int(levels)}


def _version(header: dict, ctx: bool) -> int:
    """The oldest ``.lgs`` version that holds ``header`` (and context-modelled records when ``ctx``)."""
    quantizers = [header["positions"], header["opacity"], header["log_scales"], header["rotation"], header["sh_dc"]]
    if "sh_rest" in header:
        quantizers += [header["sh_rest"]["codebook"], header["sh_rest"]["direct"]]
    precision = header.get("precision", {})
    if "factors" in precision or any("levels" in q for q in quantizers):
        return 4
    return 1 if not ctx else (3 if "drops" in precision else 2)


def _class_factors(cfg: QuantConfig, drops: list[int], finest_levels: int) -> list[int]:
    """Grid factor per class: 2^d for the two-class form and for ``class_step`` 1, else
    round(2^(d * class_step)), at most ``finest_levels`` and :data:`MAX_FACTOR`."""
    if cfg.max_drop == 0 or cfg.class_step == 1.0:
        return [1 << d for d in drops]
    return [max(1, min(MAX_FACTOR, finest_levels, int(round(2.0 ** (d * cfg.class_step))))) for d in drops]


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
    v4 = version >= 4
    try:
        grid = PositionGrid.from_json(h["positions"], allow_levels=v4)
        oq = UniformQuant.from_json(h["opacity"], 1, "opacity", allow_levels=v4)
        sq = UniformQuant.from_json(h["log_scales"], 3, "log-scales", allow_levels=v4)
        cq = UniformQuant.from_json(h["sh_dc"], 3, "SH DC", allow_levels=v4)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        if isinstance(e, FormatError):
            raise
        raise FormatError("header lacks a quantizer description") from None
    rlev = _rotation_levels(get_typed(h, "rotation", dict), v4)

    def chans(tag, rows, channels, *, lo=0, hi=None, what, context=None):
        return decode_channels(box.get(tag), rows, channels, lo=lo, hi=hi, what=what, context=context,
                               allow_context=ctx, on_record=None if on_channel is None else partial(on_channel, tag))

    # positions and the SH rest depend on nothing else, colour only on opacity and the classes:
    # they decode on a second thread while this one decodes the classes, opacity, scales and rotations
    with _Side() as side:
        rest = side.submit(_positions_and_sh, h, box, n, grid, deg, chans, version)
        cls, table = _precision(h, box, n, version, chans, min(sq.bits, rlev.bit_length(), cq.bits),
                                min(sq.levels, rlev, cq.levels))
        factors = None if cls is None else np.asarray(table, dtype=np.int64)[cls]
        nc = len(table)
        opq = chans("OPAC", n, 1, hi=oq.levels, what="opacity")
        dc = side.submit(_colour, h, chans, n, opq, oq, cq, cls, factors, nc)
        logits = side.submit(lambda: _logit(oq.dequantize(opq)[:, 0]))
        ls = _refined(chans("SCAL", n, 3, hi=sq.levels, what="scales",
                            context=with_class(scale_context(opq[:, 0], oq.levels, sq.levels), cls, nc)), factors, sq)
        ridx_ctx, rval_ctx = rotation_contexts(ls, None, rlev)
        ridx = chans("ROTI", n, 1, hi=3, what="rotation index", context=ridx_ctx)[:, 0]
        rval_ctx = rotation_contexts(ls, ridx, rlev)[1]
        rvals = refine_by_factor(chans("ROTV", n, 3, hi=rlev, what="rotation", context=with_class(rval_ctx, cls, nc)),
                                 factors, rlev)
        quats = decode_rotations(ridx, rvals, 1, levels=rlev)
        means, sh_rest = rest.result()
        sh_dc = dc.result()
        # every result is taken inside the block: leaving it cancels work not yet started
        opacity_logits = logits.result()
    return make_scene(path, means=means, quats=quats, log_scales=ls, opacity_logits=opacity_logits,
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


def _positions_and_sh(h: dict, box, n: int, grid: PositionGrid, deg: int, chans,
                      version: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions [n,3], SH rest [n,K,3]) from ``POSN`` and the SH streams."""
    means, _ = decode_positions(box.get("POSN"), n, grid)
    return means, _sh_rest(h, chans, n, deg, version)


def _rotation_levels(r: dict, v4: bool) -> int:
    """Steps of the rotation values from the header's ``rotation`` (``bits`` 1..16; version 4 also ``levels``)."""
    if "levels" in r:
        if not v4:
            raise FormatError("header field 'rotation' has levels, which need .lgs version 4")
        if "bits" in r:
            raise FormatError("header field 'rotation' gives both bits and levels")
        return get_int(r, "levels", 1, MAX_LEVELS, what="rotation")
    return (1 << get_int(r, "bits", 1, 16, what="rotation")) - 1


def _colour(h: dict, chans, n: int, opq: np.ndarray, oq: UniformQuant, cq: UniformQuant, cls: np.ndarray | None,
            factors: np.ndarray | None, nc: int) -> np.ndarray:
    mode = h["sh_dc"].get("transform", "none")
    if mode not in ("none", "g,r-g,b-g"):
        raise FormatError(f"unknown colour transform {str(mode)[:40]!r}")
    dcq = chans("COLR", n, 3, lo=-cq.levels, hi=cq.levels, what="SH DC",
                context=with_class(colour_context(opq[:, 0], oq.levels, cq.levels), cls, nc))
    if mode != "none":
        dcq = inverse_colour_transform(dcq)
    if n and outside_range(np.ascontiguousarray(dcq).reshape(-1), 0, cq.levels):
        raise FormatError("SH DC stream decodes outside the quantizer's range")
    return _refined(dcq, factors, cq)


def _refined(stored: np.ndarray, factors: np.ndarray | None, uq: UniformQuant) -> np.ndarray:
    """float32 values of stored grid indices [N,C] on grids ``factors`` per Gaussian coarser (one pass)."""
    return refine_dequantize(stored, None, uq.levels, uq.lo, uq.step, factors=factors)


def _sh_rest(h: dict, chans, n: int, deg: int, version: int) -> np.ndarray:
    k = sh_rest_count(deg)
    if not k:
        return np.zeros((n, 0, 3), dtype=np.float32)
    s = get_typed(h, "sh_rest", dict)
    kcb = get_int(s, "codebook_size", 0, n, what="sh_rest")
    ndir = get_int(s, "direct_count", 0, n, what="sh_rest")
    try:
        cbq = UniformQuant.from_json(s["codebook"], 3 * k, "SH codebook", allow_levels=version >= 4)
        drq = UniformQuant.from_json(s["direct"], 3 * k, "SH direct", allow_levels=version >= 4)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        if isinstance(e, FormatError):
            raise
        raise FormatError("header lacks the SH rest description") from None
    labels = chans("SHIX", n, 1, hi=kcb, what="SH indices")[:, 0]
    code = SHCode(
        labels,
        chans("SHCB", kcb, 3 * k, hi=cbq.levels, what="SH codebook", context=sh_context(cbq.levels)),
        cbq,
        chans("SHDR", ndir, 3 * k, hi=drq.levels, what="SH direct", context=sh_context(drq.levels)),
        drq,
    )
    return decode_vectree_sh(code).reshape(n, k, 3)


def _precision(h: dict, box, n: int, version: int, chans, max_drop: int,
               finest_levels: int) -> tuple[np.ndarray | None, list[int]]:
    """(class per Gaussian or None, grid factor per class) from the header and ``PCLS``.
    ``max_drop``: the fewest bits of scales, rotations and colour; ``finest_levels``: their fewest steps."""
    p = h.get("precision")
    if p is None:
        return None, [0]
    if version < 2:
        raise FormatError("precision classes need .lgs version 2")
    if not isinstance(p, dict):
        raise FormatError("header field 'precision' is malformed")
    if "factors" in p:
        return _factor_classes(p["factors"], n, version, chans, finest_levels)
    if "drops" in p:
        cls, drops = _significance_classes(p["drops"], n, version, chans, max_drop)
        return cls, [1 << d for d in drops]
    drop = get_int(p, "drop", 1, min(MAX_DROP, max_drop - 1), what="precision")
    low = get_int(p, "low_count", 1, n, what="precision")
    cls = chans("PCLS", n, 1, hi=1, what="precision classes")[:, 0]
    if int(cls.sum()) != low:
        raise FormatError(f"precision classes hold {int(cls.sum())} low-precision Gaussians, the header says {low}")
    return cls, [1, 1 << drop]


def _significance_classes(drops, n: int, version: int, chans, max_drop: int) -> tuple[np.ndarray, list[int]]:
    """Version-3 classes: header ``precision.drops`` (bits dropped per class) and ``PCLS``."""
    if version < 3:
        raise FormatError("precision.drops needs .lgs version 3")
    if not isinstance(drops, list) or not 2 <= len(drops) <= MAX_DROP + 1 \
            or not all(type(d) is int and 0 <= d <= min(MAX_DROP, max_drop - 1) for d in drops):
        raise FormatError(f"precision.drops must list 2..{MAX_DROP + 1} integers in [0, {min(MAX_DROP, max_drop - 1)}]")
    cls = chans("PCLS", n, 1, hi=len(drops) - 1, what="precision classes")[:, 0]
    return cls, list(drops)


def _factor_classes(factors, n: int, version: int, chans, finest_levels: int) -> tuple[np.ndarray, list[int]]:
    """Version-4 classes: header ``precision.factors`` (grid factor per class) and ``PCLS``."""
    if version < 4:
        raise FormatError("precision.factors needs .lgs version 4")
    top = min(MAX_FACTOR, finest_levels)
    if not isinstance(factors, list) or not 2 <= len(factors) <= MAX_DROP + 1 \
            or not all(type(f) is int and 1 <= f <= top for f in factors):
        raise FormatError(f"precision.factors must list 2..{MAX_DROP + 1} integers in [1, {top}]")
    cls = chans("PCLS", n, 1, hi=len(factors) - 1, what="precision classes")[:, 0]
    return cls, list(factors)


def read_lgs(path: str | os.PathLike, *, max_gaussians: int | None = None) -> GaussianScene:
    """Read a ``.lgs`` file (``max_gaussians``: see :func:`decode`)."""
    return decode(read_bytes(path), path=path, max_gaussians=max_gaussians)


def write_lgs(scene: GaussianScene, path: str | os.PathLike, weights=None, config: QuantConfig | None = None) -> EncodeReport:
    """Encode ``scene`` and write it atomically to ``path``."""
    from splat.atomic import atomic_write_bytes

    blob, report = encode(scene, weights, config)
    atomic_write_bytes(path, blob)
    return report
