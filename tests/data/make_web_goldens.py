"""Writes the frozen `.gsv`, `.gsi` and `.m3` files the TypeScript decoders are checked against
(``tests/test_web_gsv.py``, ``tests/test_web_gsi_m3.py``): small synthetic inputs, encoded by
this checkout's Python encoders. Kept for reproducibility (the files are not rewritten by tests):

    .venv/bin/python tests/data/make_web_goldens.py
"""
from pathlib import Path

import torch

from compress.image import BitDepths, encode as gsi_encode
from compress.image.model import ImageGaussians
from compress.memory import Memory, ModelMemory
from compress.memory.m3file import encode_m3
from compress.memory.memory import QUERY_EXTRA
from compress.video import VideoSettings, encode_video
from splat.scene import GaussianScene

HERE = Path(__file__).resolve().parent


def clip_frames() -> list[GaussianScene]:
    """A 200-Gaussian SH-1 scene turning and drifting over 6 frames, re-sorted every frame, with
    Gaussians dying (frames 2, 5) and being born (frame 3): a re-sorted clip with deaths and births."""
    g = torch.Generator().manual_seed(3)
    base = GaussianScene.random(200, sh_degree=1, seed=3)
    extra = GaussianScene.random(12, sh_degree=1, seed=4)
    frames = []
    for f in range(6):
        a = 0.05 * f
        rot = torch.tensor([[1.0, 0, 0], [0, torch.cos(torch.tensor(a)), -torch.sin(torch.tensor(a))],
                            [0, torch.sin(torch.tensor(a)), torch.cos(torch.tensor(a))]])
        s = base.replace(means=base.means @ rot.T + torch.tensor([0.02 * f, 0.0, 0.01 * f]))
        if f >= 2:
            s = s[: 200 - 10 * (f >= 2) - 15 * (f >= 5)]
        if f >= 3:
            s = GaussianScene.cat([s, extra.replace(means=extra.means * 0.3 + 0.5)])
        frames.append(s[torch.randperm(len(s), generator=g)])
    return frames


def image() -> ImageGaussians:
    g = torch.Generator().manual_seed(8)
    n, w, h = 400, 48, 32
    centres = torch.rand(5, 2, generator=g) * torch.tensor([w, h])
    means = (centres[torch.randint(0, 5, (n,), generator=g)] + torch.randn(n, 2, generator=g) * 4).clamp(
        torch.zeros(2), torch.tensor([w, h], dtype=torch.float32))
    return ImageGaussians(means, torch.rand(n, 2, generator=g) * 3 + 0.4, torch.rand(n, generator=g) * 6 - 3,
                          torch.rand(n, 3, generator=g), w, h)


def memory() -> Memory:
    g = torch.Generator().manual_seed(9)
    n = 150
    scene = GaussianScene.random(n, sh_degree=1, seed=9)
    models = [ModelMemory("clip", 0, 5, torch.randn(20, 16, generator=g), torch.randn(5, 16, generator=g), 0.05, True,
                          (48, 64), (6, 8)),
              ModelMemory("dino", 5, 3, torch.randn(12, 8, generator=g), torch.randn(3, 8, generator=g), 0.1, False,
                          (48, 64), (12, 16))]
    return Memory(scene.with_extras(**{QUERY_EXTRA: torch.randn(n, 8, generator=g)}), models, meta={"note": "golden"})


def main() -> None:
    res = encode_video(clip_frames(), VideoSettings(gop=6, fps=24.0, mode="resorted"))
    assert res.stream_bytes["deaths"] > 0 and res.stream_bytes["births"] > 0
    (HERE / "video_golden.gsv").write_bytes(res.data)
    (HERE / "image_golden.gsi").write_bytes(gsi_encode(image(), bits=BitDepths()))
    (HERE / "memory_golden.m3").write_bytes(encode_m3(memory(), query_bits=10))
    for name in ("video_golden.gsv", "image_golden.gsi", "memory_golden.m3"):
        print(name, (HERE / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
