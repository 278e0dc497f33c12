"""Runs the TypeScript decoders (viewer/web/dist/formats.mjs) in Node for parity and fuzz tests.

One Node process per call decodes many files (``node_decode``) or a whole fuzz corpus
(``node_fuzz``) through ``viewer/web/cli/dump.mjs``; its "dumpers" table maps a kind (``lgs``,
``ints``, ``ctx``...) to a decoder, so a new format's parity test only adds a dumper there and
calls these helpers. ``CountingServer`` (a local HTTP server with or without Range that counts
what it sends) and ``node_stream`` (``cli/stream_play.mjs``) test the streaming engine.
Tests skip with a clear message when Node or the built bundle is missing
(``make web`` installs Node and builds it).
"""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
import tempfile
import time
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
        return [read_dump(t / f"out{i}") for i in range(len(jobs))]


def read_dump(path: Path) -> NodeResult:
    """A result Node wrote with ``writeResult`` (cli/dumpers.mjs): PATH (arrays) and PATH.json."""
    meta = json.loads(Path(f"{path}.json").read_text())
    if "error" in meta:
        return NodeResult(error=meta["message"])
    blob = Path(path).read_bytes()
    arrays = {a["name"]: np.frombuffer(blob, dtype=np.dtype(a["dtype"]).newbyteorder("<"), count=a["length"],
                                       offset=a["offset"]).copy() for a in meta["arrays"]}
    return NodeResult(arrays, meta["values"])


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


# centres: |TS - Python| <= POS_TOL x the clip's extent (float32 ulp at the extent is 2^-24 = 6e-8;
# the skinning's float32 rounding in the reference spreads over a few dozen ulps at most)
POS_TOL = 1e-6
# rotations: unit quaternions, compared up to sign
ROT_TOL = 1e-6


def compare_gsv_frame(name: str, got: dict, want, frame: int, predicted: bool, extent: float) -> dict:
    """A decoded `.gsv` frame (``got``: SplatArrays fields by name) against VideoReader's ``want``
    (a GaussianScene): appearance bit for bit, centres and rotations too unless ``predicted``
    (a tracked segment's skinned frame: within POS_TOL x ``extent`` and ROT_TOL, the float32
    rounding docs/web.md explains). Returns the worst deviations of a predicted frame."""
    exact = {"logScales": want.log_scales, "opacityLogits": want.opacity_logits, "shDc": want.sh_dc,
             "shRest": want.sh_rest}
    if not predicted:
        exact.update(means=want.means, quats=want.quats)
    for key, arr in exact.items():
        assert_bits_equal(got[key], arr.numpy(), f"{name} frame {frame}: {key}")
    if not predicted:
        return {}
    m = got["means"].reshape(-1, 3)
    q = got["quats"].reshape(-1, 4)
    dm = float(np.abs(m - want.means.numpy()).max()) / extent
    wq = want.quats.numpy()
    dq = float(np.minimum(np.abs(q - wq).max(1), np.abs(q + wq).max(1)).max())
    assert dm <= POS_TOL, f"{name} frame {frame}: centres off by {dm:.3g} x extent"
    assert dq <= ROT_TOL, f"{name} frame {frame}: rotations off by {dq:.3g}"
    return {"pos": dm, "rot": dq}


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
              options: dict | None = None, timeout_s: float = 120.0) -> dict:
    """Run every case through dumper ``kind`` in one Node process (heap capped at ``heap_mib``
    by ``--max-old-space-size``); returns its summary (counts, failures, slowest case, peak RSS).
    A run still going after ``timeout_s`` (a hang: a JavaScript loop cannot be interrupted from
    inside) is killed and the test fails naming the case it was decoding."""
    node = require_node()
    with tempfile.TemporaryDirectory(prefix="web-fuzz-") as tmp:
        corpus = Path(tmp) / "corpus.bin"
        progress = Path(tmp) / "case"
        corpus.write_bytes(b"".join(struct.pack("<I", len(c)) + c for c in cases))
        try:
            run = subprocess.run([node, f"--max-old-space-size={heap_mib}", str(DUMP), "--fuzz", kind, str(corpus),
                                  "--case-ms", str(case_ms), "--options", json.dumps(options or {}),
                                  "--progress", str(progress)], capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            case = progress.read_text().strip() if progress.exists() else "?"
            raise AssertionError(f"{kind}: the Node fuzz run hung on case {case} (killed after {timeout_s:.0f} s)") from None
        assert run.returncode == 0, f"node fuzz run died (rc {run.returncode}):\n{run.stderr[-4000:]}"
        return json.loads(run.stdout.strip().splitlines()[-1])


CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".mjs": "text/javascript", ".js": "text/javascript"}


class CountingServer:
    """A local HTTP server (127.0.0.1, a free port) for streaming tests: serves ``files``
    ({url path: bytes}) with or without Range support and counts what it sends.

    ``ranges=False`` behaves as ``python -m http.server``: every GET answers 200 with the whole
    file. ``ranges=True`` answers ``Range: bytes=a-b`` with 206 and Content-Range (416 past the
    end). ``bytes_sent`` counts body bytes written (``bytes_by_path`` per path), ``requests`` lists (path, Range header).
    ``chunk_delay_s`` sleeps after each 64 KiB of a body (a slow link); ``short_by`` N ends every
    body longer than N bytes N bytes early and drops the connection (a broken transfer);
    ``hide_content_range`` leaves Content-Range out of 206 replies (what a cross-origin page sees
    when the host does not expose it).
    Use as a context manager; ``url(path)`` is the address of a file."""

    def __init__(self, files: dict[str, bytes], *, ranges: bool = True, chunk_delay_s: float = 0.0,
                 short_by: int = 0, hide_content_range: bool = False):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.files, self.ranges = files, ranges
        self.bytes_sent = 0
        self.bytes_by_path: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                with lock:
                    outer.requests.append((self.path, rng))
                data = outer.files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start, end, status = 0, len(data), 200
                if outer.ranges and rng:
                    import re
                    m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
                    if m:
                        start = int(m.group(1))
                        end = min(len(data), int(m.group(2)) + 1) if m.group(2) else len(data)
                        if start >= len(data):
                            self.send_response(416)
                            self.send_header("Content-Range", f"bytes */{len(data)}")
                            self.send_header("Content-Length", "0")
                            self.end_headers()
                            return
                        status = 206
                self.send_response(status)
                self.send_header("Content-Type", CONTENT_TYPES.get(Path(self.path).suffix, "application/octet-stream"))
                self.send_header("Content-Length", str(end - start))
                if status == 206 and not hide_content_range:
                    self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
                if outer.ranges:
                    self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                stop = end - short_by if end - start > short_by > 0 else end
                try:
                    for p in range(start, stop, 1 << 16):
                        chunk = data[p:min(stop, p + (1 << 16))]
                        self.wfile.write(chunk)
                        with lock:
                            outer.bytes_sent += len(chunk)
                            outer.bytes_by_path[self.path] = outer.bytes_by_path.get(self.path, 0) + len(chunk)
                        if chunk_delay_s:
                            time.sleep(chunk_delay_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if stop < end:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self) -> "CountingServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


STREAM_PLAY = WEB / "cli" / "stream_play.mjs"


def node_stream(spec: dict, timeout_s: float = 120.0) -> NodeResult:
    """Run viewer/web/cli/stream_play.mjs on ``spec`` (its url, scenario, decoder, player
    options...) in one Node process; returns its presented frames and counters."""
    node = require_node()
    with tempfile.TemporaryDirectory(prefix="web-stream-") as tmp:
        t = Path(tmp)
        (t / "spec.json").write_text(json.dumps({**spec, "output": str(t / "out")}))
        run = subprocess.run([node, str(STREAM_PLAY), str(t / "spec.json")], capture_output=True, text=True,
                             timeout=timeout_s)
        assert run.returncode == 0, f"node stream_play.mjs failed:\n{run.stderr[-4000:]}"
        return read_dump(t / "out")
