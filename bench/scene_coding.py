"""Bits per `.lgs` stream at a fixed quantisation: the shipped coder against candidate recodings.

    .venv/bin/python bench/scene_coding.py [--scenes donut_sh0.ply,...] [--quant bench/results/scene_vs_sog.json]

The quantisation of each scene is the one the SOG-fidelity run chose (the ``bits`` of its
``lgs`` row in ``--quant``), so the numbers describe files at SOG's fidelity (62-66 dB).
Precision classes need render sensitivities and are left out here, so the scale, rotation
and colour streams are larger than in that run; the positions and opacity are the same.

Every candidate codes the *same* stored integers (fidelity unchanged), except the last one,
which re-frames the rotation:

* ``shipped``: ``compress.scene.codec.encode`` (bytes per chunk);
* ``order-0 entropy``: the static entropy of each channel's stored values (no adaptation);
* ``positions, adaptive exponents``: the Morton gaps as (bit length, with the two previous
  bit lengths as context) + the two bits under the leading one (context: the bit length) +
  the rest raw;
* ``neighbour prediction``: each attribute channel minus the median of the previous three
  Gaussians' values (Morton order), context-coded (``compress.context.encode_ctx``);
* ``neighbour-mean context``: each attribute channel with the bucket (8) of the mean of the
  previous four Gaussians' values as context, instead of the shipped contexts (a decoder can
  form it as it goes);
* ``two-rate mixing``: the ideal code length of the shipped binarisation when each decision's
  probability is the mean of a fast and a slow adaptive model (no stream written);
* ``opacity given scales``: opacity with the bucket of the summed stored log-scales as context
  (scales decoded first);
* ``rotation representative``: of the four quaternions q, qi, qj, qk that give the same
  covariance, the one with the largest |w| (exact: the stored values are a signed permutation
  of the shipped ones);
* ``sorted scales``: log-scales sorted per Gaussian, the rotation's axes permuted to match
  (the same covariance before quantisation; the scale quantiser refits its ranges).

Writes bench/results/scene_coding.json.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scenes import load_scene  # noqa: E402
from compress.context import encode_ctx  # noqa: E402
from compress.entropy import encode_ints  # noqa: E402
from compress.scene.codec import QuantConfig, decode, encode  # noqa: E402
from compress.scene.positions import PositionGrid, morton_order  # noqa: E402
from compress.scene.quantize import UniformQuant, encode_rotations, levels_for_bits  # noqa: E402
from compress.scene.stream_contexts import rotation_contexts, scale_context, span_bucket  # noqa: E402
from compress.scene.streams import encode_channels  # noqa: E402

ATTRS = ("OPAC", "SCAL", "ROTI", "ROTV", "COLR")


def stored_channels(blob: bytes) -> dict[str, np.ndarray]:
    """Stored integers per chunk tag, [N, C] int64, as the decoder sees them."""
    got: dict[str, dict[int, np.ndarray]] = {}

    def on_channel(tag, c, record, values, contexts, n_contexts):
        got.setdefault(tag, {})[c] = np.asarray(values, dtype=np.int64).copy()

    decode(blob, on_channel=on_channel)
    return {t: np.stack([d[c] for c in sorted(d)], 1) for t, d in got.items()}


def ctx_bytes(v: np.ndarray, ctx: np.ndarray | None = None, n_ctx: int = 1) -> int:
    """Context-coded bytes of integers v [N] (offset to 0, header included)."""
    v = np.asarray(v, dtype=np.int64)
    v = v - v.min()
    return len(encode_ctx(v, max(1, int(v.max()).bit_length()), ctx, n_ctx))


def order0_bytes(v: np.ndarray) -> float:
    p = np.unique(v, return_counts=True)[1] / len(v)
    return float(-(p * np.log2(p)).sum() * len(v) / 8)


def positions_adaptive(codes: np.ndarray) -> int:
    """Bytes of the Morton gaps as adaptive exponents + two modelled mantissa bits + raw bits."""
    g = np.diff(codes.astype(np.uint64), prepend=np.uint64(0))
    k = np.array([int(x).bit_length() for x in g], dtype=np.int64)
    kp = np.concatenate([[0], k[:-1]])
    kp2 = np.concatenate([[0, 0], k[:-2]])
    exps = len(encode_ctx(k, 6, np.minimum((kp + kp2) // 2, 63), 64))
    has = k >= 3
    m2 = np.array([(int(x) >> (int(x).bit_length() - 3)) & 3 for x in g[has]], dtype=np.int64)
    mant = len(encode_ctx(m2, 2, k[has], 64)) if has.any() else 0
    raw = int(np.maximum(k - 1, 0).sum() - 2 * has.sum())
    return exps + mant + (raw + 7) // 8


def median3_residual_bytes(v: np.ndarray) -> int:
    p = [np.concatenate([np.zeros(j, np.int64), v[:-j]]) for j in (1, 2, 3)]
    return ctx_bytes(v - np.median(np.stack(p), 0).astype(np.int64))


def neighbour_mean_bytes(v: np.ndarray, k: int = 4, n_buckets: int = 8) -> int:
    v = np.asarray(v, dtype=np.int64) - int(np.min(v))
    cs = np.concatenate([[0], np.cumsum(v)])
    i = np.arange(len(v))
    a = np.maximum(i - k, 0)
    mean = (cs[i] - cs[a]) / np.maximum(i - a, 1)
    return ctx_bytes(v, np.clip((mean * n_buckets / (int(v.max()) + 1)).astype(np.int64), 0, n_buckets - 1), n_buckets)


@numba.njit(cache=True)
def _mixed_bits(values, bits, prev_bits, fast, slow):
    """Ideal code length (bits) of ``compress.context``'s tree binarisation (previous-value
    context) when each probability is the mean of a fast- and a slow-adapting model
    (``fast == slow``: one model, as shipped)."""
    per = 1 << bits
    n_models = (1 << prev_bits) * per
    pa = np.full(n_models, 0.5)
    pb = np.full(n_models, 0.5)
    cnt = np.zeros(n_models)
    lo = 16.0 / 4096.0
    prev = 0
    total = 0.0
    for i in range(values.size):
        v = values[i]
        base = (prev >> (bits - prev_bits)) * per if prev_bits > 0 else 0
        node = 1
        for b in range(bits - 1, -1, -1):
            bit = (v >> b) & 1
            m = base + node
            p = min(max(0.5 * (pa[m] + pb[m]), lo), 1.0 - lo)
            total += -math.log2(p if bit else 1.0 - p)
            k = cnt[m]
            pa[m] += (bit - pa[m]) / (min(k, fast) + 2.0)
            pb[m] += (bit - pb[m]) / (min(k, slow) + 2.0)
            cnt[m] = k + 1
            node = 2 * node + bit
        prev = v
    return total


def mixing_gain(v: np.ndarray) -> int:
    """Bytes two-rate mixing saves over one model of the shipped rate (ideal code lengths, best
    previous-value context of each)."""
    v = np.ascontiguousarray(v - v.min(), dtype=np.int64)
    bits = max(1, int(v.max()).bit_length())
    if bits > 12:
        return 0
    one = min(_mixed_bits(v, bits, pb, 30.0, 30.0) for pb in (0, 2))
    two = min(_mixed_bits(v, bits, pb, 14.0, 254.0) for pb in (0, 2))
    return int((one - two) / 8)


def _qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products of wxyz quaternions [N,4] x [N,4]."""
    w1, x1, y1, z1 = a.T
    w2, x2, y2, z2 = b.T
    return np.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], 1)


def _perm_quats() -> tuple[list[tuple[int, ...]], np.ndarray]:
    """For each axis permutation p: the quaternion m with R(q m) = R(q)[:, p] up to column signs."""
    perms = list(itertools.permutations(range(3)))
    out = []
    for p in perms:
        m = np.zeros((3, 3))
        for k in range(3):
            m[p[k], k] = 1.0
        if np.linalg.det(m) < 0:
            m[:, 2] *= -1
        # rotation matrix -> quaternion via the eigenvector of the symmetric 4x4 (Bar-Itzhack)
        k4 = np.array([[m[0, 0] - m[1, 1] - m[2, 2], m[1, 0] + m[0, 1], m[2, 0] + m[0, 2], m[2, 1] - m[1, 2]],
                       [m[1, 0] + m[0, 1], m[1, 1] - m[0, 0] - m[2, 2], m[2, 1] + m[1, 2], m[0, 2] - m[2, 0]],
                       [m[2, 0] + m[0, 2], m[2, 1] + m[1, 2], m[2, 2] - m[0, 0] - m[1, 1], m[1, 0] - m[0, 1]],
                       [m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1], m[0, 0] + m[1, 1] + m[2, 2]]]) / 3
        vals, vecs = np.linalg.eigh(k4)
        x, y, z, w = vecs[:, -1]
        out.append([w, x, y, z])
    return perms, np.array(out)


def rotation_bytes(quats: np.ndarray, log_scales: np.ndarray, scale_bits: float, rot_levels: int,
                   opq: np.ndarray, oq: UniformQuant) -> int:
    """SCAL + ROTI + ROTV bytes (no precision classes) of float quats [N,4] and log-scales [N,3]."""
    sq = UniformQuant.fit(log_scales, scale_bits)
    lsq = sq.quantize(log_scales)
    ri, rv = encode_rotations(quats, 1, levels=rot_levels)
    f_idx, f_val = rotation_contexts(sq.dequantize(lsq), ri, rot_levels)
    return (len(encode_channels(lsq, context=scale_context(opq, oq.levels, sq.levels), allow_context=True))
            + len(encode_channels(ri, context=f_idx, allow_context=True))
            + len(encode_channels(rv, context=f_val, allow_context=True)))


def largest_w(quats: np.ndarray) -> np.ndarray:
    """Of q, qi, qj, qk (same covariance), the one with the largest |w|, per row."""
    unit = np.eye(4)
    cands = np.stack([_qmul(quats, np.repeat(unit[k][None], len(quats), 0)) for k in range(4)], 1)
    k = np.argmax(np.abs(cands[:, :, 0]), 1)
    return cands[np.arange(len(quats)), k]


def sorted_frame(quats: np.ndarray, log_scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(quats, log-scales) with the scales ascending per row and the rotation's axes following."""
    perms, mq = _perm_quats()
    order = np.argsort(log_scales, axis=1, kind="stable")
    idx = np.array([perms.index(tuple(o)) for o in order])
    return largest_w(_qmul(quats, mq[idx])), np.take_along_axis(log_scales, order, 1)


def config_from(bits: dict) -> QuantConfig:
    return QuantConfig(position_bits=bits["position_bits"], scale_bits=bits["scale_bits"],
                       rotation_bits=bits["rotation_bits"], opacity_bits=bits["opacity_bits"],
                       dc_bits=bits["dc_bits"])


def scene_row(name: str, bits: dict) -> dict | None:
    s = load_scene(name)
    if s is None:
        return None
    n = len(s)
    cfg = config_from(bits)
    t0 = time.process_time()
    blob, rep = encode(s, config=cfg)
    enc_cpu = time.process_time() - t0
    t0 = time.process_time()
    st = stored_channels(blob)
    dec_cpu = time.process_time() - t0
    shipped = dict(rep.stream_bytes)
    row = {"scene": name, "gaussians": n, "quantisation": bits, "file_bytes": rep.total_bytes,
           "encode_cpu_s": enc_cpu, "decode_cpu_s": dec_cpu, "shipped": shipped,
           "bits_per_gaussian": {t: 8 * b / n for t, b in shipped.items()}}
    row["order0_entropy"] = {t: sum(order0_bytes(st[t][:, c]) for c in range(st[t].shape[1])) for t in ATTRS}

    means = s.means.double().numpy()
    perm, codes = morton_order(means, PositionGrid.fit(means, cfg.position_bits))
    assert (perm == rep.permutation).all()
    cand = {"positions, adaptive exponents": {"POSN": positions_adaptive(codes)}}
    cand["neighbour prediction"] = {t: sum(median3_residual_bytes(st[t][:, c]) for c in range(st[t].shape[1]))
                                    for t in ("OPAC", "SCAL", "ROTV", "COLR")}
    cand["neighbour-mean context"] = {t: sum(neighbour_mean_bytes(st[t][:, c]) for c in range(st[t].shape[1]))
                                      for t in ("OPAC", "SCAL", "ROTV", "COLR")}
    cand["two-rate mixing"] = {t: shipped[t] - sum(mixing_gain(st[t][:, c]) for c in range(st[t].shape[1]))
                               for t in ("OPAC", "SCAL", "ROTV", "COLR")}
    oq = UniformQuant.fit(s.opacities.double().numpy()[perm][:, None], cfg.opacity_bits)
    opq = st["OPAC"][:, 0]
    ssum = st["SCAL"].sum(1)
    cand["opacity given scales"] = {"OPAC": ctx_bytes(opq, span_bucket(ssum - ssum.min(), int(ssum.max() - ssum.min()) + 1, 8), 8)}
    quats = s.quats.double().numpy()[perm]
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    ls = s.log_scales.double().numpy()[perm]
    rlev = levels_for_bits(cfg.rotation_bits)
    base = rotation_bytes(quats, ls, cfg.scale_bits, rlev, opq, oq)
    row["scale_rotation_reference"] = base
    cand["rotation representative"] = {"SCAL+ROTI+ROTV": rotation_bytes(largest_w(quats), ls, cfg.scale_bits, rlev, opq, oq)}
    q2, ls2 = sorted_frame(quats, ls)
    cand["sorted scales"] = {"SCAL+ROTI+ROTV": rotation_bytes(q2, ls2, cfg.scale_bits, rlev, opq, oq)}
    row["candidates"] = cand
    saved = {}
    for k, v in cand.items():
        before = sum(base if t == "SCAL+ROTI+ROTV" else shipped[t] for t in v)
        saved[k] = {"bytes_saved": before - sum(v.values()), "file_fraction": (before - sum(v.values())) / rep.total_bytes}
    row["saved"] = saved
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", default="donut_sh0.ply,guitar.compressed.ply,plant.splat,biker.spz")
    ap.add_argument("--quant", default=str(ROOT / "bench" / "results" / "scene_vs_sog.json"),
                    help="JSON whose 'lgs' rows give each scene's quantisation ('bits')")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "scene_coding.json"))
    args = ap.parse_args(argv)
    quant = {r["scene"]: r["bits"] for r in json.loads(Path(args.quant).read_text())["rows"] if r.get("format") == "lgs"}
    rows, load = [], os.getloadavg()
    for name in args.scenes.split(","):
        if name not in quant:
            print(f"skip {name}: no quantisation for it in {args.quant}")
            continue
        row = scene_row(name, quant[name])
        if row is None:
            continue
        rows.append(row)
        bpg = "  ".join(f"{t} {b:.2f}" for t, b in row["bits_per_gaussian"].items())
        print(f"{name:24s} {row['file_bytes']:>9,} B  bits/Gaussian: {bpg}", flush=True)
        for k, v in row["saved"].items():
            print(f"{'':24s} {k:32s} saves {v['bytes_saved']:>8,} B ({100 * v['file_fraction']:+.2f}% of the file)",
                  flush=True)
    Path(args.out).write_text(json.dumps({"load_average_start": load, "load_average_end": os.getloadavg(),
                                          "note": "shared 2-core machine; CPU seconds", "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
