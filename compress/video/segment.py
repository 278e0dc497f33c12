"""One segment of a ``.gsv`` clip: a keyframe plus predicted frames (spec: docs/formats/gsv.md).

Tracked segments (same Gaussians, same order in every frame) code frame 0 with the scene
codec (``.lgs``) and every later frame as

* joint transforms (rotation vector + translation per joint), quantized, predicted from
  the previous frame's decoded values, entropy-coded;
* sparse position corrections: Gaussians whose skinned position (plus their persistent
  correction) is off by more than a threshold get a quantized correction;
* sparse appearance updates (frame, index, new code): base colour (8-bit) and SH rest
  (index into a per-segment codebook), opacity and log-scales (8-bit segment quantizers).

The encoder predicts from the *decoded* state (closed loop): :class:`SegmentState` is the
one implementation of the decoder's reconstruction and the encoder runs it too.

Intra segments code every frame with the scene codec (untracked input).
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from compress.container import pack_container, unpack_container
from compress.entropy import decode_ints, encode_ints, pack_arrays, unpack_arrays
from compress.scene import codec as lgs
from compress.scene.quantize import UniformQuant
from compress.scene.streams import decode_channels, encode_channels
from splat.errors import FormatError
from splat.header import get_int
from splat.limits import require_at_most, value_cap
from splat.scene import SH_C0, GaussianScene, sh_rest_count

from .motion import (SparseSkin, default_length, farthest_point_sampling, knn_joints,
                     procrustes, quat_multiply, quat_to_rotvec, rotvec_to_quat, quat_to_matrix, skin_weights)

SEG_MAGIC = b"GSVS"
SEG_VERSION = 1
TRACKED, INTRA = "tracked", "intra"


@dataclass
class SegmentSettings:
    """Encoder settings for one segment (units: scene units unless stated).

    joint_fraction: joints per Gaussian; k: joints per Gaussian binding; rot_bits: bits of a
    rotation-vector component over [-pi, pi]; trans_step: translation quantization step
    (None: extent / 2^16); pos_threshold: a Gaussian gets a position correction when its
    predicted position is off by more than this (None: 0.35 x median keyframe scale);
    colour_threshold: base-colour change (RGB, 0..1) that triggers a colour update;
    sh_threshold: RMS SH-rest change that triggers an SH update; sh_codebook: entries of
    the per-segment SH update codebook.
    """

    quant: lgs.QuantConfig
    joint_fraction: float = 0.02
    k: int = 8
    rot_bits: int = 14
    trans_step: float | None = None
    pos_threshold: float | None = None
    pos_factor: float = 0.35
    colour_threshold: float = 3.0 / 255.0
    sh_threshold: float = 0.02
    sh_codebook: int = 256
    opacity_bits: int = 8
    scale_bits: int = 8


# ---------------------------------------------------------------------- sparse update streams
def pack_sparse(counts: np.ndarray, idx: np.ndarray, vals: np.ndarray | None) -> bytes:
    """Per-frame sparse updates: counts [F], indices [M] (ascending within each frame),
    values [M,C] (or None). Indices are coded as gaps within their frame."""
    counts = np.asarray(counts, dtype=np.int64)
    idx = np.asarray(idx, dtype=np.int64)
    gaps = idx.copy()
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else np.zeros(0, np.int64)
    if len(idx):
        gaps[1:] = idx[1:] - idx[:-1]
        first = starts[counts > 0]
        gaps[first] = idx[first]
    parts = [encode_ints(counts), encode_ints(gaps)]
    if vals is not None:
        parts.append(encode_channels(np.asarray(vals, dtype=np.int64), allow_delta=False))
    return pack_arrays(*parts)


def unpack_sparse(data: bytes, frames: int, n: int, channels: int, *, lo: int, hi: int | None,
                  what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    parts = unpack_arrays(data, 3 if channels else 2)
    counts = decode_ints(parts[0], max_count=frames)
    if counts.size != frames or (counts.size and (counts.min() < 0 or counts.max() > n)):
        raise FormatError(f"{what}: malformed update counts")
    m = int(counts.sum())
    # one-symbol streams code any count in a few bytes: bound the updates by this chunk's size
    require_at_most(m * max(channels, 1), value_cap(len(data)), f"{what}: update value count")
    gaps = decode_ints(parts[1], max_count=m)
    if gaps.size != m:
        raise FormatError(f"{what}: {gaps.size} indices, expected {m}")
    idx = np.empty(m, dtype=np.int64)
    pos = 0
    for c in counts:
        c = int(c)
        if c:
            g = gaps[pos:pos + c]
            if g.min() < 0 or (c > 1 and g[1:].min() <= 0):
                raise FormatError(f"{what}: indices not ascending")
            idx[pos:pos + c] = np.cumsum(g)
        pos += c
    if m and idx.max() >= n:
        raise FormatError(f"{what}: index outside 0..{n - 1}")
    vals = decode_channels(parts[2], m, channels, lo=lo, hi=hi, what=what) if channels else None
    return counts, idx, vals


def _split(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


# ---------------------------------------------------------------------- decoded state
class SegmentState:
    """Decoder state of a tracked segment: the decoded keyframe, the skin binding and the
    per-Gaussian persistent values that sparse updates modify. Shared by encoder and decoder."""

    def __init__(self, key: GaussianScene, joint_idx: np.ndarray, k: int, length: float | None):
        self.key = key
        self.x0 = key.means.float().contiguous()
        self.q0 = key.unit_quats.float()
        self.joint_idx = torch.as_tensor(joint_idx, dtype=torch.int64)
        self.centers = self.x0[self.joint_idx]
        self.bind_idx, d2 = knn_joints(self.x0, self.centers, k)
        self.length = default_length(d2) if length is None else float(length)
        self.bind_w = skin_weights(d2, self.length)
        self.skin = SparseSkin(self.bind_idx, self.bind_w, len(self.centers))
        self.reset()

    def reset(self) -> None:
        self.frame = 0
        self.offset = torch.zeros_like(self.x0)
        self.sh_dc = self.key.sh_dc.clone()
        self.sh_rest = self.key.sh_rest.clone()
        self.opacity_logits = self.key.opacity_logits.clone()
        self.log_scales = self.key.log_scales.clone()

    def transforms(self, rq: np.ndarray, tq: np.ndarray, rot_step: float, trans_step: float) -> tuple[Tensor, Tensor, Tensor]:
        """Dequantized joint transforms: (R [J,3,3], quats [J,4], t [J,3]) float32."""
        rv = torch.from_numpy((rq.astype(np.float64) * rot_step).astype(np.float32))
        q = rotvec_to_quat(rv)
        t = torch.from_numpy((tq.astype(np.float64) * trans_step).astype(np.float32))
        return quat_to_matrix(q), q, t

    def predict(self, R: Tensor, q: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Skinned positions (plus persistent corrections) [N,3] and rotations [N,4]."""
        pos = self.skin.positions(self.x0, R, t, self.centers) + self.offset
        rot = quat_multiply(self.skin.quats(q), self.q0)
        return pos, rot

    def scene(self, pos: Tensor, rot: Tensor) -> GaussianScene:
        return GaussianScene(means=pos, quats=rot, log_scales=self.log_scales.clone(),
                             opacity_logits=self.opacity_logits.clone(), sh_dc=self.sh_dc.clone(),
                             sh_rest=self.sh_rest.clone())


@dataclass
class _Updates:
    """Decoded per-frame update streams of a tracked segment (frames 1..F-1)."""

    rq: np.ndarray          # [F,J,3] int (frame 0 = 0)
    tq: np.ndarray          # [F,J,3]
    pos: tuple              # counts, idx, vals
    col: tuple
    shu: tuple
    ops: tuple


def _apply(state: SegmentState, u: _Updates, f: int, hd: dict, cb: Tensor | None,
           cq: UniformQuant, oq: UniformQuant, sq: UniformQuant) -> None:
    """Apply frame f's sparse updates to ``state`` (f >= 1)."""
    fi = f - 1
    counts, idx, vals = u.pos
    s = _split(counts)
    a, b = s[fi], s[fi + 1]
    if b > a:
        i = torch.from_numpy(idx[a:b])
        state.offset[i] += torch.from_numpy((vals[a:b].astype(np.float64) * hd["pos_step"]).astype(np.float32))
    counts, idx, vals = u.col
    s = _split(counts)
    a, b = s[fi], s[fi + 1]
    if b > a:
        rgb = cq.dequantize(vals[a:b])
        state.sh_dc[torch.from_numpy(idx[a:b])] = torch.from_numpy(((rgb.astype(np.float64) - 0.5) / SH_C0).astype(np.float32))
    if cb is not None:
        counts, idx, vals = u.shu
        s = _split(counts)
        a, b = s[fi], s[fi + 1]
        if b > a:
            state.sh_rest[torch.from_numpy(idx[a:b])] = cb[torch.from_numpy(vals[a:b, 0])]
    counts, idx, vals = u.ops
    s = _split(counts)
    a, b = s[fi], s[fi + 1]
    if b > a:
        i = torch.from_numpy(idx[a:b])
        p = oq.dequantize(vals[a:b, :1])[:, 0].astype(np.float64)
        p = np.clip(p, 1e-6, 1 - 1e-6)
        state.opacity_logits[i] = torch.from_numpy((np.log(p) - np.log1p(-p)).astype(np.float32))
        state.log_scales[i] = torch.from_numpy(sq.dequantize(vals[a:b, 1:]))
    state.frame = f


# ---------------------------------------------------------------------- encoder
def _np64(t: Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def encode_intra(frames: list[GaussianScene], quant: lgs.QuantConfig) -> tuple[bytes, dict]:
    """Every frame coded independently with the scene codec."""
    chunks, sizes = [], []
    for fr in frames:
        blob, _ = lgs.encode(fr, None, quant)
        chunks.append(("KEYF", blob))
        sizes.append(len(blob))
    header = {"mode": INTRA, "frames": len(frames), "counts": [len(f) for f in frames]}
    return pack_container(SEG_MAGIC, SEG_VERSION, header, chunks), {"KEYF": sum(sizes), "frame_bytes": sizes}


def encode_tracked(frames: list[GaussianScene], st: SegmentSettings) -> tuple[bytes, dict]:
    """Encode a tracked segment (all frames share count and order). Returns (bytes, report)."""
    F = len(frames)
    n = len(frames[0])
    key_blob, rep = lgs.encode(frames[0], None, st.quant)
    perm = torch.from_numpy(rep.permutation.astype(np.int64))
    frames = [f[perm] for f in frames]
    key = lgs.decode(key_blob)
    deg = key.sh_degree
    x0 = key.means.double()
    n_joints = max(4, int(round(st.joint_fraction * n)))
    joint_idx = np.sort(farthest_point_sampling(_np64(key.means), n_joints))
    state = SegmentState(key, joint_idx, st.k, None)
    J = len(joint_idx)
    lo = torch.stack([f.means.min(0).values for f in frames]).min(0).values
    hi = torch.stack([f.means.max(0).values for f in frames]).max(0).values
    extent = float((hi - lo).max().clamp_min(1e-6))
    rot_step = float(np.float32(2 * np.pi / (1 << st.rot_bits)))
    trans_step = float(np.float32(st.trans_step or extent / (1 << 16)))
    med_scale = float(key.scales.median()) if n else 1.0
    pos_thr = float(np.float32(st.pos_threshold if st.pos_threshold is not None else st.pos_factor * med_scale))
    pos_step = pos_thr  # a corrected Gaussian is off by at most half the threshold
    k_rest = sh_rest_count(deg)

    # segment quantizers for appearance updates
    cq = UniformQuant.fit(np.zeros((1, 3)), 8, lo=0.0, hi=1.0)
    ops_all = torch.cat([torch.cat([f.opacities[:, None], f.log_scales], 1) for f in frames])
    oq = UniformQuant.fit(_np64(ops_all[:, :1]), st.opacity_bits)
    sq = UniformQuant.fit(_np64(ops_all[:, 1:]), st.scale_bits)
    o_step, s_step = float(oq.step.max()), float(sq.step.max())

    # SH update codebook: k-means over rest vectors that moved away from the keyframe (open loop)
    cb = None
    cbq = None
    if k_rest:
        cand = []
        for f in frames[1:]:
            d = ((f.sh_rest - frames[0].sh_rest) ** 2).mean((1, 2)).sqrt()
            cand.append(f.sh_rest[d > st.sh_threshold].reshape(-1, 3 * k_rest))
        cand = torch.cat(cand) if cand else torch.zeros(0, 3 * k_rest)
        if len(cand):
            from splat.kmeans import weighted_kmeans
            kk = max(1, min(st.sh_codebook, len(cand) // 4 or 1))
            res = weighted_kmeans(cand.double(), kk, iters=8, seed=0)
            cents = _np64(res.centroids)
            cbq = UniformQuant.fit(cents, 8)
            cb_int = cbq.quantize(cents)
            cb = torch.from_numpy(cbq.dequantize(cb_int)).reshape(-1, k_rest, 3)

    # last transmitted original values: updates are sent when the content changes
    sh_ref = frames[0].sh_rest.clone()
    op_ref, ls_ref = frames[0].opacities.double().clone(), frames[0].log_scales.double().clone()
    rq_all = np.zeros((F, J, 3), dtype=np.int64)
    tq_all = np.zeros((F, J, 3), dtype=np.int64)
    pos_u, col_u, shu_u, ops_u = ([], [], []), ([], [], []), ([], [], []), ([], [], [])
    for f in range(1, F):
        fr = frames[f]
        xt = fr.means.double()
        R, t = procrustes(x0, xt, state.bind_idx, state.bind_w, state.centers.double())
        rv = quat_to_rotvec(_rot_to_quat64(R))
        rq_all[f] = np.rint(_np64(rv) / rot_step).astype(np.int64)
        tq_all[f] = np.rint(_np64(t) / trans_step).astype(np.int64)
        Rd, qd, td = state.transforms(rq_all[f], tq_all[f], rot_step, trans_step)
        pred, _ = state.predict(Rd, qd, td)
        err = fr.means - pred
        mask = err.abs().amax(1) > pos_thr
        idx = torch.nonzero(mask)[:, 0].numpy()
        vals = np.rint(_np64(err[mask]) / pos_step).astype(np.int64)
        _push(pos_u, idx, vals, 3)
        # colour
        rgb = (fr.sh_dc.double() * SH_C0 + 0.5)
        cur = (state.sh_dc.double() * SH_C0 + 0.5)
        cm = ((rgb - cur).abs().amax(1) > st.colour_threshold)
        idx = torch.nonzero(cm)[:, 0].numpy()
        _push(col_u, idx, cq.quantize(_np64(rgb[cm])), 3)
        if cb is not None:
            sm = ((fr.sh_rest - sh_ref) ** 2).mean((1, 2)).sqrt() > st.sh_threshold
            d = ((fr.sh_rest - state.sh_rest) ** 2).mean((1, 2)).sqrt()
            idx = torch.nonzero(sm)[:, 0]
            if len(idx):
                from compress.scene.kmeans import assign
                lab, _ = assign(fr.sh_rest[idx].reshape(len(idx), -1).float(), cb.reshape(len(cb), -1).float())
                newd = ((fr.sh_rest[idx] - cb[lab]) ** 2).mean((1, 2)).sqrt()
                better = newd < d[idx]
                idx, lab = idx[better], lab[better]
                sh_ref[idx] = fr.sh_rest[idx]
            _push(shu_u, idx.numpy(), lab.numpy()[:, None] if len(idx) else np.zeros((0, 1), np.int64), 1)
        op = fr.opacities.double()
        om = ((op - op_ref).abs() > o_step) | ((fr.log_scales.double() - ls_ref).abs().amax(1) > s_step)
        op_ref[om], ls_ref[om] = op[om], fr.log_scales.double()[om]
        idx = torch.nonzero(om)[:, 0].numpy()
        vals = np.concatenate([oq.quantize(_np64(op[om])[:, None]), sq.quantize(_np64(fr.log_scales[om]))], 1)
        _push(ops_u, idx, vals, 4)
        u = _Updates(rq_all, tq_all, _cat(pos_u, 3), _cat(col_u, 3), _cat(shu_u, 1), _cat(ops_u, 4))
        _apply(state, u, f, {"pos_step": pos_step}, cb, cq, oq, sq)

    u = _Updates(rq_all, tq_all, _cat(pos_u, 3), _cat(col_u, 3), _cat(shu_u, 1), _cat(ops_u, 4))
    jtrf, pred_mode = _encode_transforms(rq_all, tq_all)
    header = {
        "mode": TRACKED, "frames": F, "count": n, "sh_degree": deg, "joints": J, "k": st.k,
        "length": state.length, "rot_step": rot_step, "trans_step": trans_step, "pos_step": pos_step,
        "transform_prediction": pred_mode,
        "colour": cq.to_json(), "opacity": oq.to_json(), "log_scales": sq.to_json(),
        "sh_codebook": 0 if cb is None else len(cb),
    }
    if cbq is not None:
        header["sh_codebook_quant"] = cbq.to_json()
    chunks = [("KEYF", key_blob), ("JIDX", encode_ints(np.diff(joint_idx, prepend=0))), ("JTRF", jtrf),
              ("POSU", pack_sparse(*u.pos)), ("COLU", pack_sparse(*u.col)), ("OPSU", pack_sparse(*u.ops))]
    if cb is not None:
        chunks += [("SHCB", encode_channels(cb_int, allow_delta=False)), ("SHUP", pack_sparse(*u.shu))]
    blob = pack_container(SEG_MAGIC, SEG_VERSION, header, chunks)
    report = {tag: len(d) for tag, d in chunks}
    report["position_updates"] = int(u.pos[0].sum())
    report["colour_updates"] = int(u.col[0].sum())
    return blob, report


def _rot_to_quat64(R: Tensor) -> Tensor:
    from .motion import matrix_to_quat
    return matrix_to_quat(R.double())


def _push(acc, idx: np.ndarray, vals: np.ndarray, c: int) -> None:
    acc[0].append(len(idx))
    acc[1].append(np.asarray(idx, dtype=np.int64))
    acc[2].append(np.asarray(vals, dtype=np.int64).reshape(len(idx), c))


def _cat(acc, c: int) -> tuple:
    if not acc[0]:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, c), np.int64)
    return np.asarray(acc[0], np.int64), np.concatenate(acc[1]), np.concatenate(acc[2]).reshape(-1, c)


def _encode_transforms(rq: np.ndarray, tq: np.ndarray) -> tuple[bytes, str]:
    """Frames 1..F-1 of the quantized joint transforms, predicted from the previous frame
    ("delta") or linearly from the previous two ("linear"), whichever is smaller."""
    v = np.concatenate([rq, tq], 2)  # [F,J,6]
    best = None
    for mode in ("delta", "linear"):
        r = _predict_residual(v, mode)[1:].reshape(-1, 6)
        blob = encode_channels(r, allow_delta=False)
        if best is None or len(blob) < len(best[0]):
            best = (blob, mode)
    return best


def _predict_residual(v: np.ndarray, mode: str) -> np.ndarray:
    pred = np.zeros_like(v)
    pred[1:] = v[:-1]
    if mode == "linear" and len(v) > 2:
        pred[2:] = 2 * v[1:-1] - v[:-2]
    return v - pred


def _decode_transforms(data: bytes, F: int, J: int, mode: str) -> np.ndarray:
    r = np.zeros((F, J, 6), dtype=np.int64)
    if F > 1:
        r[1:] = decode_channels(data, (F - 1) * J, 6, lo=-(1 << 40), hi=1 << 40, what="joint transforms").reshape(F - 1, J, 6)
    v = np.zeros_like(r)
    for f in range(1, F):
        if mode == "linear" and f >= 2:
            v[f] = r[f] + 2 * v[f - 1] - v[f - 2]
        else:
            v[f] = r[f] + v[f - 1]
    return v


# ---------------------------------------------------------------------- decoder
class DecodedSegment:
    """A parsed segment: decode any of its frames (sequential access is cheapest)."""

    def __init__(self, data: bytes):
        box = unpack_container(data, magic=SEG_MAGIC, max_version=SEG_VERSION, what="segment")
        h = box.header
        self.mode = h.get("mode")
        if self.mode not in (TRACKED, INTRA):
            raise FormatError(f"unknown segment mode {self.mode!r}")
        self.frames = get_int(h, "frames", 1, value_cap(len(data)), what="segment header")
        if self.mode == INTRA:
            self.keys = box.all("KEYF")
            if len(self.keys) != self.frames:
                raise FormatError(f"intra segment has {len(self.keys)} frames, header says {self.frames}")
            return
        try:
            self.n = int(h["count"])
            J = int(h["joints"])
            self.hd = {"pos_step": float(h["pos_step"])}
            self.rot_step, self.trans_step = float(h["rot_step"]), float(h["trans_step"])
            cq = UniformQuant.from_json(h["colour"], 3, "colour")
            oq = UniformQuant.from_json(h["opacity"], 1, "opacity")
            sq = UniformQuant.from_json(h["log_scales"], 3, "log-scales")
            ncb = int(h["sh_codebook"])
            k, length, mode = int(h["k"]), float(h["length"]), h["transform_prediction"]
        except (KeyError, TypeError, ValueError):
            raise FormatError("segment header is malformed") from None
        key = lgs.decode(box.get("KEYF"))
        if len(key) != self.n or not 1 <= J <= max(self.n, 1) or not 1 <= k <= 64:
            raise FormatError("segment keyframe does not match its header")
        require_at_most(self.frames * J * 6, value_cap(len(data)), "joint transform count")
        if not all(np.isfinite(v) and abs(v) < 1e30 for v in (self.hd["pos_step"], self.rot_step, self.trans_step, length)):
            raise FormatError("segment header holds non-finite steps")
        jgap = decode_ints(box.get("JIDX"), max_count=J)
        if jgap.size != J or (J > 1 and jgap[1:].min() <= 0) or jgap[0] < 0:
            raise FormatError("joint index stream is malformed")
        jidx = np.cumsum(jgap)
        if jidx[-1] >= self.n:
            raise FormatError("joint index outside the keyframe")
        self.state = SegmentState(key, jidx, k, length)
        F, n = self.frames, self.n
        k_rest = sh_rest_count(key.sh_degree)
        self.cb = None
        shu = (np.zeros(F - 1, np.int64), np.zeros(0, np.int64), np.zeros((0, 1), np.int64))
        require_at_most(ncb * max(3 * k_rest, 1), value_cap(len(data)), "SH codebook value count")
        if ncb and k_rest:
            cbq = UniformQuant.from_json(h.get("sh_codebook_quant"), 3 * k_rest, "SH codebook")
            cbi = decode_channels(box.get("SHCB"), ncb, 3 * k_rest, hi=cbq.levels, what="SH codebook")
            self.cb = torch.from_numpy(cbq.dequantize(cbi)).reshape(ncb, k_rest, 3)
            shu = unpack_sparse(box.get("SHUP"), F - 1, n, 1, lo=0, hi=ncb - 1, what="SH updates")
        v = _decode_transforms(box.get("JTRF"), F, J, mode)
        self.u = _Updates(
            v[:, :, :3], v[:, :, 3:],
            unpack_sparse(box.get("POSU"), F - 1, n, 3, lo=-(1 << 40), hi=1 << 40, what="position updates"),
            unpack_sparse(box.get("COLU"), F - 1, n, 3, lo=0, hi=cq.levels, what="colour updates"),
            shu,
            unpack_sparse(box.get("OPSU"), F - 1, n, 4, lo=0, hi=255 if oq.bits == 8 and sq.bits == 8 else (1 << 16) - 1,
                          what="opacity/scale updates"),
        )
        self.cq, self.oq, self.sq = cq, oq, sq

    def frame(self, f: int) -> GaussianScene:
        """Decode frame ``f`` (0-based within the segment)."""
        if not 0 <= f < self.frames:
            raise IndexError(f"frame {f} outside the segment's {self.frames} frames")
        if self.mode == INTRA:
            return lgs.decode(self.keys[f])
        st = self.state
        if f < st.frame:
            st.reset()
        for g in range(st.frame + 1, f + 1):
            _apply(st, self.u, g, self.hd, self.cb, self.cq, self.oq, self.sq)
        if f == 0:
            return st.scene(st.x0.clone(), st.q0.clone())
        R, q, t = st.transforms(self.u.rq[f], self.u.tq[f], self.rot_step, self.trans_step)
        pos, rot = st.predict(R, q, t)
        return st.scene(pos, rot)
