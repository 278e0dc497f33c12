"""Runs the TypeScript decoders (viewer/web/dist/formats.mjs) in Node for parity and fuzz tests.

One Node process per call decodes many files (``node_decode``) or a whole fuzz corpus
(``node_fuzz``) through ``viewer/web/cli/dump.mjs``; its "dumpers" table maps a kind (``lgs``,
``ints``, ``ctx``...) to a decoder, so a new format's parity test only adds a dumper there and
calls these helpers. Tests skip with a clear message when Node or the built bundle is missing
(``make web`` installs Node and builds it).
"""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "viewer" / "web"
DIST = WEB / "dist" / "formats.mjs"
DUMP = WEB / "cli" / "dump.mjs"
NODE_TIMEOUT_S = 300

_built: list[bool] = []


def require_node() -> str:
    """The node executable, with the bundle freshly built (esbuild, ~0.1 s); else skip saying why."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not found: the TypeScript decoder tests need Node 20 (`make web` installs it)")
    if not (WEB / "node_modules" / "esbuild").exists():
        pytest.skip("viewer/web/node_modules missing: run `make web` (npm ci) first")
    if not _built:
        subprocess.run([node, "build.mjs"], cwd=WEB, check=True, capture_output=True, timeout=120)
        _built.append(True)
    return node


@dataclass
class NodeResult:
    """One decoded file: typed arrays by name, scalar values, or the FormatError message."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def node_decode(jobs: Sequence[tuple[str, bytes, dict]]) -> list[NodeResult]:
    """Decode every (kind, file bytes, options) in one Node process; results in job order."""
    node = require_node()
    with tempfile.TemporaryDirectory(prefix="web-dump-") as tmp:
        t = Path(tmp)
        spec = []
        for i, (kind, data, options) in enumerate(jobs):
            (t / f"in{i}").write_bytes(data)
            spec.append({"kind": kind, "input": str(t / f"in{i}"), "output": str(t / f"out{i}"), "options": options})
        (t / "jobs.json").write_text(json.dumps(spec))
        run = subprocess.run([node, str(DUMP), str(t / "jobs.json")], capture_output=True, text=True,
                             timeout=NODE_TIMEOUT_S)
        assert run.returncode == 0, f"node dump.mjs failed:\n{run.stderr[-4000:]}"
        out = []
        for i in range(len(jobs)):
            meta = json.loads((t / f"out{i}.json").read_text())
            if "error" in meta:
                out.append(NodeResult(error=meta["message"]))
                continue
            blob = (t / f"out{i}").read_bytes()
            arrays = {a["name"]: np.frombuffer(blob, dtype=np.dtype(a["dtype"]).newbyteorder("<"), count=a["length"],
                                               offset=a["offset"]).copy() for a in meta["arrays"]}
            out.append(NodeResult(arrays, meta["values"]))
        return out


def assert_bits_equal(got: np.ndarray, want: np.ndarray, name: str) -> None:
    """``got`` and ``want`` hold the same values bit for bit (floats compared as their bit patterns)."""
    want = np.ascontiguousarray(want).reshape(-1)
    got = np.ascontiguousarray(got).reshape(-1)
    assert got.size == want.size, f"{name}: {got.size} values, expected {want.size}"
    if want.dtype.kind == "f":
        assert got.dtype == want.dtype, f"{name}: dtype {got.dtype}, expected {want.dtype}"
        bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[want.dtype.itemsize]
        bad = np.nonzero(got.view(bits) != want.view(bits))[0]
    else:
        bad = np.nonzero(got.astype(np.int64) != want.astype(np.int64))[0] if want.size else []
    if len(bad):
        i = int(bad[0])
        raise AssertionError(f"{name}: {len(bad)} of {want.size} values differ; first at {i}: {got[i]!r} != {want[i]!r}")


SPLAT_FIELDS = {"means": "means", "quats": "quats", "logScales": "log_scales", "opacityLogits": "opacity_logits",
                "shDc": "sh_dc", "shRest": "sh_rest"}
"""SplatArrays field -> GaussianScene attribute."""


def assert_splat_equal(result: NodeResult, scene, name: str) -> None:
    """A decoded ``SplatArrays`` (dumped by ``splat`` in dumpers.mjs) equals the Python
    ``GaussianScene`` bit for bit: count, SH degree and every float32 array."""
    assert result.error is None, f"{name}: {result.error}"
    assert result.values["count"] == len(scene) and result.values["shDegree"] == scene.sh_degree, name
    for ts_name, py_name in SPLAT_FIELDS.items():
        assert_bits_equal(result.arrays[ts_name], getattr(scene, py_name).detach().cpu().numpy(), f"{name}: {py_name}")


def node_fuzz(kind: str, cases: Sequence[bytes], *, case_ms: float = 2000.0, heap_mib: int = 512,
              options: dict | None = None, timeout_s: float = NODE_TIMEOUT_S) -> dict:
    """Run every case through dumper ``kind`` in one Node process (heap capped at ``heap_mib``
    by ``--max-old-space-size``); returns its summary (counts, failures, slowest case, peak RSS)."""
    node = require_node()
    with tempfile.TemporaryDirectory(prefix="web-fuzz-") as tmp:
        corpus = Path(tmp) / "corpus.bin"
        corpus.write_bytes(b"".join(struct.pack("<I", len(c)) + c for c in cases))
        run = subprocess.run([node, f"--max-old-space-size={heap_mib}", str(DUMP), "--fuzz", kind, str(corpus),
                              "--case-ms", str(case_ms), "--options", json.dumps(options or {})],
                             capture_output=True, text=True, timeout=timeout_s)
        assert run.returncode == 0, f"node fuzz run died (rc {run.returncode}):\n{run.stderr[-4000:]}"
        return json.loads(run.stdout.strip().splitlines()[-1])
