"""Scene compression after LightGaussian: significance, pruning, SH distillation, VecTree
quantization, coded positions and entropy coding into ``.lgs`` (spec: docs/formats/lgs.md).

    from compress.scene import compress_scene, CompressSettings, decode, read_lgs
    res = compress_scene(scene, CompressSettings(target_psnr=38.5))
    open("scene.lgs", "wb").write(res.data)
    scene2 = read_lgs("scene.lgs")
"""
from .codec import EncodeReport, QuantConfig, decode, encode, read_lgs, write_lgs
from .distill import FinetuneConfig, distill_sh, finetune
from .eval import Fidelity, fidelity
from .pipeline import CompressResult, CompressSettings, compress_scene
from .prune import prune, prune_mask
from .rate import PRESETS, search
from .significance import significance
from .views import split_views

__all__ = [
    "PRESETS",
    "CompressResult",
    "CompressSettings",
    "EncodeReport",
    "Fidelity",
    "FinetuneConfig",
    "QuantConfig",
    "compress_scene",
    "decode",
    "distill_sh",
    "encode",
    "fidelity",
    "finetune",
    "prune",
    "prune_mask",
    "read_lgs",
    "search",
    "significance",
    "split_views",
    "write_lgs",
]
