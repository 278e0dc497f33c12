"""``.lgs`` quantisers with any number of levels (version 4) and the files before them.

* frozen files of versions 2 and 3 (``tests/data/scene_v*_golden.lgs``) decode to the same
  arrays, bit for bit, as the decoder that wrote them;
"""
from __future__ import annotations

import sys
from pathlib import Path

from compress.scene.codec import decode, read_lgs

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
from make_scene_v2_golden import scene_digest  # noqa: E402

V3_DIGEST = "eacfaa9859c691f0ac4bcbe0b5c6fd5b456172e912dec706370adaaae34ca8e4"  # encoder/decoder of commit 48706d4


def test_a_version_3_file_decodes_to_the_same_arrays_as_before():
    path = DATA / "scene_v3_golden.lgs"
    data = path.read_bytes()
    assert data[4] == 3
    scene = read_lgs(path)
    assert len(scene) == 2000 and scene.sh_degree == 2
    assert scene_digest(scene) == V3_DIGEST
    assert scene_digest(decode(data)) == V3_DIGEST
