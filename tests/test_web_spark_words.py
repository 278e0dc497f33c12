"""The `.gsv` worker packs frames into Spark's layout itself (viewer/web/src/player/spark_words.ts):
its words must equal Spark's own encoders' (utils.setPackedSplat, utils.encodeSh1Rgb), checked in Node."""
from __future__ import annotations

import json
import subprocess

from web_harness import WEB, require_node


def test_worker_packing_equals_sparks_encoders(tmp_path):
    node = require_node()
    out = tmp_path / "parity.mjs"
    subprocess.run([str(WEB / "node_modules" / ".bin" / "esbuild"), "test/spark_words_parity.ts", "--bundle", "--platform=node",
                    "--format=esm", f"--outfile={out}", "--log-level=error"], cwd=WEB, check=True, timeout=120)
    r = subprocess.run([node, str(out), "20000"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["exactOther"] == got["n"], got  # colour, opacity, rotation, scales: identical
    assert got["shSame"] == got["shWords"], got  # degree-1 SH words: identical
    # half-float centres: Spark truncates without Float16Array (Node 20), we round to nearest
    assert got["halfMax"] <= (1 if got["float16"] == "undefined" else 0), got
    # the stream worker's FramePacker (keeps what a tracked segment's frames share) equals a
    # fresh packing on every frame: moves only, each shared array changed, fresh arrays
    assert got["packerFrames"] == 9 and got["packerSame"] == got["packerFrames"], got
