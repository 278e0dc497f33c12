"""Writes ``scene_v2_golden.lgs``: a synthetic 2000-Gaussian SH-2 scene with precision classes,
encoded as ``.lgs`` version 2 by the encoder of commit 0bff952 (before the fast decoder), and
prints the SHA-256 of its decoded arrays. ``tests/test_scene_decode_speed.py`` checks that
today's decoder still gives exactly those arrays. Kept for reproducibility:

    git archive 0bff952 | tar -x -C /tmp/lgs_old
    .venv/bin/python tests/data/make_scene_v2_golden.py /tmp/lgs_old
"""
import hashlib
import sys
from pathlib import Path

if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])  # the old checkout's packages

import numpy as np  # noqa: E402
import torch  # noqa: E402

from compress.scene.codec import QuantConfig, decode, encode  # noqa: E402
from splat.scene import GaussianScene  # noqa: E402


def scene_digest(scene) -> str:
    """SHA-256 over the decoded float32 arrays, in a fixed order."""
    h = hashlib.sha256()
    for t in (scene.means, scene.quats, scene.log_scales, scene.opacity_logits, scene.sh_dc, scene.sh_rest):
        h.update(np.ascontiguousarray(t.detach().cpu().numpy()).tobytes())
    return h.hexdigest()


def synthetic(n: int = 2000, seed: int = 12) -> tuple[GaussianScene, torch.Tensor]:
    """Clustered Gaussians whose channels are correlated (so most streams take the context mode)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(12, 3, generator=g) * 2
    means = centres[torch.randint(0, 12, (n,), generator=g)] + 0.3 * torch.randn(n, 3, generator=g)
    base = -3 + 0.8 * torch.randn(n, 1, generator=g)
    ls = base + 0.2 * torch.randn(n, 3, generator=g)
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=g) + torch.tensor([2.0, 0, 0, 0]), dim=1)
    op = torch.where(torch.rand(n, generator=g) < 0.5, 3.0, -2.0) + 0.5 * torch.randn(n, generator=g)
    luma = 0.5 * torch.randn(n, 1, generator=g)
    dc = luma + 0.1 * torch.randn(n, 3, generator=g)
    red = 0.05 * torch.randn(n, 8, 1, generator=g)
    rest = red + 0.01 * torch.randn(n, 8, 3, generator=g)
    scene = GaussianScene(means, quats, ls, op, dc, rest)
    weights = torch.sigmoid(op) * torch.exp(ls).prod(1) ** (1 / 3)
    return scene, weights


if __name__ == "__main__":
    scene, w = synthetic()
    cfg = QuantConfig(low_fraction=0.5, low_drop=2, sh_codebook_fraction=0.6)
    data, _ = encode(scene, w, cfg)
    out = Path(__file__).with_name("scene_v2_golden.lgs")
    out.write_bytes(data)
    print(out, len(data), "bytes; decoded digest", scene_digest(decode(data)))
