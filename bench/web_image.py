"""The browser `.gsi` renderer (viewer/web/src/image/, WebGL2 fragment shader) against the
Python renderer (`render_gaussians`, numba) on the same files: time per view and parity.

For every file: the Python render at the stored size (minimum of ``--repeat`` warm renders),
and in headless Chromium (Debian's, software WebGL through SwiftShader, i.e. on the CPU):
decode, tile index + upload (`load`), a draw at the stored size, at a 4x zoom of the same
canvas size, and at LOD 0.25 (each the minimum of ``--repeat`` draws, timed to a 1-pixel
readback so the GPU work is finished), plus the PSNR of the browser's float readback against
the Python render. The load average is recorded before and after. A real GPU draws the same
shader far faster; these numbers are the software path the tests run on.

    make web && .venv/bin/python bench/web_image.py photo.gsi [more.gsi ...] [--repeat 5]
    .venv/bin/python bench/web_image.py --fit ../shared/data/images/kodak/kodim07.png   # fit one first
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
RESULTS = ROOT / "bench" / "results" / "web_image.json"
WEB = ROOT / "viewer" / "web"

DRAW = """async ([w, h, view, lod, repeat]) => {
  const r = window.gsiTest.renderer, gl = r.gl, px = new Uint8Array(4);
  r.resize(w, h); r.setView(view); r.lod = lod;
  const times = [];
  for (let i = 0; i < repeat + 1; i++) {
    const t0 = performance.now();
    r.render(); gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
    times.push(performance.now() - t0);
  }
  return Math.min(...times.slice(1));
}"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def bench_file(page, base: str, path: Path, repeat: int) -> dict:
    import torch

    from compress.image import decode, render_gaussians
    from splat.threads import threads

    data = path.read_bytes()
    g = decode(data, path)
    with torch.no_grad():
        ref = render_gaussians(g).numpy()
        py = []
        with threads(1):
            for _ in range(repeat):
                t0 = time.perf_counter()
                render_gaussians(g)
                py.append(time.perf_counter() - t0)
    res = page.evaluate("(u) => window.gsiTest.load(u)", path.name)
    if not res["ok"]:
        raise SystemExit(res["error"])
    stats = page.evaluate("window.gsiTest.renderer.stats")
    W, H = g.width, g.height
    native = page.evaluate(DRAW, [W, H, {"scale": 1, "x": 0, "y": 0}, 1.0, repeat])
    zoom = page.evaluate(DRAW, [W, H, {"scale": 4, "x": W * 1.5, "y": H * 1.5}, 1.0, repeat])
    lod = page.evaluate(DRAW, [W, H, {"scale": 1, "x": 0, "y": 0}, 0.25, repeat])
    page.evaluate("() => { const r = window.gsiTest.renderer; r.lod = 1; r.setView({scale: 1, x: 0, y: 0}); }")
    got = page.evaluate("() => { const r = window.gsiTest.renderer; r.render(); return Array.from(r.readPixels().data); }")
    got = np.asarray(got, np.float32).reshape(ref.shape)
    mse = float(np.mean((got.astype(np.float64) - ref) ** 2))
    return {
        "file": path.name, "width": W, "height": H, "channels": g.channels, "gaussians": len(g), "mode": g.mode,
        "k": g.k, "bytes": len(data), "tile_entries": stats["tileEntries"],
        "browser_decode_ms": res["decodeMs"], "browser_index_ms": stats["indexMs"],
        "browser_draw_ms": native, "browser_zoom4_ms": zoom, "browser_lod025_ms": lod,
        "python_render_ms": min(py) * 1e3, "psnr_db": 10 * np.log10(1 / mse) if mse > 0 else float("inf"),
        "max_abs_diff": float(np.abs(got - ref).max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, help=".gsi files")
    ap.add_argument("--fit", type=Path, help="fit this image first (--gaussians 8000, 120 steps) and add it")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tile", type=int, help="tile side in image pixels (default: the renderer's)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    from viewer_browser import RefusingProxy, launched_chromium
    from web_harness import require_node

    require_node()  # builds dist/image-test.js
    work = Path(tempfile.mkdtemp(prefix="web-image-bench-"))
    files = list(args.files)
    if args.fit:
        from compress.image import FitConfig, compress_image
        from compress.image.imageio import load_image

        out = work / (args.fit.stem + ".gsi")
        out.write_bytes(compress_image(load_image(args.fit).pixels, gaussians=8000, config=FitConfig(steps=120)).data)
        files.append(out)
    if not files:
        raise SystemExit("give .gsi files or --fit IMAGE")
    for f in files:
        if f.parent != work:
            shutil.copy(f, work / f.name)
    shutil.copy(WEB / "test" / "image.html", work / "image.html")
    shutil.copy(WEB / "dist" / "image-test.js", work / "image-test.js")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(work)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    load0 = os.getloadavg()
    rows = []
    proxy = RefusingProxy()
    with launched_chromium(proxy) as browser:
        page = browser.new_page()
        page.set_default_timeout(600_000)
        page.goto(f"http://127.0.0.1:{srv.server_address[1]}/image.html" + (f"?tile={args.tile}" if args.tile else ""))
        for f in files:
            rows.append(bench_file(page, f"http://127.0.0.1:{srv.server_address[1]}", work / f.name, args.repeat))
    srv.shutdown()
    load1 = os.getloadavg()
    print(f"load average {load0[0]:.1f} -> {load1[0]:.1f} (1 min), {os.cpu_count()} CPUs; browser = headless Chromium, SwiftShader")
    head = ["file", "size", "N", "mode", "decode ms", "index ms", "draw ms", "4x ms", "LOD .25 ms", "numba ms", "PSNR dB"]
    print(" | ".join(head))
    for r in rows:
        print(" | ".join([r["file"], f"{r['width']}x{r['height']}x{r['channels']}", f"{r['gaussians']:,}", r["mode"],
                          f"{r['browser_decode_ms']:.0f}", f"{r['browser_index_ms']:.0f}", f"{r['browser_draw_ms']:.0f}",
                          f"{r['browser_zoom4_ms']:.0f}", f"{r['browser_lod025_ms']:.0f}", f"{r['python_render_ms']:.0f}",
                          f"{r['psnr_db']:.1f}"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"load_before": load0, "load_after": load1, "cpus": os.cpu_count(),
                                    "browser": "headless Chromium, SwiftShader (software WebGL2)",
                                    "repeat": args.repeat, "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
