"""Scale benchmark: time, peak resident memory and fidelity of ``splat compress`` and
``splat decompress`` against scene size.

The compress path is ``splat compress --steps 0 --prune 0.66 --level 1`` (:data:`PATH`):
one prune + encode pass at the default preset's ratio and level. With ``--default`` it is the
default command itself (``splat compress``: prune/fine-tune rounds within ``--max-seconds``);
its rows are labelled "<size> default".

Sizes: playbot level 0 (500k Gaussians, SH 2, real), playbot tiled 2x1 (1M) and 2x2 (2M) with offsets
and, with ``--sh3``, a synthetic SH-3 scene (``--sh3-n`` Gaussians, default 6M; :func:`synthetic_scene`). Each
input is first written as an INRIA PLY (the raw size every ratio is against); every
compress and decompress runs in its own subprocess, which reports its own peak RSS
(VmHWM) and the peak RSS of each pipeline stage (sampled by a thread).

Writes bench/results/scale.{json,csv,png} (a log-log plot of time and peak memory vs N).

    python bench/scale.py                      # 0.5M and 2M
    python bench/scale.py --sizes 0.5M         # only playbot
    python bench/scale.py --sizes 0.5M,1M --default   # the default command (fine-tuning rounds)
    python bench/scale.py --sh3 --sh3-n 6000000
    python bench/scale.py --ray-ratio          # video encode: serial vs 2 Ray workers only
                                               # (-> bench/results/scale_ray.json, ~2-4 min)
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAYBOT = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "scenes" / "playbot" / "0_0" / "meta.json"
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))  # the packages, ahead of bench/ (whose render.py would shadow render/)


def rss_bytes() -> int:
    """Current resident set size of this process (bytes, from /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process since it started (bytes): VmHWM from /proc.
    Not ``getrusage``'s ru_maxrss, which Linux carries over fork + exec, so a child started
    by a large parent would report the parent's size."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class StageMemory:
    """A :class:`splat.progress.Progress` that records the peak RSS seen during each stage
    (a thread samples /proc every ``interval`` seconds)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.stage = "setup"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.mark()

    def mark(self, stage: str | None = None) -> None:
        if stage is not None:
            self.stage = stage
        r = rss_bytes()
        self.peaks[self.stage] = max(self.peaks.get(self.stage, 0), r)

    def start(self, desc: str, total: int | None) -> None:
        self.mark(desc)

    def advance(self, n: int = 1, info: str = "") -> None:
        pass

    def end(self) -> None:
        self.mark()

    def close(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return self.peaks


PATH = {"steps": 0, "prune": 0.66, "level": 1}
"""The compress path measured: ``splat compress --steps 0 --prune 0.66 --level 1`` (the
default preset's prune ratio and level, one pass, no fine-tuning rounds or search)."""


# --- child processes ---------------------------------------------------------------

def child_compress(src: str, dst: str, no_check: bool, default: bool = False) -> dict:
    from compress.scene.pipeline import CompressSettings, compress_scene, handoff
    from splat.heap import bound_heap
    from splat.io import read_scene

    bound_heap()  # as the `splat` CLI does
    mem = StageMemory()
    t0 = time.perf_counter()
    mem.mark("read")
    scene = read_scene(src)
    t_read = time.perf_counter() - t0
    mem.mark("after read")
    st = CompressSettings(check_fidelity=True) if default else CompressSettings(**PATH, check_fidelity=not no_check)
    load = handoff(scene, lambda: read_scene(src))  # as the `splat` CLI does: the compressor holds the only reference
    del scene
    result = compress_scene(load, st, progress=mem)
    mem.mark("write")
    Path(dst).write_bytes(result.data)
    wall = time.perf_counter() - t0
    stages = mem.close()
    fid = result.fidelity
    return {"wall_s": wall, "read_s": t_read, "timings": result.timings, "peak_rss": peak_rss_bytes(),
            "stage_rss": stages, "n": result.input_count, "kept": len(result.decoded),
            "bytes": len(result.data), "psnr": None if fid is None else fid.psnr, "start_prune": result.start_prune}


def child_decompress(src: str, dst: str) -> dict:
    from compress.scene.codec import read_lgs
    from splat.heap import bound_heap
    from splat.io import write_scene

    bound_heap()  # as the `splat` CLI does
    mem = StageMemory()
    t0 = time.perf_counter()
    mem.mark("decode")
    scene = read_lgs(src)
    mem.mark("write")
    write_scene(scene, dst)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "peak_rss": peak_rss_bytes(), "stage_rss": mem.close(), "n": len(scene)}


# --- inputs ------------------------------------------------------------------------

def make_inputs(tmp: Path, sizes: list[str], sh3: bool, sh3_n: int) -> list[tuple[str, Path]]:
    import torch

    from splat.io import read_scene, write_scene
    from splat.scene import GaussianScene

    out = []
    base = read_scene(PLAYBOT) if any(s in ("0.5M", "1M", "2M") for s in sizes) else None
    if "0.5M" in sizes:
        p = tmp / "playbot_0.5M.ply"
        write_scene(base, p)
        out.append(("0.5M", p))
    if "1M" in sizes:
        p = tmp / "playbot_1M.ply"
        write_scene(tile_scene(base, 2)[:2 * len(base)], p)
        out.append(("1M", p))
    if "2M" in sizes:
        p = tmp / "playbot_2M.ply"
        write_scene(tile_scene(base, 2), p)
        out.append(("2M", p))
    del base
    if sh3:
        p = tmp / f"synthetic_sh3_{sh3_n / 1e6:g}M.ply"
        write_scene(synthetic_scene(sh3_n, sh_degree=3), p)
        out.append((f"{sh3_n / 1e6:g}M SH3", p))
    del torch, GaussianScene
    return out


def tile_scene(scene, k: int):
    """``scene`` repeated on a k x k grid in its x/z plane (offset by its extent)."""
    import torch

    from splat.scene import GaussianScene

    lo = scene.means.quantile(0.01, dim=0) if len(scene) < 16_000_000 else scene.means.min(0).values
    hi = scene.means.quantile(0.99, dim=0) if len(scene) < 16_000_000 else scene.means.max(0).values
    step = (hi - lo) * 1.05
    parts = []
    for i in range(k):
        for j in range(k):
            off = torch.tensor([i * float(step[0]), 0.0, j * float(step[2])])
            parts.append(scene.replace(means=scene.means + off))
    fields = {f: torch.cat([getattr(p, f) for p in parts]) for f in
              ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")}
    return GaussianScene(**fields)


def synthetic_scene(n: int, sh_degree: int = 3, seed: int = 0):
    """A synthetic scene of ``n`` Gaussians shaped like a trained one, seeded: splats on a
    unit sphere (radial jitter of a tenth of their spacing), sized to the surface spacing
    sqrt(4 pi / n) (0.5-2x), flattened along the normal, colours smooth over the surface
    plus noise, SH rest of ``sh_degree`` small and random. Generated in float32 (a 6M SH-3
    scene is its 1.5 GB of arrays)."""
    import math

    import torch

    from splat.scene import GaussianScene, sh_rest_count

    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n, 3, generator=g)
    d /= d.norm(dim=1, keepdim=True).clamp_min(1e-12)
    spacing = math.sqrt(4 * math.pi / n)
    means = d * (1.0 + 0.1 * spacing * torch.randn(n, 1, generator=g))
    log_scales = math.log(spacing) + math.log(2.0) * (2 * torch.rand(n, 3, generator=g) - 1)
    log_scales[:, 2] -= 1.5  # flat splats; the rotation below turns z to a random axis, as in trained scenes
    quats = torch.randn(n, 4, generator=g)
    quats /= quats.norm(dim=1, keepdim=True).clamp_min(1e-12)
    opacity_logits = 1.0 + 1.5 * torch.randn(n, generator=g)
    sh_dc = torch.stack([torch.sin(3 * d[:, 0]), torch.cos(2 * d[:, 1]), torch.sin(4 * d[:, 2] + 1)], 1)
    sh_dc += 0.2 * torch.randn(n, 3, generator=g)
    del d
    sh_rest = 0.1 * torch.randn(n, sh_rest_count(sh_degree), 3, generator=g)
    return GaussianScene(means=means, quats=quats, log_scales=log_scales, opacity_logits=opacity_logits,
                         sh_dc=sh_dc, sh_rest=sh_rest)


# --- scale out -----------------------------------------------------------------------

def ray_ratio(gaussians: int = 20000, frames: int = 32, gop: int = 4) -> dict:
    """Wall time of ``encode_video`` serial vs 2 Ray workers on a synthetic tracked clip, in
    one run; the bytes must match. Serial is the default in-process path (its torch/numba
    thread counts are recorded) and, for reference, the same with one thread. The local Ray
    is started and both workers warmed (imports, numba cache loads) before the timed run,
    as a long job amortises them; that start-up is recorded separately."""
    import ray

    from compress.video import VideoSettings, encode_video
    from compress.video.synth import performer_frames
    from splat.threads import threading_info, threads

    bvh = ROOT.parent / "shared" / "data" / "motion" / "mocapbank_455f.bvh"
    clip, fps = performer_frames(gaussians, frames, bvh=bvh, frame_step=2)
    st = VideoSettings(gop=gop, fps=fps)
    load = os.getloadavg()
    encode_video(clip[:gop], st)  # warm this process too (numba cache loads)
    info = threading_info()
    t = time.perf_counter()
    serial = encode_video(clip, st)
    t_serial = time.perf_counter() - t
    with threads(1):
        t = time.perf_counter()
        one = encode_video(clip, st)
        t_one = time.perf_counter() - t
    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        encode_video(clip[:2 * gop], st, workers=2)  # warm both workers
        t_start = time.perf_counter() - t
        t = time.perf_counter()
        par = encode_video(clip, st, workers=2)
        t_par = time.perf_counter() - t
    finally:
        ray.shutdown()
    assert par.data == serial.data == one.data, "2-worker encode differs from serial"
    return {"gaussians": gaussians, "frames": frames, "segments": serial.info.n_segments,
            "serial_s": round(t_serial, 2), "serial_threads": {k: info[k] for k in ("torch_threads", "numba_threads")},
            "serial_1thread_s": round(t_one, 2), "workers2_s": round(t_par, 2),
            "speedup": round(t_serial / t_par, 2), "speedup_vs_1thread": round(t_one / t_par, 2),
            "ray_start_and_warm_s": round(t_start, 2), "cpus": os.cpu_count(),
            "load_before": load, "load_after": os.getloadavg(),
            "command": "python bench/scale.py --ray-ratio"}


# --- driver ------------------------------------------------------------------------

def run_child(mode: str, *args: str) -> dict:
    env = dict(os.environ, NUMBA_NUM_THREADS=os.environ.get("NUMBA_NUM_THREADS", "2"))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="0.5M,2M", help="comma list of 0.5M, 1M, 2M")
    ap.add_argument("--default", action="store_true",
                    help="measure the default command (prune/fine-tune rounds) instead of --steps 0")
    ap.add_argument("--sh3", action="store_true", help="add a synthetic SH-3 scene")
    ap.add_argument("--sh3-n", type=int, default=6_000_000)
    ap.add_argument("--no-check", action="store_true", help="skip the fidelity renders")
    ap.add_argument("--out", type=Path, default=RESULTS / "scale")
    ap.add_argument("--fresh", action="store_true", help="replace the results file instead of merging into it")
    ap.add_argument("--ray-ratio", action="store_true", help="only the serial vs 2-worker video encode ratio")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.ray_ratio:
        res = ray_ratio()
        print(json.dumps(res))
        (RESULTS / "scale_ray.json").write_text(json.dumps(res, indent=1))
        return
    if a.child:
        mode, *args = a.child
        res = (child_compress(args[0], args[1], args[2] == "1", args[3:] == ["default"]) if mode == "compress"
               else child_decompress(*args))
        print(json.dumps(res))
        return
    sizes = [s for s in a.sizes.split(",") if s]
    load = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="splat-scale-") as d:
        tmp = Path(d)
        for label, ply in make_inputs(tmp, sizes, a.sh3, a.sh3_n):
            raw, load_row = ply.stat().st_size, os.getloadavg()
            lgs, back = tmp / (ply.stem + ".lgs"), tmp / (ply.stem + ".out.ply")
            c = run_child("compress", str(ply), str(lgs), "1" if a.no_check else "0", *(["default"] if a.default else []))
            label = f"{label} default" if a.default else label
            dd = run_child("decompress", str(lgs), str(back))
            row = {"size": label, "command": "python bench/scale.py " + " ".join(sys.argv[1:]),
                   "load_before": load_row, "n": c["n"], "raw_ply_bytes": raw, "lgs_bytes": c["bytes"],
                   "compress_s": round(c["wall_s"], 2), "compress_peak_rss": c["peak_rss"],
                   "compress_rss_x_ply": round(c["peak_rss"] / raw, 2),
                   "decompress_s": round(dd["wall_s"], 2), "decompress_peak_rss": dd["peak_rss"],
                   "decompress_rss_x_ply": round(dd["peak_rss"] / raw, 2),
                   "psnr": c["psnr"], "kept": c["kept"], "start_prune": c.get("start_prune"), "compress_stage_rss": c["stage_rss"], "compress_timings": c["timings"],
                   "decompress_stage_rss": dd["stage_rss"]}
            row["load_after"] = os.getloadavg()
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if "stage" not in k and k != "compress_timings"}), flush=True)
    if not a.fresh:
        rows = merge_rows(a.out.with_suffix(".json"), rows)
    meta = {"load_before": load, "load_after": os.getloadavg(), "cpus": os.cpu_count(),
            "command": "python bench/scale.py " + " ".join(sys.argv[1:]),
            "note": "2-core machine shared with other engineers; load averages (1, 5, 15 min) recorded"}
    write_results(a.out, rows, meta)


def merge_rows(path: Path, rows: list[dict]) -> list[dict]:
    """``rows`` plus the rows of an earlier results file for sizes not measured now (each
    row keeps its own load and command), sorted by Gaussian count."""
    old = json.loads(path.read_text()) if path.exists() else {"rows": []}
    meta = old.get("meta", {})
    done = {r["size"] for r in rows}
    kept = [dict(r, command=r.get("command", meta.get("command")), load_before=r.get("load_before", meta.get("load_before")))
            for r in old.get("rows", []) if r["size"] not in done]
    return sorted(kept + rows, key=lambda r: r["n"])


def write_results(out: Path, rows: list[dict], meta: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    flat = [k for k in rows[0] if not isinstance(rows[0][k], dict)] if rows else []
    with out.with_suffix(".csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=flat, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    n = [r["n"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].loglog(n, [r["compress_s"] for r in rows], "o-", label="compress")
    ax[0].loglog(n, [r["decompress_s"] for r in rows], "s-", label="decompress")
    ax[0].set(xlabel="Gaussians", ylabel="wall time (s)", title="time")
    ax[1].loglog(n, [r["compress_peak_rss"] / 2**20 for r in rows], "o-", label="compress")
    ax[1].loglog(n, [r["decompress_peak_rss"] / 2**20 for r in rows], "s-", label="decompress")
    ax[1].loglog(n, [4 * r["raw_ply_bytes"] / 2**20 for r in rows], "k--", label="4x raw PLY")
    ax[1].set(xlabel="Gaussians", ylabel="peak RSS (MiB)", title="peak resident memory")
    for a in ax:
        a.legend()
        a.grid(True, which="both", alpha=0.3)
    loads = ", ".join(f"{r['load_before'][0]:.1f}" for r in rows)
    fig.suptitle(f"splat compress/decompress scaling ({meta['cpus']} shared cores, load {loads} before each size)")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=100)


if __name__ == "__main__":
    main()
