"""Test helpers for the format tests: field-by-field errors between scenes, zip packing."""
from __future__ import annotations

import io
import zipfile

import torch

from splat import GaussianScene


def quat_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-Gaussian max component difference of unit quaternions, sign-aligned (q ~ -q)."""
    a = a / a.norm(dim=1, keepdim=True)
    b = b / b.norm(dim=1, keepdim=True)
    return torch.minimum((a - b).abs().amax(1), (a + b).abs().amax(1))


def field_errors(ref: GaussianScene, got: GaussianScene) -> dict[str, torch.Tensor]:
    """Absolute errors per Gaussian (or per value): means, log-scales, opacity, rgb, quats, SH rest."""
    assert len(ref) == len(got), (len(ref), len(got))
    r, g = ref.to(dtype=torch.float64), got.to(dtype=torch.float64)
    out = {
        "means": (r.means - g.means).abs(),
        "log_scales": (r.log_scales - g.log_scales).abs(),
        "opacity": (r.opacities - g.opacities).abs(),
        "rgb": (r.colors - g.colors).abs(),
        "dc": (r.sh_dc - g.sh_dc).abs(),
        "quat": quat_error(r.quats, g.quats),
    }
    k = min(r.sh_rest.shape[1], g.sh_rest.shape[1])
    out["sh_rest"] = (r.sh_rest[:, :k] - g.sh_rest[:, :k]).abs()
    return out


def max_errors(ref: GaussianScene, got: GaussianScene) -> dict[str, float]:
    return {k: (float(v.max()) if v.numel() else 0.0) for k, v in field_errors(ref, got).items()}


def zip_files(files: dict[str, bytes]) -> bytes:
    """A zip archive (deflated) holding ``files``, e.g. a hand-edited SOG."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def corrupt_segment(data: bytes, segment: int, path) -> None:
    """Write ``data`` (a ``.gsv`` clip) to ``path`` with one byte flipped in the middle of
    ``segment``'s payload."""
    from compress.video import VideoReader

    with VideoReader(data) as r:
        off, ln = r.segment_range(segment)
    bad = bytearray(data)
    bad[off + ln // 2] ^= 0xFF
    path.write_bytes(bytes(bad))
