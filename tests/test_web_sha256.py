"""The player's own SHA-256 (viewer/web/src/formats/sha256.ts), used to check a `.m3`'s referenced
scene where Web Crypto is missing, against hashlib at every padding boundary (and Node's Web Crypto path, sha256Hex)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess

from web_harness import DIST, WEB, require_node

SIZES = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 1000, 65_537, 1_000_003]


def test_sha256_matches_hashlib(tmp_path):
    node = require_node()
    blobs = [os.urandom(n) for n in SIZES]
    for i, b in enumerate(blobs):
        (tmp_path / f"{i}.bin").write_bytes(b)
    script = (f"const F = await import({json.dumps(DIST.as_uri())}); const fs = await import('node:fs');"
              f"const out = []; for (let i = 0; i < {len(blobs)}; i++) {{"
              f"const b = new Uint8Array(fs.readFileSync({json.dumps(str(tmp_path))} + '/' + i + '.bin'));"
              "out.push([Buffer.from(F.sha256(b)).toString('hex'), await F.sha256Hex(b)]); }"
              "console.log(JSON.stringify(out));")
    run = subprocess.run([node, "--input-type=module", "-e", script], cwd=WEB, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    for b, (own, web) in zip(blobs, got):
        want = hashlib.sha256(b).hexdigest()
        assert own == want and web == want, len(b)
