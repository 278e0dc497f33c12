"""The web player against the viser viewer, in one run, in the same headless Chromium.

    .venv/bin/python bench/web_player.py                   # 3 repetitions of everything (a few minutes)
    .venv/bin/python bench/web_player.py --repeats 1 --seconds 4 --out /tmp/web_player.json

    # the viser column, now that viser is gone from the package: from a checkout of the last
    # commit that had it (14b7c7b), run in a subprocess of its own (needs viser installed)
    mkdir -p /tmp/viser-old && git archive 14b7c7b | tar -x -C /tmp/viser-old
    .venv/bin/python bench/web_player.py --viser-checkout /tmp/viser-old

Both paths are what ``splat view`` ran: viser (``viewer.server.ViewerServer`` on the asset,
the default ``splat view`` before the web player; the viser viewer has since been removed, so
without it the script measures the web player alone and keeps the committed JSON) and the web player (``splat view --web``'s
server, ``viewer.web_server.serve_web``, which sends the client and the file and counts the
bytes it sends). The client is Debian's Chromium under Playwright with WebGL on SwiftShader
(the CPU), a fresh browser for every measurement (tests/viewer_browser.py's checked launcher:
no page may reach a host outside loopback), the two paths alternating, one after the other.

* **First frame**, biker (152,746 Gaussians) as ``.lgs`` (``write_lgs`` defaults, encoded once
  and cached in ``--work``). "From launch": from the moment ``splat view`` starts (viser decodes
  the file on the server before it serves; the web server only opens it) until the tab has
  drawn the splats. "From navigation": from ``page.goto`` until drawn. viser's "drawn" is its
  ``get_render`` round trip (the client sorts and draws what it received); the web player's is
  its first ``frame`` event (Spark drew the splats), timed in the page's clock.
* **Delivered fps**, the 50k-Gaussian performer clip (``bench/web_decode.py``'s: 60 frames at
  30 fps, gop 30, cached in ``--work``) playing at ``--speed`` for ``--seconds``, the first
  second skipped: viser, frame buffers written to the tab's websocket per second
  (``bench/video_playback.py``); the web player, ``frame`` events (a frame written to the GPU).
* **Wire**: bytes sent per second of video played over the clip's own bitrate (its bytes over
  its duration). viser: websocket payload bytes over the window. Web player: bytes the server
  sent for the clip by the end of the first pass over the file's bytes (later passes of the
  loop come from the player's segment cache and send nothing; the total is recorded too).
* **Decode fps**: frames decoded per second by the decoder each path uses, while playing:
  viser's Python decoder on the server (``1000 / decode ms``), the player's worker (the
  ``decodeMs`` of each frame shown, measured in the worker).

With ``--viser-checkout DIR`` the viser half runs in one subprocess started in DIR with only
DIR on its import path: it loads DIR's own ``bench/web_player.py`` and calls its
``viser_first_frame`` and ``viser_playback`` (the code that measured viser before it was
removed, on that checkout's decoder and server) for each request, one JSON line in and out,
so its warm-up and the alternation with the web player are as before.

Goals: first frame <= 1/2 viser's; delivered fps >= 2x viser's; wire <= 1.02x the file's
bitrate; worker decode >= 60 fps. Writes bench/results/web_player.json (the machine's load
before and after, Chromium's version, the commit, every raw sample); prints a table. Without
viser (or bench/viewer.py) the viser column is skipped with a message, and the committed JSON
is left alone unless ``--force`` or ``--out`` says otherwise.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
# bench/viewer.py is named like the package it measures: keep bench/ off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))  # the headless-Chromium launcher shared with the tests
SHARED = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "bench" / "results" / "web_player.json"
VIEWPORT = (960, 540)
GOALS = {"first_frame": 0.5, "delivered_fps": 2.0, "wire_ratio": 1.02, "decode_fps": 60.0}
# The page's record of the player's events (capture phase: the element's events do not bubble).
RECORDER = """
window.__wp = { frames: [], decodeMs: [], errors: [], first: null, wrapped: false };
window.addEventListener("frame", (e) => {
  const t = performance.now(), r = window.__wp, f = e.detail ? e.detail.frame : 0;
  if (r.first === null) r.first = t;
  if (r.frames.length && f < r.frames[r.frames.length - 1][1]) r.wrapped = true;
  r.frames.push([t, f]);
}, true);
window.addEventListener("decodems", (e) => window.__wp.decodeMs.push([performance.now(), e.detail.decodeMs]), true);
window.addEventListener("error", (e) => { if (e.detail && e.detail.message) window.__wp.errors.push(e.detail.message); }, true);
"""


def _module(name: str):
    """A bench script as a module (bench/ is not on the import path)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def viser_modules() -> tuple[SimpleNamespace | None, str]:
    """(bench/viewer.py and bench/video_playback.py as modules, "") when the viser path can run,
    else (None, why not)."""
    if importlib.util.find_spec("viser") is None:
        return None, "viser is not installed"
    for f in ("viewer.py", "video_playback.py"):
        if not (ROOT / "bench" / f).exists():
            return None, f"bench/{f} (the viser path's helpers) is gone"
    try:
        import viewer.server  # noqa: F401 - the viser server
        return SimpleNamespace(viewer=_module("viewer"), playback=_module("video_playback")), ""
    except ImportError as e:
        return None, f"the viser viewer does not import ({e})"


VISER_DRIVER = r"""
import importlib.util, json, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("old_web_player", "bench/web_player.py")
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
vm, why = m.viser_modules()
say = lambda **k: print("@@viser " + json.dumps(k), flush=True)
if vm is None:
    say(error=why)
    sys.exit(0)
import torch
torch.set_num_threads(1)  # as in one process before: one core for the server, one for the browser
say(ok=True)
for line in sys.stdin:
    req = json.loads(line)
    try:
        if req["op"] == "first_frame":
            say(result=m.viser_first_frame(vm, Path(req["path"])))
        else:
            say(result=m.viser_playback(vm, Path(req["clip"]), req["seconds"], req["speed"]))
    except Exception as e:
        say(error=f"{type(e).__name__}: {e}")
"""


class ViserCheckout:
    """The viser half run from a checkout ``root`` of a commit that still had it (a subprocess
    of that checkout's own code; see the module docstring). ``first_frame`` and ``playback``
    answer as ``viser_first_frame`` and ``viser_playback`` do."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        if not (self.root / "bench" / "web_player.py").is_file() or not (self.root / "viewer" / "server.py").is_file():
            raise SystemExit(f"{root}: not a checkout with the viser viewer (bench/web_player.py, viewer/server.py); "
                             "make one with `git archive 14b7c7b | tar -x -C DIR`")
        env = {**os.environ, "PYTHONPATH": str(self.root)}
        self.proc = subprocess.Popen([sys.executable, "-c", VISER_DRIVER], cwd=self.root, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        hello = self._reply()
        if "error" in hello:
            self.close()
            raise SystemExit(f"{root}: the viser path cannot run there ({hello['error']})")
        git = subprocess.run(["git", "-C", str(self.root), "rev-parse", "HEAD"], capture_output=True, text=True)
        self.commit = git.stdout.strip() if git.returncode == 0 else None

    def _reply(self) -> dict:
        for line in self.proc.stdout:  # anything the old code prints is passed through
            if line.startswith("@@viser "):
                return json.loads(line[8:])
            sys.stdout.write(line)
        raise RuntimeError(f"the viser subprocess in {self.root} ended (exit {self.proc.wait()})")

    def _call(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        r = self._reply()
        if "error" in r:
            raise RuntimeError(f"viser ({self.root}): {r['error']}")
        return r["result"]

    def first_frame(self, path: Path) -> dict:
        return self._call(op="first_frame", path=str(path.resolve()))

    def playback(self, clip: Path, seconds: float, speed: float) -> dict:
        return self._call(op="playback", clip=str(clip.resolve()), seconds=seconds, speed=speed)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class ViserHere:
    """The viser half in this process (a tree that still has viser's modules)."""

    def __init__(self, vm: SimpleNamespace):
        self.vm, self.commit = vm, None

    def first_frame(self, path: Path) -> dict:
        return viser_first_frame(self.vm, path)

    def playback(self, clip: Path, seconds: float, speed: float) -> dict:
        return viser_playback(self.vm, clip, seconds, speed)

    def close(self) -> None:
        pass


def make_lgs(work: Path) -> tuple[Path, str]:
    """biker as .lgs with ``write_lgs``'s defaults (no pruning), cached in ``work`` by the codec's source."""
    from compress.scene.codec import write_lgs
    from splat.io import read_scene

    src = SHARED / "scenes" / "biker.spz"
    if not src.exists():
        raise SystemExit(f"{src} not found (set SPLAT_SHARED_DATA to the shared data folder)")
    codec = b"".join(p.read_bytes() for p in sorted((ROOT / "compress" / "scene").glob("*.py")))
    out = work / f"biker-{hashlib.sha1(codec).hexdigest()[:10]}.lgs"
    if out.exists():
        return out, "biker.spz -> .lgs, write_lgs defaults (cached)"
    work.mkdir(parents=True, exist_ok=True)
    print(f"encoding {src.name} -> {out} (write_lgs defaults) ...", flush=True)
    t0 = time.perf_counter()
    tmp = out.with_suffix(".tmp.lgs")
    write_lgs(read_scene(src), tmp)
    os.replace(tmp, out)
    return out, f"biker.spz -> .lgs, write_lgs defaults, encoded in {time.perf_counter() - t0:.0f} s"


def fresh_browser(_pw=None):
    """A new Chromium (tests/viewer_browser.py's checked launcher) for one measurement."""
    from viewer_browser import checked_chromium

    return checked_chromium()


def new_page(browser, recorder: bool = False):
    page = browser.new_page(viewport={"width": VIEWPORT[0], "height": VIEWPORT[1]})
    page.set_default_timeout(300_000)
    if recorder:
        page.add_init_script(RECORDER)
    return page


# ---- first frame ---------------------------------------------------------------------------

def viser_first_frame(vm, path: Path) -> dict:
    from viewer.assets import open_asset
    from viewer.server import ViewerServer

    with fresh_browser() as browser:
        page = new_page(browser)
        t0 = time.perf_counter()
        asset = open_asset(path)
        t_ready = time.perf_counter() - t0
        srv = ViewerServer(asset, port=0, log=None, t_start=t0)
        try:
            with vm.viewer.WireCounter() as wire:
                t_nav = time.perf_counter() - t0
                page.goto(srv.url)
                ttff = srv.wait_first_frame(600)
            if ttff is None:
                raise RuntimeError(f"viser: {path.name} drew no first frame within 600 s")
            return {"from_launch_s": ttff, "from_navigation_s": ttff - t_nav, "decode_s": asset.info.decode_s,
                    "ready_s": t_ready, "wire_bytes": wire.bytes, "gaussians": asset.info.count}
        finally:
            page.close()
            srv.stop()


def web_first_frame(path: Path) -> dict:
    from viewer.web_server import serve_web

    with fresh_browser() as browser:
        page = new_page(browser, recorder=True)
        t0 = time.perf_counter()
        srv = serve_web([path], port=0)
        try:
            t_nav = time.perf_counter() - t0
            page.goto(srv.url)
            page.wait_for_function("window.__wp.first !== null || window.__wp.errors.length > 0", timeout=600_000)
            t_seen = time.perf_counter() - t0
            rec = page.evaluate("""() => { const p = document.querySelector('splat-player');
                return { first: window.__wp.first, errors: window.__wp.errors, info: p.info, bytes: p.bytesFetched }; }""")
            if rec["errors"]:
                raise RuntimeError(f"web player: {rec['errors'][0]}")
            nav = rec["first"] / 1000.0  # performance.now() at the first frame: ms since the navigation started
            return {"from_launch_s": t_nav + nav, "from_navigation_s": nav, "seen_by_python_s": t_seen - t_nav,
                    "decode_s": rec["info"]["decodeMs"] / 1000.0, "player_first_frame_ms": rec["info"]["firstFrameMs"],
                    "wire_bytes": sum(srv.bytes_sent.values()), "asset_bytes": srv.bytes_sent[f"/assets/{path.name}"],
                    "gaussians": rec["info"]["count"]}
        finally:
            page.close()
            srv.stop()


# ---- playback --------------------------------------------------------------------------------

def viser_playback(vm, clip: Path, seconds: float, speed: float) -> dict:
    bv = SimpleNamespace(FreshBrowser=fresh_browser, WireCounter=vm.viewer.WireCounter)
    r = vm.playback.playback(None, bv, clip, seconds, speed, VIEWPORT, "+y")
    video_s = (r["seconds"]) * speed
    return {"delivered_fps": r["delivered_fps"], "wire_mbit_s": r["wire_mbit_s"],
            "file_mbit_s": r["mean_bitrate_mbit_s"], "wire_ratio": r["wire_mbit_s"] / speed / r["mean_bitrate_mbit_s"],
            "decode_ms": r["decode_ms"], "decode_fps": 1000.0 / r["decode_ms"] if r["decode_ms"] else float("nan"),
            "video_seconds": video_s, "raw": r}


def web_playback(clip: Path, seconds: float, speed: float, n_frames: int, fps: float) -> dict:
    from viewer.web_server import serve_web

    key = f"/assets/{clip.name}"
    size = clip.stat().st_size
    with fresh_browser() as browser:
        page = new_page(browser, recorder=True)
        srv = serve_web([clip], port=0, autoplay=True, loop=True, speed=speed)
        try:
            page.goto(srv.url)
            page.wait_for_function("window.__wp.first !== null || window.__wp.errors.length > 0", timeout=600_000)
            t_first = time.perf_counter()
            first_pass_bytes = None
            while time.perf_counter() - t_first < seconds:
                time.sleep(0.1)
                if first_pass_bytes is None and page.evaluate("window.__wp.wrapped"):
                    first_pass_bytes = srv.bytes_sent[key]
            t_end_py = time.perf_counter()
            rec = page.evaluate("""() => { const p = document.querySelector('splat-player');
                return { now: performance.now(), frames: window.__wp.frames, decodeMs: window.__wp.decodeMs,
                         errors: window.__wp.errors, first: window.__wp.first, stats: p.stats }; }""")
            total_bytes = srv.bytes_sent[key]
        finally:
            page.close()
            srv.stop()
    if rec["errors"]:
        raise RuntimeError(f"web player: {rec['errors'][0]}")
    t0, t1 = rec["first"] + 1000.0, rec["now"]  # skip the first second, as for viser
    steady = [t for t, _ in rec["frames"] if t0 <= t <= t1]
    dec = [ms for t, ms in rec["decodeMs"] if t0 <= t <= t1]
    mean_dec = statistics.mean(dec) if dec else float("nan")
    passes = (len(rec["frames"]) + rec["stats"]["framesSkipped"]) / n_frames if rec["stats"] else float("nan")
    file_mbit_s = 8.0 * size / (n_frames / fps) / 1e6
    wrapped = first_pass_bytes is not None
    pass_bytes = first_pass_bytes if wrapped else total_bytes
    return {"delivered_fps": len(steady) / ((t1 - t0) / 1000.0),
            "wire_ratio": pass_bytes / size,  # bytes per second of video over the file's bytes per second
            "wire_mbit_s": pass_bytes / size * file_mbit_s, "file_mbit_s": file_mbit_s,
            "first_pass_complete": wrapped, "first_pass_bytes": pass_bytes, "window_bytes": total_bytes,
            "window_seconds": seconds, "passes_played": passes,
            "decode_ms": mean_dec, "decode_fps": 1000.0 / mean_dec, "decoded_frames": len(dec),
            "frame_times_ms": rec["frames"], "decode_ms_samples": rec["decodeMs"], "player_stats": rec["stats"],
            "wall_window_s": t_end_py - t_first}


# ---- report ----------------------------------------------------------------------------------

def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs) if runs else float("nan")


def summary_rows(viser: dict | None, web: dict) -> list[dict]:
    """One row per metric: medians, ratio web / viser, goal and whether it is met."""
    v = viser or {}
    rows = []

    def row(metric, key, section, goal_text, met, ratio_goal=None, absolute=False):
        a = _median(v.get(section, []), key) if v else None
        b = _median(web[section], key)
        ratio = b / a if a else None
        if absolute:
            ok = met(b)
        elif ratio is None:
            ok = None
        else:
            ok = met(ratio)
        rows.append({"key": key, "metric": metric, "viser": a, "web_player": b, "ratio": ratio, "goal": goal_text, "met": ok})

    half = GOALS["first_frame"]
    row("first frame from launch, biker .lgs (s)", "from_launch_s", "first_frame", f"web <= {half:g}x viser",
        lambda r: r <= half)
    row("first frame from navigation, biker .lgs (s)", "from_navigation_s", "first_frame", f"web <= {half:g}x viser",
        lambda r: r <= half)
    row("delivered fps, 50k clip", "delivered_fps", "playback", f"web >= {GOALS['delivered_fps']:g}x viser",
        lambda r: r >= GOALS["delivered_fps"])
    row("wire / file bitrate", "wire_ratio", "playback", f"web <= {GOALS['wire_ratio']:g}",
        lambda x: x <= GOALS["wire_ratio"], absolute=True)
    row("decode fps, 50k (viser: server; web: worker)", "decode_fps", "playback", f"web >= {GOALS['decode_fps']:g}",
        lambda x: x >= GOALS["decode_fps"], absolute=True)
    return rows


def _fmt(x) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="measurements per path and metric (median reported)")
    ap.add_argument("--seconds", type=float, default=6.0, help="playback window per measurement, s")
    ap.add_argument("--speed", type=float, default=1.0, help="playback speed (target fps = clip fps x speed)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "splatkit_web_player",
                    help="where biker.lgs is cached")
    ap.add_argument("--clip-work", type=Path, default=Path(tempfile.gettempdir()) / "splatkit_web_decode",
                    help="where bench/web_decode.py keeps the 50k performer clip")
    ap.add_argument("--clip", type=Path, default=None, help="play this .gsv instead of the performer clip")
    ap.add_argument("--out", type=Path, default=None, help=f"results JSON (default {RESULTS.relative_to(ROOT)})")
    ap.add_argument("--force", action="store_true", help="write the default JSON even without the viser column")
    ap.add_argument("--viser-checkout", type=Path, default=None, metavar="DIR",
                    help="run the viser half from DIR, a checkout of a commit that had it (e.g. 14b7c7b), in a subprocess")
    args = ap.parse_args(argv)

    import torch
    from rich.console import Console

    from compress.video import VideoReader
    from splat.progress import summary_table

    torch.set_num_threads(1)  # as bench/video_playback.py: one core for the server, one for the browser
    console = Console(width=None if sys.stdout.isatty() else 160)
    if args.viser_checkout is not None:
        vm, why = ViserCheckout(args.viser_checkout), ""
    else:
        here, why = viser_modules()
        vm = ViserHere(here) if here else None
    out = args.out or RESULTS
    write = True
    if vm is None:
        console.print(f"[yellow]skipping the viser column: {why}[/]")
        if args.out is None and not args.force and RESULTS.exists():
            write = False
            console.print(f"[yellow]{RESULTS.relative_to(ROOT)} (measured with viser) is kept: pass --out or --force to write[/]")

    lgs, lgs_note = make_lgs(args.work)
    clip = args.clip or _module("web_decode").make_clip(args.clip_work)
    with VideoReader(clip) as r:
        n_frames, fps, n_g = r.info.n_frames, float(r.info.fps), r.info.n_gaussians
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    load_before = os.getloadavg()
    console.print(f"{uptime_before} ({os.cpu_count()} cores)")
    with fresh_browser() as b:
        chromium = b.version

    samples = {"viser": {"first_frame": [], "playback": []} if vm else None,
               "web_player": {"first_frame": [], "playback": []}}
    # warm-up, not recorded: numba / V8 first-call costs and the first Chromium start
    if vm:
        vm.first_frame(lgs)
    web_first_frame(lgs)
    t_run = time.perf_counter()
    for k in range(args.repeats):  # the two paths alternate, so a burst of load hits both
        console.print(f"round {k + 1}/{args.repeats}: first frame ...")
        if vm:
            samples["viser"]["first_frame"].append(vm.first_frame(lgs))
        samples["web_player"]["first_frame"].append(web_first_frame(lgs))
        console.print(f"round {k + 1}/{args.repeats}: playback ...")
        if vm:
            samples["viser"]["playback"].append(vm.playback(clip, args.seconds, args.speed))
        samples["web_player"]["playback"].append(web_playback(clip, args.seconds, args.speed, n_frames, fps))
    run_s = time.perf_counter() - t_run
    if vm:
        vm.close()
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    load_after = os.getloadavg()

    rows = summary_rows(samples["viser"], samples["web_player"])
    console.print(summary_table(
        f"viser vs web player, median of {args.repeats} (headless Chromium {chromium}, SwiftShader, "
        f"{VIEWPORT[0]}x{VIEWPORT[1]}; load {load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} cores)",
        ["metric", "viser", "web player", "web / viser", "goal", "met"],
        [[r["metric"], _fmt(r["viser"]), _fmt(r["web_player"]), _fmt(r["ratio"]), r["goal"],
          {True: "met", False: "missed", None: "-"}[r["met"]]] for r in rows]))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip())
    result = {
        "meta": {"commit": commit, "dirty": dirty, "chromium": chromium, "client": "headless=new, SwiftShader WebGL",
                 "uptime_before": uptime_before, "uptime_after": uptime_after, "load_before": load_before,
                 "load_after": load_after, "cpus": os.cpu_count(), "python": platform.python_version(),
                 "viewport": VIEWPORT, "repeats": args.repeats, "seconds": args.seconds, "speed": args.speed,
                 "run_s": run_s, "viser": "measured" if vm else f"skipped: {why}", "goals": GOALS,
                 "viser_checkout": ({"path": str(args.viser_checkout), "commit": vm.commit}
                                    if args.viser_checkout is not None else None),
                 "command": "python bench/web_player.py " + " ".join(argv if argv is not None else sys.argv[1:])},
        "scene": {"file": lgs.name, "bytes": lgs.stat().st_size, "note": lgs_note},
        "clip": {"file": clip.name, "bytes": clip.stat().st_size, "frames": n_frames, "fps": fps, "gaussians": n_g,
                 "file_mbit_s": 8.0 * clip.stat().st_size / (n_frames / fps) / 1e6},
        "summary": rows,
        "samples": samples,
    }
    if write:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, out)
        console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
