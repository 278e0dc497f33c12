"""Writes ``scene_v3_golden.lgs``: the synthetic 2000-Gaussian SH-2 scene of
``make_scene_v2_golden.py`` with four significance classes (``precision.drops``), encoded as
``.lgs`` version 3 by the encoder of commit 48706d4 (the last before version 4), and prints the
SHA-256 of its decoded arrays. ``tests/test_scene_levels.py`` checks that today's decoder still
gives exactly those arrays. Kept for reproducibility:

    git archive 48706d4 | tar -x -C /tmp/lgs_v3
    .venv/bin/python tests/data/make_scene_v3_golden.py /tmp/lgs_v3
"""
import sys
from pathlib import Path

if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])  # the old checkout's packages
sys.path.insert(0, str(Path(__file__).parent))

from make_scene_v2_golden import scene_digest, synthetic  # noqa: E402

from compress.scene.codec import QuantConfig, decode, encode  # noqa: E402

if __name__ == "__main__":
    scene, w = synthetic()
    cfg = QuantConfig(scale_bits=9, rotation_bits=9, dc_bits=10, opacity_bits=7, sh_codebook_fraction=0.6,
                      max_drop=3, drop_reference=0.7)
    data, _ = encode(scene, w, cfg)
    assert data[4] == 3, "not a version-3 file"
    out = Path(__file__).with_name("scene_v3_golden.lgs")
    out.write_bytes(data)
    print(out, len(data), "bytes; decoded digest", scene_digest(decode(data)))
