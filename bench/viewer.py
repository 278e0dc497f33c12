"""Viewer benchmark: time to first frame, bytes sent to the browser, SH colour refresh rate.

    python bench/viewer.py                 # every scene in ../shared/data/scenes, biker also as .lgs
    python bench/viewer.py --repeats 5 --only biker
    python bench/viewer.py --memory-only       # feature-memory click latency only (about a minute)

The client is real headless Chromium (Debian's, WebGL on SwiftShader, i.e. on the CPU)
on loopback, started afresh for each measurement before the clock runs, as a user's
browser is already open. Time to first frame runs from the start of decoding to the
moment the tab has drawn the splats (viser's get_render round trip, which makes the
client sort and draw what it received), so it includes decode, preparation, page load,
transfer and the first sort and draw in the browser; the table splits it. Bytes sent are
websocket payload bytes the server wrote until then. "biker.lgs" is biker.spz encoded
with the .lgs codec's defaults (no pruning), made at bench time.

SH colour refresh: for a scene with SH (fruit_drops, degree 3) and biker with synthetic
degree-3 SH (152k), the server-side cost of one refresh (SH evaluation + repack), and the
rate of refreshes delivered to a connected tab while its camera orbits continuously.

Feature-memory query (``--memory-only`` runs just this): plant.splat (113,648 Gaussians)
with a synthetic clustered memory (tests/viewer_browser.py:clustered_memory; D = 128 and
512), clicked in the tab: latency from the click to the recoloured splats drawn by the tab
(a get_render round trip after the push), split into pick / similarity / colours, and the
splat-buffer bytes pushed per query. The first click also decodes every Gaussian's feature.

Writes bench/results/viewer.json, viewer.csv and (with matplotlib) viewer_ttff.png; prints tables.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
# This script is named like the package it measures: drop bench/ from the import path so
# that `import viewer` finds the package, not this file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT / "tests"))  # the headless-Chromium helpers shared with the tests
SHARED = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "bench" / "results"
VIEWPORT = (1280, 720)


class FreshBrowser:
    """A new headless Chromium per measurement (started before the clock runs): a page closed
    in one measurement can keep the shared software GPU process busy for seconds."""

    def __init__(self, pw) -> None:
        from viewer_browser import CHROMIUM, FLAGS

        self.browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)

    def __enter__(self):
        return self.browser

    def __exit__(self, *exc) -> None:
        self.browser.close()


def start_playwright():
    from playwright.sync_api import sync_playwright
    from viewer_browser import CHROMIUM

    if not os.path.exists(CHROMIUM):
        sys.exit(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    return sync_playwright().start()


def make_lgs(src: Path, out_dir: Path) -> tuple[Path | None, str]:
    """biker as our compressed format (.lgs): the codec's defaults, no pruning."""
    try:
        from compress.scene.codec import write_lgs
        from splat.io import read_scene
    except ImportError as e:
        return None, f"scene codec not available ({e})"
    out = out_dir / (src.stem + ".lgs")
    t0 = time.perf_counter()
    write_lgs(read_scene(src), out)
    return out, f"encoded in {time.perf_counter() - t0:.1f} s"


class WireCounter:
    """Websocket payload bytes the server writes, with a timestamp per message (bench-only:
    wraps ``websockets``' ``Connection.send`` while active)."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, int]] = []

    def __enter__(self) -> "WireCounter":
        from websockets.asyncio.connection import Connection

        self._cls, self._orig = Connection, Connection.send
        counter, orig = self, Connection.send

        async def send(conn, message, *args, **kwargs):
            if isinstance(message, (bytes, bytearray, memoryview, str)):
                counter.messages.append((time.perf_counter(), len(message)))
            return await orig(conn, message, *args, **kwargs)

        Connection.send = send
        return self

    def __exit__(self, *exc) -> None:
        self._cls.send = self._orig

    @property
    def bytes(self) -> int:
        return sum(n for _, n in self.messages)


def time_to_first_frame(pw, path: Path | None, budget: int | None = None) -> dict:
    """One measurement in a fresh browser; ``path=None`` serves a single in-memory Gaussian
    (the cost of the page itself)."""
    with FreshBrowser(pw) as browser:
        return _time_to_first_frame(browser, path, budget)


def _time_to_first_frame(browser, path: Path | None, budget: int | None) -> dict:
    from splat.scene import GaussianScene
    from viewer.assets import open_asset
    from viewer.scene_view import scene_asset_from_memory
    from viewer.server import ViewerServer
    from viewer_browser import watch

    t0 = time.perf_counter()
    if path is None:
        asset = scene_asset_from_memory(GaussianScene.random(1), name="1 Gaussian (baseline)")
    else:
        asset = open_asset(path, budget=budget)
    t_ready = time.perf_counter() - t0
    srv = ViewerServer(asset, port=0, log=None, t_start=t0)
    page = browser.new_page(viewport={"width": VIEWPORT[0], "height": VIEWPORT[1]})
    log = watch(page)
    try:
        with WireCounter() as wire_counter:
            page.goto(srv.url)
            t_loaded = time.perf_counter() - t0
            ttff = srv.wait_first_frame(600)
        if ttff is None:
            raise RuntimeError(f"{path.name}: no first frame within 600 s")
        sess = srv.session(srv.client_ids()[0])
        wire = wire_counter.bytes
        payload = sess.view.bytes_sent()
        foreign = log.foreign()
        return {
            "ttff_s": ttff,
            "decode_s": asset.info.decode_s,
            "ready_s": t_ready,
            "page_loaded_s": t_loaded,  # the page's load event (HTML and scripts), from t0
            "connected_s": sess.connected_at - t0,  # the client's first camera message, from t0
            "connect_to_frame_s": sess.first_frame_s,
            "wire_bytes": wire,
            "payload_bytes": payload,
            "gaussians": asset.info.count,
            "shown": sess.view.layer.stats.shown if hasattr(sess.view, "layer") else None,
            "file_bytes": asset.info.file_size or 0,
            "format": asset.info.format,
            "foreign_requests": len(foreign),
        }
    finally:
        page.close()
        srv.stop()


def sh_refresh_rates(pw, scene, label: str, seconds: float = 6.0) -> dict:
    """Server cost of one SH refresh, and refreshes delivered to a tab while the camera orbits."""
    with FreshBrowser(pw) as browser:
        return _sh_refresh_rates(browser, scene, label, seconds)


def _sh_refresh_rates(browser, scene, label: str, seconds: float) -> dict:
    from viewer.scene_view import scene_asset_from_memory
    from viewer.server import ViewerServer
    from viewer.splats import pack_buffer, prepare_splats, set_rgba, view_colors
    from viewer_browser import watch

    prep = prepare_splats(scene)
    idx = np.arange(len(prep))
    buf = pack_buffer(prep, idx, prep.base_rgb)
    center, r = prep.center, 3.0 * prep.radius
    costs = []
    for k in range(12):
        a = math.radians(10 * k)
        pos = center + r * np.array([math.sin(a), -0.3, math.cos(a)])
        t = time.perf_counter()
        b = buf.copy()
        set_rgba(b, view_colors(prep, idx, pos))
        costs.append(time.perf_counter() - t)
    compute_ms = 1000 * statistics.median(costs[2:])

    asset = scene_asset_from_memory(scene, min_sh_interval=0.0)
    srv = ViewerServer(asset, port=0, log=None)
    page = browser.new_page(viewport={"width": 640, "height": 480})
    log = watch(page)
    wire = WireCounter().__enter__()
    big = lambda: sum(1 for _, n in wire.messages if n >= 16 * len(scene))  # noqa: E731
    try:
        page.goto(srv.url)
        srv.wait_first_frame(600)
        sess = srv.session(srv.client_ids()[0])
        layer = sess.view.layer
        layer.flush(60)
        sess.ctx.client.get_render(height=32, width=32, timeout=120)
        n_frames0, refresh0 = big(), layer.stats.sh_refreshes
        t_start = time.perf_counter()
        k = 0
        while time.perf_counter() - t_start < seconds:  # orbit: a new camera position every 10 ms
            a = 0.02 * k
            layer.camera_changed(center + r * np.array([math.sin(a), -0.3, math.cos(a)]))
            k += 1
            time.sleep(0.01)
        elapsed = time.perf_counter() - t_start
        delivered = big() - n_frames0  # written to the websocket within the window
        pushed = layer.stats.sh_refreshes - refresh0
    finally:
        wire.__exit__(None, None, None)
        page.close()
        srv.stop()
    return {
        "scene": label,
        "gaussians": len(scene),
        "sh_degree": scene.sh_degree,
        "refresh_compute_ms": compute_ms,
        "refresh_compute_fps": 1000.0 / compute_ms,
        "pushed_fps": pushed / elapsed,
        "delivered_fps": delivered / elapsed,  # buffer messages written to the websocket
        "bytes_per_refresh": 32 * len(scene),
        "foreign_requests": len(log.foreign()),
    }


def memory_query_latency(pw, scene, label: str, dim: int, clicks: int = 5) -> dict:
    """Click a clustered feature memory of ``scene`` ``clicks`` + 1 times in a fresh browser."""
    with FreshBrowser(pw) as browser:
        return _memory_query_latency(browser, scene, label, dim, clicks)


def _memory_query_latency(browser, scene, label: str, dim: int, clicks: int) -> dict:
    from viewer.memory_view import memory_asset_from_memory
    from viewer.server import ViewerServer
    from viewer_browser import clustered_memory, measure_click, project_point, watch

    mem, _ = clustered_memory(scene, k=16, dim=dim)
    srv = ViewerServer(memory_asset_from_memory(mem), port=0, log=None)
    try:
        page = browser.new_page(viewport={"width": VIEWPORT[0], "height": VIEWPORT[1]})
        watch(page)
        page.goto(srv.url)
        srv.wait_first_frame(300)
        sess = srv.session(srv.client_ids()[0])
        cam = sess.view.camera()
        # click opaque Gaussians' centres in the left 60 % of the canvas (clear of the GUI panel)
        g = torch.Generator().manual_seed(0)
        targets = []
        for i in torch.randperm(len(scene), generator=g).tolist():
            if float(scene.opacities[i]) < 0.5:
                continue
            x, y = project_point(cam, scene.means[i].double())
            if 0.05 * cam.width < x < 0.6 * cam.width and 0.1 * cam.height < y < 0.9 * cam.height:
                targets.append((x, y))
            if len(targets) == clicks + 1:
                break
        runs = []
        for x, y in targets:
            seconds, nbytes = measure_click(page, sess, x, y)
            runs.append({"click_to_drawn_ms": 1000 * seconds, "bytes": nbytes, **sess.view.result.ms})
        first, rest = runs[0], runs[1:]
        med = {k: statistics.median(r[k] for r in rest) for k in ("click_to_drawn_ms", "pick", "similarity", "colors")}
        return {"scene": label, "gaussians": len(scene), "dim": dim, "clicks": len(rest),
                "first_click_ms": first["click_to_drawn_ms"], "first_similarity_ms": first["similarity"],
                **{f"median_{k}": v for k, v in med.items()}, "bytes_per_query": rest[-1]["bytes"], "runs": runs}
    finally:
        srv.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="runs per asset (median reported)")
    ap.add_argument("--only", default=None, help="only assets whose name contains this")
    ap.add_argument("--no-sh", action="store_true", help="skip the SH refresh measurement")
    ap.add_argument("--no-memory", action="store_true", help="skip the feature-memory query measurement")
    ap.add_argument("--memory-only", action="store_true", help="only the feature-memory query measurement")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.memory_only:
        return memory_main(args)
    torch.set_num_threads(2)
    from rich.console import Console

    from splat.progress import human_bytes, summary_table

    console = Console(width=None if sys.stdout.isatty() else 150)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    console.print(f"load average {load:.2f} on {os.cpu_count()} cores")
    scenes = SHARED / "scenes"
    # (label, path or None, note, Gaussian budget)
    assets: list[tuple[str, Path | None, str, int | None]] = []
    for name in ("biker.spz", "fruit_drops_sh3.ply", "donut_sh0.ply", "plant.splat", "guitar.compressed.ply"):
        assets.append((name, scenes / name if (scenes / name).exists() else None, "", None))
    assets.insert(1, ("biker.spz, budget 20k", assets[0][1], "", 20000))
    tmp = Path(tempfile.mkdtemp(prefix="splat-bench-viewer-"))
    if (scenes / "biker.spz").exists() and (not args.only or "biker" in args.only):
        lgs, note = make_lgs(scenes / "biker.spz", tmp)
        assets.insert(1, ("biker.lgs", lgs, note, None))
    if args.only:
        assets = [a for a in assets if args.only in a[0]]

    pw = start_playwright()
    rows, records = [], []
    try:
        # warm-up: numba/torch first-call costs and the browser's first page load are not the viewer's
        warm = next((p for _, p, _, _ in assets if p is not None), None)
        if warm is not None:
            time_to_first_frame(pw, warm, budget=1000)
        for name, path, note, budget in [("baseline: 1 Gaussian", "baseline", "", None)] + assets:
            if path == "baseline":
                path = None
            elif path is None:
                console.print(f"[yellow]skip {name}[/]: {note or 'not found'}")
                records.append({"asset": name, "skipped": note or "not found"})
                continue
            runs = [time_to_first_frame(pw, path, budget) for _ in range(args.repeats)]
            med = {k: statistics.median([r[k] for r in runs]) for k in ("ttff_s", "decode_s", "ready_s", "page_loaded_s", "connected_s", "connect_to_frame_s")}
            r0 = runs[0]
            rec = {"asset": name, **r0, **med, "runs_ttff_s": [r["ttff_s"] for r in runs], "note": note}
            records.append(rec)
            rows.append([name, r0["format"], r0["gaussians"], r0["shown"] or 0, human_bytes(r0["file_bytes"]),
                         med["decode_s"], med["ready_s"], med["connected_s"], med["connect_to_frame_s"], med["ttff_s"],
                         human_bytes(r0["wire_bytes"]), r0["wire_bytes"] / max(r0["shown"] or r0["gaussians"], 1)])
        console.print(summary_table(
            f"Time to first frame (median of {args.repeats}; headless Chromium, SwiftShader, {VIEWPORT[0]}x{VIEWPORT[1]})",
            ["asset", "format", "Gaussians", "drawn", "file", "decode s", "ready s", "connected s",
             "connect->frame s", "TTFF s", "sent", "sent B/drawn G"], rows))

        sh_records = []
        if not args.no_sh:
            from splat.io import read_scene

            sh_scenes = []
            if (scenes / "fruit_drops_sh3.ply").exists():
                sh_scenes.append(("fruit_drops_sh3", read_scene(scenes / "fruit_drops_sh3.ply")))
            if (scenes / "biker.spz").exists():
                biker = read_scene(scenes / "biker.spz")
                g = torch.Generator().manual_seed(0)
                rest = 0.1 * torch.randn(len(biker), 15, 3, generator=g)
                sh_scenes.append(("biker + synthetic SH3", biker.replace(sh_rest=rest)))
            if args.only:
                sh_scenes = [s for s in sh_scenes if args.only in s[0]]
            for label, sc in sh_scenes:
                sh_records.append(sh_refresh_rates(pw, sc, label))
            console.print(summary_table(
                "SH colour refresh (server cost per refresh; refreshes pushed and delivered per second while orbiting)",
                ["scene", "Gaussians", "compute ms", "compute fps", "pushed fps", "delivered fps", "bytes/refresh"],
                [[r["scene"], r["gaussians"], r["refresh_compute_ms"], r["refresh_compute_fps"], r["pushed_fps"],
                  r["delivered_fps"], human_bytes(r["bytes_per_refresh"])] for r in sh_records]))
        mem_records = [] if args.no_memory else memory_section(pw, console)
    finally:
        pw.stop()

    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"load_average": load, "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(), "viewport": VIEWPORT, "repeats": args.repeats,
            "client": "Debian chromium, headless=new, SwiftShader WebGL"}
    (args.out / "viewer.json").write_text(json.dumps({"meta": meta, "time_to_first_frame": records,
                                                      "sh_refresh": sh_records, "memory_query": mem_records}, indent=1))
    with open(args.out / "viewer.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["asset", "format", "gaussians", "drawn", "file_bytes", "decode_s", "ready_s", "page_loaded_s",
                    "connected_s", "connect_to_frame_s", "ttff_s", "wire_bytes", "payload_bytes"])
        for r in records:
            if "skipped" not in r:
                w.writerow([r["asset"], r["format"], r["gaussians"], r["shown"], r["file_bytes"], f"{r['decode_s']:.4f}",
                            f"{r['ready_s']:.4f}", f"{r['page_loaded_s']:.4f}", f"{r['connected_s']:.4f}",
                            f"{r['connect_to_frame_s']:.4f}", f"{r['ttff_s']:.4f}",
                            r["wire_bytes"], r["payload_bytes"]])
    console.print(f"wrote {args.out / 'viewer.json'} and {args.out / 'viewer.csv'}")
    png = plot_ttff([r for r in records if "skipped" not in r], args.out / "viewer_ttff.png", meta)
    if png:
        console.print(f"wrote {png}")
    return 0


def memory_section(pw, console) -> list[dict]:
    """The feature-memory query measurement on plant.splat (D = 128 and 512); prints its table."""
    from splat.io import read_scene
    from splat.progress import human_bytes, summary_table

    path = SHARED / "scenes" / "plant.splat"
    if not path.exists():
        console.print(f"[yellow]skip the feature-memory query[/]: {path} not found")
        return []
    scene = read_scene(path)
    recs = [memory_query_latency(pw, scene, path.name, dim) for dim in (128, 512)]
    console.print(summary_table(
        "Feature-memory query: click -> recoloured splats drawn (median of 5 clicks after the first)",
        ["scene", "Gaussians", "D", "first click ms", "click->drawn ms", "pick ms", "similarity ms", "colours ms",
         "pushed / query"],
        [[r["scene"], r["gaussians"], r["dim"], r["first_click_ms"], r["median_click_to_drawn_ms"], r["median_pick"],
          r["median_similarity"], r["median_colors"], human_bytes(r["bytes_per_query"])] for r in recs]))
    return recs


def memory_main(args) -> int:
    """``--memory-only``: the feature-memory section alone, written to viewer_memory.json."""
    from rich.console import Console

    torch.set_num_threads(2)
    console = Console(width=None if sys.stdout.isatty() else 150)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    console.print(f"load average {load:.2f} on {os.cpu_count()} cores")
    pw = start_playwright()
    try:
        recs = memory_section(pw, console)
    finally:
        pw.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"load_average": load, "cpus": os.cpu_count(), "viewport": VIEWPORT,
            "client": "Debian chromium, headless=new, SwiftShader WebGL"}
    (args.out / "viewer_memory.json").write_text(json.dumps({"meta": meta, "memory_query": recs}, indent=1))
    console.print(f"wrote {args.out / 'viewer_memory.json'}")
    return 0


def plot_ttff(records: list[dict], path: Path, meta: dict) -> Path | None:
    """Stacked bars: decode+prepare, page start until the tab connects, connect until drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = [r["asset"] for r in records]
    ready = np.array([r["ready_s"] for r in records])
    connect = np.array([r["connected_s"] for r in records]) - ready
    draw = np.array([r["connect_to_frame_s"] for r in records])
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.9))
    y = np.arange(len(names))[::-1]
    ax.barh(y, ready, color="#4a90e2", label="decode + prepare (server)")
    ax.barh(y, connect, left=ready, color="#9b9b9b", label="page start until the tab connects")
    ax.barh(y, draw, left=ready + connect, color="#f5a623", label="transfer, sort and first draw (browser)")
    ax.set_yticks(y, names)
    ax.set_xlabel("seconds from the start of decoding")
    ax.set_title(f"Time to first frame (headless Chromium, SwiftShader; load {meta['load_average']:.1f} on "
                 f"{meta['cpus']} cores, median of {meta['repeats']})", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
