"""Writes ``scene_v4_golden.lgs``: the synthetic 2000-Gaussian SH-2 scene of
``make_scene_v2_golden.py`` encoded as ``.lgs`` version 4 (quantizers and a position grid whose
steps are not powers of two, four precision classes with grid factors 1, 2, 3, 4), and prints
the SHA-256 of its decoded arrays. ``tests/test_scene_levels.py`` checks that the decoder still
gives exactly those arrays, and the TypeScript decoder's parity test can use the same file.

    .venv/bin/python tests/data/make_scene_v4_golden.py
"""
import sys
from pathlib import Path

if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])  # an older checkout's packages
sys.path.insert(0, str(Path(__file__).parent))

from make_scene_v2_golden import scene_digest, synthetic  # noqa: E402

from compress.scene.codec import QuantConfig, decode, encode  # noqa: E402

CONFIG = dict(position_bits=14.3, scale_bits=8.4, rotation_bits=8.7, dc_bits=9.2, opacity_bits=6.5,
              sh_codebook_bits=7.6, sh_direct_bits=8.3, sh_codebook_fraction=0.6, max_drop=3,
              drop_reference=0.7, class_step=0.7)

if __name__ == "__main__":
    scene, w = synthetic()
    data, _ = encode(scene, w, QuantConfig(**CONFIG))
    assert data[4] == 4, "not a version-4 file"
    out = Path(__file__).with_name("scene_v4_golden.lgs")
    out.write_bytes(data)
    print(out, len(data), "bytes; decoded digest", scene_digest(decode(data)))
