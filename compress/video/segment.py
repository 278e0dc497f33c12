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

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from compress.container import pack_container, unpack_container
from compress.entropy import decode_ints, encode_ints, pack_arrays, unpack_arrays
from compress.scene import codec as lgs
from compress.scene.quantize import UniformQuant
from compress.scene.streams import decode_channels, encode_channels
from splat.errors import FormatError, UsageError
from splat.header import get_int
from splat.limits import require_at_most, value_cap
from splat.scene import SH_C0, GaussianScene, sh_rest_count

from .correspondence import MatchTolerance
from .motion import (SparseSkin, default_length, farthest_point_sampling, knn_joints, matrix_to_quat, procrustes,
                     quat_multiply, quat_to_matrix, quat_to_rotvec, rotvec_to_quat, skin_weights)

SEG_MAGIC = b"GSVS"
SEG_VERSION = 2  # 2: deaths and births (KILL, BORN, BRTH) in tracked segments
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
    match: MatchTolerance = field(default_factory=MatchTolerance)


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
def rest_pose(born: GaussianScene, centers: Tensor, q: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Keyframe-space means [M,3] and unit quats [M,4] of Gaussians ``born`` at a frame
    whose joint rotations are q [J,4] and translations t [J,3]: the inverse transform of the
    joint whose moved centre c_j + t_j is nearest (float32)."""
    x = born.means.float()
    moved = (centers + t).contiguous()
    j = knn_joints(x.contiguous(), moved, 1)[0][:, 0]
    qi = q[j] * torch.tensor([1.0, -1.0, -1.0, -1.0])  # inverse (conjugate) rotation
    x0 = (quat_to_matrix(qi) @ (x - moved[j])[:, :, None])[:, :, 0] + centers[j]
    q0 = quat_multiply(qi, born.unit_quats.float())
    return x0, q0 / q0.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class SegmentState:
    """Decoder state of a tracked segment: the current Gaussians' rest poses (keyframe
    space), their skin binding, and the per-Gaussian persistent values that sparse updates
    modify. Deaths remove Gaussians, births append them (section 3.5 of the spec). Shared by
    encoder and decoder."""

    def __init__(self, key: GaussianScene, joint_idx: np.ndarray, k: int, length: float | None):
        self.key = key
        self.k = k
        self.joint_idx = torch.as_tensor(joint_idx, dtype=torch.int64)
        x0 = key.means.float().contiguous()
        self.centers = x0[self.joint_idx]
        bind_idx, d2 = knn_joints(x0, self.centers, k)
        self.length = default_length(d2) if length is None else float(length)
        self._key_bind = (bind_idx, skin_weights(d2, self.length))
        self.reset()

    def reset(self) -> None:
        """Back to the keyframe (frame 0)."""
        self.frame = 0
        self.x0 = self.key.means.float().contiguous()
        self.q0 = self.key.unit_quats.float()
        self.bind_idx, self.bind_w = self._key_bind
        self.skin = SparseSkin(self.bind_idx, self.bind_w, len(self.centers))
        self.offset = torch.zeros_like(self.x0)
        self.sh_dc = self.key.sh_dc.clone()
        self.sh_rest = self.key.sh_rest.clone()
        self.opacity_logits = self.key.opacity_logits.clone()
        self.log_scales = self.key.log_scales.clone()

    def __len__(self) -> int:
        return len(self.x0)

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

    def kill(self, idx: np.ndarray) -> None:
        """Remove the Gaussians at ``idx`` (indices into the current order); the rest keep
        their relative order."""
        if len(idx) == 0:
            return
        keep = torch.ones(len(self), dtype=torch.bool)
        keep[torch.from_numpy(np.asarray(idx, dtype=np.int64))] = False
        for name in ("x0", "q0", "bind_idx", "bind_w", "offset", "sh_dc", "sh_rest", "opacity_logits", "log_scales"):
            setattr(self, name, getattr(self, name)[keep])
        self.skin = SparseSkin(self.bind_idx, self.bind_w, len(self.centers))

    def birth(self, born: GaussianScene, q: Tensor, t: Tensor) -> None:
        """Append ``born`` (decoded, at this frame's pose). Rest pose: the inverse of the
        transform (quats q [J,4], translations t [J,3]) of the joint whose moved centre
        c_j + t_j is nearest; then bound to the keyframe joints like any Gaussian."""
        if len(born) == 0:
            return
        x0, q0 = rest_pose(born, self.centers, q, t)
        bi, d2 = knn_joints(x0.contiguous(), self.centers, self.k)
        self.x0 = torch.cat([self.x0, x0]).contiguous()
        self.q0 = torch.cat([self.q0, q0])
        self.bind_idx = torch.cat([self.bind_idx, bi])
        self.bind_w = torch.cat([self.bind_w, skin_weights(d2, self.length)])
        self.offset = torch.cat([self.offset, torch.zeros_like(x0)])
        self.sh_dc = torch.cat([self.sh_dc, born.sh_dc.float()])
        self.sh_rest = torch.cat([self.sh_rest, born.sh_rest.float()])
        self.opacity_logits = torch.cat([self.opacity_logits, born.opacity_logits.float()])
        self.log_scales = torch.cat([self.log_scales, born.log_scales.float()])
        self.skin = SparseSkin(self.bind_idx, self.bind_w, len(self.centers))


_EMPTY = (np.zeros(0, np.int64), np.zeros(0, np.int64), None)


@dataclass
class _Updates:
    """Decoded per-frame update streams of a tracked segment (frames 1..F-1)."""

    rq: np.ndarray          # [F,J,3] int (frame 0 = 0)
    tq: np.ndarray          # [F,J,3]
    pos: tuple              # counts, idx, vals
    col: tuple
    shu: tuple
    ops: tuple
    kill: tuple = _EMPTY    # counts, idx, None
    born: list | None = None  # [F] decoded scenes of the Gaussians born at each frame (None: none)


@dataclass
class _Quant:
    """A tracked segment's quantizers (see the spec's header table)."""

    rot_step: float
    trans_step: float
    pos_step: float
    cq: UniformQuant
    oq: UniformQuant
    sq: UniformQuant
    cb: Tensor | None = None       # dequantized SH codebook [C,K,3]
    cbq: UniformQuant | None = None
    cb_int: np.ndarray | None = None


def _frame_slice(part: tuple, fi: int) -> tuple[np.ndarray, np.ndarray | None]:
    counts, idx, vals = part
    s = _split(counts)
    a, b = s[fi], s[fi + 1]
    return idx[a:b], (None if vals is None else vals[a:b])


def _apply(state: SegmentState, u: _Updates, f: int, qz: _Quant) -> None:
    """Apply frame f's deaths, births and sparse updates to ``state`` (f >= 1)."""
    fi = f - 1
    if len(u.kill[0]):
        state.kill(_frame_slice(u.kill, fi)[0])
    if u.born is not None and u.born[f] is not None:
        _, q, t = state.transforms(u.rq[f], u.tq[f], qz.rot_step, qz.trans_step)
        state.birth(u.born[f], q, t)
    idx, vals = _frame_slice(u.pos, fi)
    if len(idx):
        state.offset[torch.from_numpy(idx)] += torch.from_numpy((vals.astype(np.float64) * qz.pos_step).astype(np.float32))
    idx, vals = _frame_slice(u.col, fi)
    if len(idx):
        rgb = qz.cq.dequantize(vals)
        state.sh_dc[torch.from_numpy(idx)] = torch.from_numpy(((rgb.astype(np.float64) - 0.5) / SH_C0).astype(np.float32))
    if qz.cb is not None:
        idx, vals = _frame_slice(u.shu, fi)
        if len(idx):
            state.sh_rest[torch.from_numpy(idx)] = qz.cb[torch.from_numpy(vals[:, 0])]
    idx, vals = _frame_slice(u.ops, fi)
    if len(idx):
        i = torch.from_numpy(idx)
        p = qz.oq.dequantize(vals[:, :1])[:, 0].astype(np.float64)
        p = np.clip(p, 1e-6, 1 - 1e-6)
        state.opacity_logits[i] = torch.from_numpy((np.log(p) - np.log1p(-p)).astype(np.float32))
        state.log_scales[i] = torch.from_numpy(qz.sq.dequantize(vals[:, 1:]))
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


def _fit_quant(key: GaussianScene, frames: list[GaussianScene], st: SegmentSettings) -> _Quant:
    """Segment quantizers from the keyframe and the (possibly unordered) frames."""
    lo = torch.stack([f.means.min(0).values for f in frames if len(f)]).min(0).values
    hi = torch.stack([f.means.max(0).values for f in frames if len(f)]).max(0).values
    extent = float((hi - lo).max().clamp_min(1e-6))
    med_scale = float(key.scales.median()) if len(key) else 1.0
    pos_thr = float(np.float32(st.pos_threshold if st.pos_threshold is not None else st.pos_factor * med_scale))
    ops_all = torch.cat([torch.cat([f.opacities[:, None], f.log_scales], 1) for f in frames])
    return _Quant(
        rot_step=float(np.float32(2 * np.pi / (1 << st.rot_bits))),
        trans_step=float(np.float32(st.trans_step or extent / (1 << 16))),
        pos_step=pos_thr,  # a corrected Gaussian is off by at most half the threshold
        cq=UniformQuant.fit(np.zeros((1, 3)), 8, lo=0.0, hi=1.0),
        oq=UniformQuant.fit(_np64(ops_all[:, :1]), st.opacity_bits),
        sq=UniformQuant.fit(_np64(ops_all[:, 1:]), st.scale_bits),
    )


def _fit_codebook(qz: _Quant, frames: list[GaussianScene], st: SegmentSettings, ordered: bool) -> None:
    """SH update codebook: k-means over the SH rest vectors later frames may need (open
    loop). Ordered frames: the vectors that moved away from the keyframe's; unordered: a
    sample of every later frame's."""
    k_rest = frames[0].sh_rest.shape[1]
    if not k_rest or len(frames) < 2:
        return
    if ordered:
        cand = [f.sh_rest[((f.sh_rest - frames[0].sh_rest) ** 2).mean((1, 2)).sqrt() > st.sh_threshold]
                for f in frames[1:]]
    else:  # a sample of every later frame's SH vectors that frame 0 does not hold already
        from scipy.spatial import cKDTree

        g = torch.Generator().manual_seed(0)
        per = max(1, 8192 // (len(frames) - 1))
        tree = cKDTree(_np64(frames[0].sh_rest.reshape(len(frames[0]), -1)))
        cand = []
        for f in frames[1:]:
            c = f.sh_rest[torch.randperm(len(f), generator=g)[:per]].reshape(-1, 3 * k_rest)
            d, _ = tree.query(_np64(c), k=1)
            cand.append(c[torch.from_numpy(d / np.sqrt(3 * k_rest) > st.sh_threshold)])
    cand = torch.cat(cand).reshape(-1, 3 * k_rest)
    if not len(cand):
        return
    from splat.kmeans import weighted_kmeans
    kk = max(1, min(st.sh_codebook, len(cand) // 4 or 1))
    cents = _np64(weighted_kmeans(cand.double(), kk, iters=8, seed=0).centroids)
    qz.cbq = UniformQuant.fit(cents, 8)
    qz.cb_int = qz.cbq.quantize(cents)
    qz.cb = torch.from_numpy(qz.cbq.dequantize(qz.cb_int)).reshape(-1, k_rest, 3)


class _Streams:
    """Per-frame update lists the encoder fills (frames 1..F-1)."""

    def __init__(self) -> None:
        self.acc = {name: ([], [], []) for name in ("pos", "col", "shu", "ops", "kill")}
        self.born: list = [None]
        self.born_blobs: list[bytes] = []

    def push(self, name: str, idx: np.ndarray, vals: np.ndarray | None, c: int) -> None:
        _push(self.acc[name], idx, np.zeros((len(idx), 0)) if vals is None else vals, c)

    def updates(self, rq: np.ndarray, tq: np.ndarray) -> _Updates:
        width = {"pos": 3, "col": 3, "shu": 1, "ops": 4, "kill": 0}
        parts = {k: _cat(v, width[k]) for k, v in self.acc.items()}
        kill = parts["kill"][:2] + (None,)
        return _Updates(rq, tq, parts["pos"], parts["col"], parts["shu"], parts["ops"], kill,
                        self.born if any(b is not None for b in self.born) else None)


@dataclass
class _Refs:
    """The original values last transmitted per Gaussian (appearance updates are sent when
    the content moves away from them)."""

    sh: Tensor
    op: Tensor
    ls: Tensor

    def keep(self, keep: Tensor, born: GaussianScene | None) -> None:
        self.sh, self.op, self.ls = self.sh[keep], self.op[keep], self.ls[keep]
        if born is not None:
            self.sh = torch.cat([self.sh, born.sh_rest])
            self.op = torch.cat([self.op, born.opacities.double()])
            self.ls = torch.cat([self.ls, born.log_scales.double()])


def _fit_transforms(state: SegmentState, target: Tensor, valid: Tensor, prev: np.ndarray, qz: _Quant) -> np.ndarray:
    """Quantized joint transforms [J,6] fitting the current Gaussians (rest poses) onto
    ``target`` [N,3] by weighted Procrustes over the ``valid`` ones; joints without any
    valid Gaussian keep ``prev``."""
    sel = torch.nonzero(valid)[:, 0]
    R, t = procrustes(state.x0[sel].double(), target[sel].double(), state.bind_idx[sel], state.bind_w[sel],
                      state.centers.double())
    rv = quat_to_rotvec(matrix_to_quat(R.double()))
    out = np.concatenate([np.rint(_np64(rv) / qz.rot_step), np.rint(_np64(t) / qz.trans_step)], 1).astype(np.int64)
    W = torch.zeros(len(state.centers), dtype=torch.float64).index_add_(
        0, state.bind_idx[sel].reshape(-1), state.bind_w[sel].reshape(-1).double())
    empty = (W <= 0).numpy()
    out[empty] = prev[empty]
    return out


def _match_frame(state: SegmentState, fr: GaussianScene, v: np.ndarray, f: int, qz: _Quant,
                 st: SegmentSettings, sx: _Streams) -> tuple[GaussianScene, np.ndarray, GaussianScene | None]:
    """Correspondence of frame f with the previous decoded frame (``register.py``: starting
    from the transforms extrapolated from the previous two frames, appearance anchors and a
    coarse-to-fine deformation, so large motion keeps its matches). Applies the deaths to ``state`` and
    records them; returns (frame reordered as survivors then births, survivor mask [N_prev],
    births in decoded order or None)."""
    from .register import RegisterSettings, register_frames

    pred_v = v[f - 1] if f < 2 else 2 * v[f - 1] - v[f - 2]
    R, q, t = state.transforms(pred_v[:, :3], pred_v[:, 3:], qz.rot_step, qz.trans_step)
    pos, rot = state.predict(R, q, t)
    prev = state.scene(pos, rot)
    m = register_frames(prev, fr, RegisterSettings(tolerance=st.match)).match
    _pair_leftovers(m, _np64(pos), _np64(fr.means))
    surv = m >= 0
    dead = np.flatnonzero(~surv)
    sx.push("kill", dead, None, 0)
    state.kill(dead)
    born_src = np.setdiff1d(np.arange(len(fr)), m[surv])
    ordered = fr[torch.from_numpy(m[surv])]
    born = fr[torch.from_numpy(born_src)] if len(born_src) else None
    perm, born_dec = _code_births(born, st, sx)
    if perm is not None:
        ordered = GaussianScene.cat([ordered, born[perm]])
    return ordered, surv, born_dec


def _pair_leftovers(m: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
    """Pair what the correspondence left (in place): each unmatched source Gaussian takes
    the nearest unmatched destination, nearest pairs first.
    A coded update (position, colour, opacity/scale) costs less than a death plus an
    intra-coded birth (an ``.lgs`` blob: on the performer about 4,000 bits a birth at a
    few births a frame), whether or not the pair is the same Gaussian. Deaths and births
    remain only where the counts differ."""
    from scipy.spatial import cKDTree

    while True:  # rounds: leftovers that competed for the same nearest destinations go again
        free = np.ones(len(dst), dtype=bool)
        free[m[m >= 0]] = False
        si, di = np.flatnonzero(m < 0), np.flatnonzero(free)
        if not len(si) or not len(di):
            return
        k = min(8, len(di))
        d, j = cKDTree(dst[di]).query(src[si], k=k)
        d, j = d.reshape(len(si), k), j.reshape(len(si), k)
        rows, slots = np.nonzero(np.isfinite(d))
        used_s, used_d = set(), set()
        for t in np.lexsort((rows, d[rows, slots])):
            a, b = int(rows[t]), int(j[rows[t], slots[t]])
            if a not in used_s and b not in used_d:
                used_s.add(a)
                used_d.add(b)
                m[si[a]] = di[b]


def _code_births(born: GaussianScene | None, st: SegmentSettings, sx: _Streams) -> tuple[Tensor | None, GaussianScene | None]:
    """Intra-code a frame's births (``.lgs``) and record them: (the permutation [M] from
    ``born``'s order to the decoded order, the decoded births); (None, None) when none."""
    if born is None or not len(born):
        sx.born.append(None)
        return None, None
    blob, rep = lgs.encode(born, None, st.quant)
    born_dec = lgs.decode(blob)
    sx.born_blobs.append(blob)
    sx.born.append(born_dec)
    return torch.from_numpy(rep.permutation.astype(np.int64)), born_dec


def _explicit_events(state: SegmentState, fr: GaussianScene, dead: np.ndarray, order: list[Tensor], st: SegmentSettings,
                     sx: _Streams, refs: "_Refs") -> tuple[GaussianScene, GaussianScene | None]:
    """Deaths and births the encoder chose (tracking by rendering). The caller's order of
    the Gaussians differs from the decoded one where births were re-sorted by the birth
    codec: ``order[0]`` [N] maps each decoded Gaussian to the caller's index (updated here).
    ``dead`` indexes the caller's previous frame; ``fr`` holds its survivors in the caller's
    order, then the births. Applies the deaths to ``state`` and ``refs``; returns (frame in
    decoded order, decoded births)."""
    prev = order[0]
    to_state = torch.empty_like(prev)
    to_state[prev] = torch.arange(len(prev))
    dead_s = torch.sort(to_state[torch.from_numpy(np.asarray(dead, dtype=np.int64))]).values
    sx.push("kill", dead_s.numpy(), None, 0)
    keep = torch.ones(len(state), dtype=torch.bool)
    keep[dead_s] = False
    state.kill(dead_s.numpy())
    alive = torch.ones(len(prev), dtype=torch.bool)
    alive[torch.from_numpy(np.asarray(dead, dtype=np.int64))] = False
    rank = torch.cumsum(alive.long(), 0) - 1  # caller's new index of each surviving caller index
    surv = rank[prev[keep]]
    n_s = len(surv)
    born = fr[torch.arange(n_s, len(fr))] if len(fr) > n_s else None
    perm, born_dec = _code_births(born, st, sx)
    order[0] = surv if perm is None else torch.cat([surv, n_s + perm])
    out = fr[order[0]]
    refs.keep(keep, None if born_dec is None else out[torch.arange(n_s, len(out))])
    return out, born_dec


def _appearance_updates(state: SegmentState, fr: GaussianScene, qz: _Quant, st: SegmentSettings, refs: _Refs,
                        sx: _Streams) -> None:
    """Colour, SH and opacity/scale updates where frame ``fr`` (in state order) moved away."""
    rgb = (fr.sh_dc.double() * SH_C0 + 0.5)
    cur = (state.sh_dc.double() * SH_C0 + 0.5)
    cm = ((rgb - cur).abs().amax(1) > st.colour_threshold)
    sx.push("col", torch.nonzero(cm)[:, 0].numpy(), qz.cq.quantize(_np64(rgb[cm])), 3)
    if qz.cb is not None:
        from splat.kmeans import assign
        sm = ((fr.sh_rest - refs.sh) ** 2).mean((1, 2)).sqrt() > st.sh_threshold
        d = ((fr.sh_rest - state.sh_rest) ** 2).mean((1, 2)).sqrt()
        idx = torch.nonzero(sm)[:, 0]
        lab = torch.zeros(0, dtype=torch.int64)
        if len(idx):
            lab, _ = assign(fr.sh_rest[idx].reshape(len(idx), -1).float(), qz.cb.reshape(len(qz.cb), -1).float())
            better = ((fr.sh_rest[idx] - qz.cb[lab]) ** 2).mean((1, 2)).sqrt() < d[idx]
            idx, lab = idx[better], lab[better]
            refs.sh[idx] = fr.sh_rest[idx]
        sx.push("shu", idx.numpy(), lab.numpy().reshape(-1, 1), 1)
    o_step, s_step = float(qz.oq.step.max()), float(qz.sq.step.max())
    op = fr.opacities.double()
    om = ((op - refs.op).abs() > o_step) | ((fr.log_scales.double() - refs.ls).abs().amax(1) > s_step)
    refs.op[om], refs.ls[om] = op[om], fr.log_scales.double()[om]
    vals = np.concatenate([qz.oq.quantize(_np64(op[om])[:, None]), qz.sq.quantize(_np64(fr.log_scales[om]))], 1)
    sx.push("ops", torch.nonzero(om)[:, 0].numpy(), vals, 4)


def joint_indices(key: GaussianScene, joint_fraction: float) -> np.ndarray:
    """The segment's joints: ``joint_fraction`` of the (decoded) keyframe's Gaussians, at
    least 4, by farthest-point sampling of their means; ascending indices."""
    return np.sort(farthest_point_sampling(_np64(key.means), max(4, int(round(joint_fraction * len(key))))))


def encode_keyframe(key: GaussianScene, quant: lgs.QuantConfig) -> tuple[bytes, GaussianScene, Tensor]:
    """A segment's keyframe: (``.lgs`` bytes, the decoded keyframe, the permutation [N] int64
    from ``key``'s order to the decoded order)."""
    blob, rep = lgs.encode(key, None, quant)
    return blob, lgs.decode(blob), torch.from_numpy(rep.permutation.astype(np.int64))


def encode_tracked(frames: list[GaussianScene], st: SegmentSettings, *, match: bool = False,
                   keyframe: tuple[bytes, GaussianScene] | None = None,
                   transforms: np.ndarray | None = None, deaths: list[np.ndarray] | None = None) -> tuple[bytes, dict]:
    """Encode a tracked segment. ``match=False``: every frame holds the same Gaussians in the
    same order. ``match=True``: order and count may change; each frame is matched to the
    previous decoded frame, unmatched Gaussians die or are born. ``keyframe``: (bytes,
    decoded) from :func:`encode_keyframe`, the frames then already in the decoded order.
    ``transforms`` [F,J,6] (ordered frames only): each frame's joint rotation vectors
    (radians) and translations for the joints of :func:`joint_indices`, used instead of
    fitting them to the frames' positions (tracking by rendering knows them). ``deaths``
    (with ``keyframe``, ordered frames): per frame, the indices of the previous frame's
    Gaussians that die; frame f then holds the survivors in order followed by its births,
    which are intra-coded (frame 0's entry is ignored). Returns (bytes, report)."""
    F = len(frames)
    frames = list(frames)
    if deaths is not None and (match or keyframe is None or len(deaths) != F):
        raise ValueError("deaths need ordered frames, a precoded keyframe and one entry per frame")
    events = deaths is not None
    if not match and not events and any(len(f) != len(frames[0]) for f in frames):
        raise UsageError("tracked coding needs the same Gaussian count in every frame")
    if keyframe is None:
        key_blob, key, perm = encode_keyframe(frames[0], st.quant)
        frames[0] = frames[0][perm]
        if not match:
            frames[1:] = [f[perm] for f in frames[1:]]
    else:
        key_blob, key = keyframe
    n = len(key)
    joint_idx = joint_indices(key, st.joint_fraction)
    state = SegmentState(key, joint_idx, st.k, None)
    J = len(joint_idx)
    if transforms is not None and (match or transforms.shape != (F, J, 6)):
        raise ValueError(f"transforms must be [{F},{J},6] for ordered frames, got {tuple(transforms.shape)}")
    qz = _fit_quant(key, frames, st)
    _fit_codebook(qz, frames, st, ordered=not (match or events))
    refs = _Refs(frames[0].sh_rest.clone(), frames[0].opacities.double().clone(), frames[0].log_scales.double().clone())
    v = np.zeros((F, J, 6), dtype=np.int64)
    sx = _Streams()
    order = [torch.arange(n)]  # with deaths: decoded index -> caller's index
    for f in range(1, F):
        fr, valid = frames[f], torch.ones(len(frames[f]), dtype=torch.bool)
        if match:
            fr, surv, born = _match_frame(state, fr, v, f, qz, st, sx)
            refs.keep(torch.from_numpy(surv), None if born is None else fr[len(fr) - len(born):])
            valid = torch.arange(len(fr)) < int(surv.sum())
        elif events:
            fr, _ = _explicit_events(state, fr, deaths[f], order, st, sx, refs)
        if transforms is None:
            v[f] = _fit_transforms(state, fr.means, valid, v[f - 1], qz)
        else:
            v[f] = np.rint(transforms[f] / np.array([qz.rot_step] * 3 + [qz.trans_step] * 3)).astype(np.int64)
        if (match or events) and sx.born[f] is not None:
            _, q, t = state.transforms(v[f, :, :3], v[f, :, 3:], qz.rot_step, qz.trans_step)
            state.birth(sx.born[f], q, t)
        R, q, t = state.transforms(v[f, :, :3], v[f, :, 3:], qz.rot_step, qz.trans_step)
        pred, _ = state.predict(R, q, t)
        err = fr.means - pred
        mask = err.abs().amax(1) > qz.pos_step
        sx.push("pos", torch.nonzero(mask)[:, 0].numpy(), np.rint(_np64(err[mask]) / qz.pos_step).astype(np.int64), 3)
        _appearance_updates(state, fr, qz, st, refs, sx)
        u = sx.updates(v[..., :3], v[..., 3:])
        u.kill, u.born = _EMPTY, None  # deaths and births of frame f are applied already
        _apply(state, u, f, qz)
    return _pack_tracked(F, n, key, key_blob, joint_idx, state, qz, v, sx, st, match or events)


def _pack_tracked(F: int, n: int, key: GaussianScene, key_blob: bytes, joint_idx: np.ndarray, state: SegmentState,
                  qz: _Quant, v: np.ndarray, sx: _Streams, st: SegmentSettings, match: bool) -> tuple[bytes, dict]:
    u = sx.updates(v[..., :3], v[..., 3:])
    jtrf, pred_mode = _encode_transforms(v[..., :3], v[..., 3:])
    header = {
        "mode": TRACKED, "frames": F, "count": n, "sh_degree": key.sh_degree, "joints": len(joint_idx), "k": st.k,
        "length": state.length, "rot_step": qz.rot_step, "trans_step": qz.trans_step, "pos_step": qz.pos_step,
        "transform_prediction": pred_mode,
        "colour": qz.cq.to_json(), "opacity": qz.oq.to_json(), "log_scales": qz.sq.to_json(),
        "sh_codebook": 0 if qz.cb is None else len(qz.cb),
    }
    if qz.cbq is not None:
        header["sh_codebook_quant"] = qz.cbq.to_json()
    chunks = [("KEYF", key_blob), ("JIDX", encode_ints(np.diff(joint_idx, prepend=0))), ("JTRF", jtrf),
              ("POSU", pack_sparse(*u.pos)), ("COLU", pack_sparse(*u.col)), ("OPSU", pack_sparse(*u.ops))]
    if qz.cb is not None:
        chunks += [("SHCB", encode_channels(qz.cb_int, allow_delta=False)), ("SHUP", pack_sparse(*u.shu))]
    if match:
        births = np.array([0 if b is None else len(b) for b in sx.born[1:]], dtype=np.int64)
        header["correspondence"] = "encoder"
        chunks += [("KILL", pack_sparse(u.kill[0], u.kill[1], None)), ("BORN", encode_ints(births))]
        chunks += [("BRTH", b) for b in sx.born_blobs]
    blob = pack_container(SEG_MAGIC, SEG_VERSION, header, chunks)
    report = {tag: sum(len(d) for t2, d in chunks if t2 == tag) for tag, _ in chunks}
    report["position_updates"] = int(u.pos[0].sum())
    report["colour_updates"] = int(u.col[0].sum())
    report["deaths"] = int(u.kill[0].sum())
    report["births"] = int(sum(0 if b is None else len(b) for b in sx.born))
    return blob, report


def _push(acc, idx: np.ndarray, vals: np.ndarray, c: int) -> None:
    acc[0].append(len(idx))
    acc[1].append(np.asarray(idx, dtype=np.int64))
    acc[2].append(np.asarray(vals, dtype=np.int64).reshape(len(idx), c))


def _cat(acc, c: int) -> tuple:
    if not acc[0]:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, c), np.int64)
    vals = np.concatenate(acc[2])
    return np.asarray(acc[0], np.int64), np.concatenate(acc[1]), vals.reshape(len(vals), c)


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
def _decode_births(box, F: int, sh_degree: int, n: int) -> tuple[tuple, list]:
    """KILL/BORN/BRTH chunks: (kill counts, indices, None) and [F] born scenes (None: none)."""
    births = decode_ints(box.get("BORN"), max_count=F)
    blobs = box.all("BRTH")
    if births.size != F - 1 or (births.size and births.min() < 0) or int((births > 0).sum()) != len(blobs):
        raise FormatError("birth counts do not match the birth chunks")
    born: list = [None] * F
    it = iter(blobs)
    for f in np.flatnonzero(births) + 1:
        sc = lgs.decode(next(it))
        if len(sc) != births[f - 1] or sc.sh_degree != sh_degree:
            raise FormatError(f"frame {f}: birth chunk holds {len(sc)} Gaussians, counts say {births[f - 1]}")
        born[f] = sc
    bound = n + sum(len(b) for b in born if b is not None)  # no frame holds more Gaussians
    kc, ki, _ = unpack_sparse(box.get("KILL"), F - 1, bound, 0, lo=0, hi=None, what="deaths")
    return (kc, ki, None), born


def _check_sizes(n: int, u: _Updates, F: int) -> None:
    """Every index of every frame lies inside that frame's Gaussian count."""
    size = n
    kill_s = _split(u.kill[0]) if len(u.kill[0]) else None
    for f in range(1, F):
        if kill_s is not None:
            ki = u.kill[1][kill_s[f - 1]:kill_s[f]]
            if len(ki) and ki.max() >= size:
                raise FormatError(f"frame {f}: death index {int(ki.max())} outside 0..{size - 1}")
            size -= len(ki)
        if u.born is not None and u.born[f] is not None:
            size += len(u.born[f])
        for name in ("pos", "col", "shu", "ops"):
            idx, _ = _frame_slice(getattr(u, name), f - 1)
            if len(idx) and idx.max() >= size:
                raise FormatError(f"frame {f}: {name} update index {int(idx.max())} outside 0..{size - 1}")


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
            cq = UniformQuant.from_json(h["colour"], 3, "colour")
            oq = UniformQuant.from_json(h["opacity"], 1, "opacity")
            sq = UniformQuant.from_json(h["log_scales"], 3, "log-scales")
            self.qz = _Quant(float(h["rot_step"]), float(h["trans_step"]), float(h["pos_step"]), cq, oq, sq)
            ncb = int(h["sh_codebook"])
            k, length, mode = int(h["k"]), float(h["length"]), h["transform_prediction"]
            matched = h.get("correspondence", "fixed")
        except (KeyError, TypeError, ValueError):
            raise FormatError("segment header is malformed") from None
        if matched not in ("fixed", "encoder") or self.frames < 1:
            raise FormatError("segment header is malformed (correspondence or frame count)")
        key = lgs.decode(box.get("KEYF"))
        if len(key) != self.n or not 1 <= J <= max(self.n, 1) or not 1 <= k <= 64:
            raise FormatError("segment keyframe does not match its header")
        require_at_most(self.frames * J * 6, value_cap(len(data)), "joint transform count")
        if not all(np.isfinite(v) and abs(v) < 1e30 for v in (self.qz.pos_step, self.qz.rot_step, self.qz.trans_step, length)):
            raise FormatError("segment header holds non-finite steps")
        jgap = decode_ints(box.get("JIDX"), max_count=J)
        if jgap.size != J or (J > 1 and jgap[1:].min() <= 0) or jgap[0] < 0:
            raise FormatError("joint index stream is malformed")
        jidx = np.cumsum(jgap)
        if jidx[-1] >= self.n:
            raise FormatError("joint index outside the keyframe")
        self.state = SegmentState(key, jidx, k, length)
        F, n = self.frames, self.n
        kill, born = _EMPTY, None
        if matched == "encoder":
            kill, born = _decode_births(box, F, key.sh_degree, n)
            n = n + sum(len(b) for b in born if b is not None)  # no frame can hold more
        k_rest = sh_rest_count(key.sh_degree)
        shu = (np.zeros(F - 1, np.int64), np.zeros(0, np.int64), np.zeros((0, 1), np.int64))
        require_at_most(ncb * max(3 * k_rest, 1), value_cap(len(data)), "SH codebook value count")
        if ncb and k_rest:
            cbq = UniformQuant.from_json(h.get("sh_codebook_quant"), 3 * k_rest, "SH codebook")
            cbi = decode_channels(box.get("SHCB"), ncb, 3 * k_rest, hi=cbq.levels, what="SH codebook")
            self.qz.cb = torch.from_numpy(cbq.dequantize(cbi)).reshape(ncb, k_rest, 3)
            shu = unpack_sparse(box.get("SHUP"), F - 1, n, 1, lo=0, hi=ncb - 1, what="SH updates")
        v = _decode_transforms(box.get("JTRF"), F, J, mode)
        self.u = _Updates(
            v[:, :, :3], v[:, :, 3:],
            unpack_sparse(box.get("POSU"), F - 1, n, 3, lo=-(1 << 40), hi=1 << 40, what="position updates"),
            unpack_sparse(box.get("COLU"), F - 1, n, 3, lo=0, hi=cq.levels, what="colour updates"),
            shu,
            unpack_sparse(box.get("OPSU"), F - 1, n, 4, lo=0, hi=255 if oq.bits == 8 and sq.bits == 8 else (1 << 16) - 1,
                          what="opacity/scale updates"),
            kill, born,
        )
        if matched == "encoder":
            _check_sizes(self.n, self.u, F)

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
            _apply(st, self.u, g, self.qz)
        if f == 0:
            return st.scene(st.x0.clone(), st.q0.clone())
        R, q, t = st.transforms(self.u.rq[f], self.u.tq[f], self.qz.rot_step, self.qz.trans_step)
        pos, rot = st.predict(R, q, t)
        return st.scene(pos, rot)
