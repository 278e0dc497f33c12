"""nerfstudio splatfacto checkpoints: ``outputs/<name>/splatfacto/<run>/nerfstudio_models/step-*.ckpt``.

A checkpoint is a ``torch.save`` zip holding ``{"step", "pipeline", "optimizers", ...}``;
``pipeline`` is the pipeline's state dict, whose Gaussians sit under
``_model.gauss_params.`` (``_model.module.gauss_params.`` after multi-GPU training):

* ``means`` [N,3]; ``scales`` [N,3] log-scales; ``quats`` [N,4] wxyz, unnormalised;
* ``opacities`` [N,1] logits;
* ``features_dc`` [N,3] and ``features_rest`` [N,K,3] with K = (d+1)^2 - 1.
  With ``sh_degree > 0`` ``features_dc`` is the SH DC term; with ``sh_degree = 0``
  (K = 0) it holds colour *logits* (colour = sigmoid), which are converted here.

The frame is nerfstudio's dataparser frame (see ``dataparser_transforms.json`` and
:func:`splat.camera.apply_dataparser_transform`). Checkpoints are loaded on the CPU
with ``torch.load(weights_only=True)``: only tensors and plain containers, never
arbitrary pickled objects. Reading accepts the ``.ckpt``, its ``nerfstudio_models``
folder or the run folder (the latest step is taken; ``config.yml`` there, when present,
gives ``sh_degree``, which must agree with the tensors). Writing emits a checkpoint
nerfstudio's ``--load-dir``/``--load-checkpoint`` accepts: the pipeline Gaussians (the
rest of the pipeline is loaded non-strictly), the step, no optimizer or scheduler states
(fresh ones are made) and a grad-scaler state. Train it with the same
``--pipeline.model.sh-degree`` as the scene's SH degree.
"""
from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write_bytes
from ..bounded import read_regular, resolve_inside
from ..errors import FormatError
from ..limits import gaussian_cap, require_at_most
from ..scene import GaussianScene, sh_degree_from_rest
from ._common import (
    clamp_infinite_logits,
    dc_from_rgb,
    expansion_limit,
    logit,
    make_scene,
    read_bytes,
    rgb_from_dc,
    scene_arrays,
    sigmoid,
    warn,
)

NAME = "splatfacto"
EXTENSIONS = (".ckpt",)
PREFIXES = ("_model.gauss_params.", "_model.module.gauss_params.")
PARAMS = ("means", "scales", "quats", "features_dc", "features_rest", "opacities")
_STEP = re.compile(r"step-(\d+)\.ckpt$")
_SH_DEGREE = re.compile(r"^[ \t]*sh_degree:[ \t]*(\d+)[ \t]*$", re.MULTILINE)
MAX_CONFIG_BYTES = 16 << 20
MAX_STEP_DIGITS = 18
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def sniff(head: bytes) -> bool:
    """A torch.save zip (its first entry is ``<archive>/data.pkl``)."""
    return head[:4] == b"PK\x03\x04" and b"data.pkl" in head[30:30 + 300]


def sniff_dir(path: Path) -> bool:
    """A splatfacto run folder or its ``nerfstudio_models`` folder."""
    return (path / "nerfstudio_models").is_dir() or (path.name == "nerfstudio_models" and any(path.glob("step-*.ckpt")))


def _run_folder(ckpt: Path) -> Path:
    """The run folder of a checkpoint (``<run>/nerfstudio_models/step-*.ckpt``), else its own folder."""
    return ckpt.parent.parent if ckpt.parent.name == "nerfstudio_models" else ckpt.parent


def _beside(run: Path, name: str) -> Path | None:
    """``run/name`` when the run folder holds that entry (of any kind: a FIFO or a link out is then
    refused by the reader, not skipped), else None."""
    return run / name if os.path.lexists(run / name) else None


def find_checkpoint(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """(checkpoint file, config.yml or None) for a ``.ckpt``, ``nerfstudio_models`` or run folder."""
    p = Path(path)
    if not p.is_dir():
        return p, _beside(p.parent.parent, "config.yml") if p.parent.name == "nerfstudio_models" else None
    models = p / "nerfstudio_models" if (p / "nerfstudio_models").is_dir() else p
    steps = []
    for f in models.glob("step-*.ckpt"):
        m = _STEP.search(f.name)
        if m and len(m.group(1)) <= MAX_STEP_DIGITS:
            steps.append((int(m.group(1)), f.name, f))
    if not steps:
        raise FormatError("no nerfstudio_models/step-*.ckpt in this folder", p)
    return max(steps)[2], _beside(models.parent, "config.yml")


def find_dataparser_transforms(path: str | os.PathLike) -> Path | None:
    """The run folder's ``dataparser_transforms.json`` for a splatfacto checkpoint or run folder, if any
    (FormatError when it is a link leading out of the run folder)."""
    p = Path(path)
    try:
        if not (sniff_dir(p) if p.is_dir() else p.suffix.lower() == ".ckpt"):
            return None
        ckpt, _ = find_checkpoint(p)
    except FormatError:
        return None
    run = _run_folder(ckpt)
    f = _beside(run, "dataparser_transforms.json")
    return None if f is None else resolve_inside(run, f.name)


def config_sh_degree(config: Path, root: Path | None = None) -> int | None:
    """``sh_degree`` from a nerfstudio ``config.yml`` (read as text: it holds Python tags).
    With ``root`` (the run folder) the file must resolve inside it."""
    raw = read_regular(config.name if root is not None else config, MAX_CONFIG_BYTES, root=root, what="config.yml")
    m = _SH_DEGREE.search(raw.decode("utf-8", errors="replace"))
    if m is None:
        return None
    if len(m.group(1)) > 2 or int(m.group(1)) > 3:
        raise FormatError(f"sh_degree {m.group(1)[:20]}{'...' if len(m.group(1)) > 20 else ''} is not supported (0..3)",
                          config)
    return int(m.group(1))


def read(path: str | os.PathLike, *, check_finite: bool = True) -> GaussianScene:
    """Read a splatfacto checkpoint, its ``nerfstudio_models`` folder or the run folder.

    A checkpoint found in a folder, and ``config.yml``, must be regular files inside the run
    folder (a link leading out of it is refused)."""
    p = Path(path)
    ckpt, cfg = find_checkpoint(p)
    run = _run_folder(ckpt)
    if p.is_dir():
        data = read_regular(ckpt.relative_to(run), root=run, what="checkpoint")
    else:
        data = read_bytes(ckpt)
    scene = decode(data, ckpt, check_finite=check_finite)
    if cfg is not None:
        d = config_sh_degree(cfg, root=run)
        if d is not None and d != scene.sh_degree:
            raise FormatError(f"config.yml says sh_degree {d}, but the checkpoint holds degree {scene.sh_degree}", ckpt)
    return scene


def _load(data: bytes, path) -> dict:
    if data[:4] != b"PK\x03\x04":
        raise FormatError("not a torch checkpoint (no zip signature; the legacy pre-1.6 format is not read)", path)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            unpacked = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, UnicodeDecodeError) as e:
        raise FormatError(f"not a readable torch checkpoint (corrupt zip: {e})", path) from None
    if unpacked > expansion_limit(len(data)):
        raise FormatError(f"checkpoint entries claim {unpacked:,} bytes, implausible for a file of {len(data):,}", path)
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if m is None:
            raise FormatError(f"corrupt checkpoint pickle ({str(e).splitlines()[0][:200]})", path) from None
        raise FormatError(f"checkpoint holds objects other than tensors and plain containers ({m.group(1)}); "
                          "refused (only weights are loaded, never arbitrary pickled objects)", path) from None
    except Exception as e:  # noqa: BLE001 - torch.load of corrupt bytes raises anything (struct.error, IndexError...)
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise FormatError(f"not a readable torch checkpoint ({reason})", path) from None
    if not isinstance(obj, dict):
        raise FormatError("checkpoint does not hold a dict", path)
    return obj


def decode(data: bytes, path=None, *, check_finite: bool = True) -> GaussianScene:
    """Decode the bytes of a splatfacto ``.ckpt``."""
    obj = _load(data, path)
    state = obj.get("pipeline", obj)
    if not isinstance(state, dict):
        raise FormatError("checkpoint 'pipeline' is not a state dict", path)
    prefix = next((p for p in PREFIXES if f"{p}means" in state), None)
    if prefix is None:
        raise FormatError("no splatfacto Gaussians in this checkpoint (no _model.gauss_params.means)", path)
    raw = {}
    for name in PARAMS:
        v = state.get(prefix + name)
        if not isinstance(v, torch.Tensor) or v.dtype not in FLOAT_DTYPES:
            raise FormatError(f"{prefix}{name} is missing or not a float tensor", path)
        _check_storage(v, prefix + name, path)
        raw[name] = v
    # shapes and counts first: nothing is converted (or materialised) before they pass
    shp = {k: tuple(v.shape) for k, v in raw.items()}
    n = shp["means"][0] if len(shp["means"]) == 2 else -1
    expect = {"means": (n, 3), "scales": (n, 3), "quats": (n, 4), "features_dc": (n, 3)}
    for name, shape in expect.items():
        if shp[name] != shape:
            raise FormatError(f"{name} has shape {shp[name]}, expected {shape}", path)
    require_at_most(n, gaussian_cap(len(data)), "Gaussian count", path)
    if shp["opacities"] not in ((n, 1), (n,)):
        raise FormatError(f"opacities has shape {shp['opacities']}, expected ({n}, 1)", path)
    rs = shp["features_rest"]
    if len(rs) != 3 or rs[0] != n or rs[2] != 3:
        raise FormatError(f"features_rest has shape {rs}, expected ({n}, K, 3)", path)
    try:
        sh_degree_from_rest(rs[1])
    except ValueError as e:
        raise FormatError(f"features_rest: {e}", path) from None
    t = {k: v.detach().to(torch.float64).numpy() for k, v in raw.items()}
    op, rest = t["opacities"], t["features_rest"]
    dc = t["features_dc"] if rest.shape[1] else dc_from_rgb(sigmoid(t["features_dc"]))
    return make_scene(path, means=t["means"], quats=t["quats"], log_scales=t["scales"],
                      opacity_logits=clamp_infinite_logits(op.reshape(n)), sh_dc=dc, sh_rest=rest,
                      check_finite=check_finite)


def _check_storage(v: torch.Tensor, name: str, path) -> None:
    """Refuse a tensor whose storage holds fewer bytes than its shape implies (a stride-0
    ``expand``, an overlapping view): converting it would allocate far beyond the file."""
    if v.layout != torch.strided or v.is_quantized:
        raise FormatError(f"{name} is not a dense tensor", path)
    if any(st < 0 for st in v.stride()):
        raise FormatError(f"{name} has a negative stride", path)
    item = v.element_size()
    have = v.untyped_storage().nbytes()
    numel = v.numel()
    if numel == 0:
        return
    span = (v.storage_offset() + sum((sz - 1) * st for sz, st in zip(v.shape, v.stride())) + 1) * item
    if span > have:
        raise FormatError(f"{name} reaches past its storage ({span:,} of {have:,} bytes)", path)
    if numel * item > have or numel * item > span:
        raise FormatError(f"{name} has shape {tuple(v.shape)} ({numel * item:,} bytes) over a storage of {have:,} "
                          "bytes (a stride-0 or overlapping view; refused)", path)


def state_dict(scene: GaussianScene) -> dict[str, torch.Tensor]:
    """The splatfacto ``pipeline`` entries for a scene (float32, CPU).

    Degree 0 stores ``features_dc`` as colour logits, ``logit(SH_C0 * dc + 0.5)``, with
    the colour clamped to [1e-4, 1 - 1e-4] (splatfacto cannot show colours outside [0,1]).
    """
    a = scene_arrays(scene)
    n = len(scene)
    if scene.extras:
        warn(f"a splatfacto checkpoint stores no extra channels: {', '.join(sorted(scene.extras))} dropped")
    dc = logit(rgb_from_dc(a["sh_dc"]), eps=1e-4) if scene.sh_degree == 0 else a["sh_dc"]
    params = {
        "means": a["means"],
        "scales": a["log_scales"],
        "quats": a["quats"],
        "features_dc": dc,
        "features_rest": a["sh_rest"],
        "opacities": a["opacity_logits"].reshape(n, 1),
    }
    return {PREFIXES[0] + k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in params.items()}


# What nerfstudio's trainer expects beside the pipeline when resuming (``--load-checkpoint``):
# it loads every optimizer and scheduler named (none: fresh ones) and the AMP grad scaler's state.
_GRAD_SCALER = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                "_growth_tracker": 0}


def encode(scene: GaussianScene, *, step: int = 0) -> bytes:
    """The scene as splatfacto checkpoint bytes (``{"step", "pipeline", "optimizers", "schedulers", "scalers"}``)."""
    buf = io.BytesIO()
    torch.save({"step": int(step), "pipeline": state_dict(scene), "optimizers": {}, "schedulers": {},
                "scalers": dict(_GRAD_SCALER)}, buf)
    return buf.getvalue()


def write(scene: GaussianScene, path: str | os.PathLike, *, step: int = 0) -> None:
    """Write a checkpoint; give it nerfstudio's name (``step-000000000.ckpt``) to load it there."""
    atomic_write_bytes(path, encode(scene, step=step))
