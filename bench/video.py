"""Volumetric video benchmark: .gsv against independent per-frame .lgs, SPZ and SOG.

    .venv/bin/python bench/video.py [--gaussians 50000] [--frames 90] [--wave-frames 200] [--quick]
    .venv/bin/python bench/video.py --clips motion --out bench/results/video_motion

Clips (one run, side by side):

* the synthetic mocap performer (``compress/video/synth.py``; tracked), at gop 30;
* the same performer with every frame shuffled (re-sorted; correspondence recovered);
* the PlayCanvas wave sequence ``../shared/data/video/wave`` (SOG frames, re-sorted);
* an independently made sequence (a flipbook): the performer re-sampled every frame (new
  Gaussians on the same moving surface; tracking by rendering), encoded at
  ``--independent-target`` dB. Its row adds every frame's PSNR (the benchmark's views and the
  encoder's held-out views), the frames below the target, the size against per-frame SOG, the
  colour refresh's bits per Gaussian per predicted frame and its share of the file;
* ``motion``: a motion-speed sweep. A shared scene (``--motion-scene``, subsampled to
  ``--motion-gaussians``) twisted and swung at 0.5-20 neighbour spacings per frame, re-sorted
  every frame (``compress/video/synth_motion.py``). Per speed: the share of true matches the
  registration recovers, then the clip encoded in auto mode: bits/G/frame and worst-frame
  PSNR; per-frame SOG and ``.lgs`` of the same frames. Plus one clip of
  ``--cycle-gaussians`` twisted through a whole cycle in 12 frames (a third of a radian
  per frame at the far end).

Per clip and codec: bits per Gaussian per frame, KB per frame, PSNR of renders of the
decoded frames against renders of the original frames (4 fixed orbit cameras, 256x256,
every ``--psnr-every``-th frame), encode seconds per frame (wall and process CPU), decode fps (sequential
playback with segment loading; and the steady per-frame cost within a loaded segment).
Per-frame baselines (.lgs with the scene codec's default quantization and no pruning;
SPZ and SOG with our writers in splat.io) are measured on every ``--baseline-every``-th
frame and their sizes extrapolated per frame (noted in the output).
Writes bench/results/video.json, video.csv and video.png.
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compress.scene import codec as lgs  # noqa: E402
from compress.video import VideoReader, VideoSettings, encode_video  # noqa: E402
from compress.video.register import recovered_share, register_frames  # noqa: E402
from compress.video.synth import performer_frames, resampled_performer_frames  # noqa: E402
from compress.video.synth_motion import motion_clip  # noqa: E402
from render.metrics import psnr  # noqa: E402
from render.rasterize import rasterize  # noqa: E402
from splat.camera import orbit_cameras  # noqa: E402
from splat.io import read_scene, write_scene  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DECODE_THREADS = 1  # decode timing on one thread (the other core is left to the renderer / viewer)
SHARED = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data"))
WAVE = SHARED / "video" / "wave"


def _render(scene, cams):
    return rasterize(scene, cams, backend="cpu").colors.clamp(0, 1)


def _psnr_frames(orig, decoded_fn, idxs, cams) -> tuple[float, float, list[float]]:
    """(mean, worst, per frame) PSNR over the frames ``idxs``."""
    vals = []
    for i in idxs:
        vals.append(float(psnr(_render(decoded_fn(i), cams), _render(orig[i], cams)).mean()))
    return sum(vals) / len(vals), min(vals), vals


def bench_gsv(name, frames, fps, gop, cams, psnr_idx, quality="medium", tracking=None, target_psnr=30.0, keep=None):
    """One .gsv row; ``keep``: a list the encoded bytes are appended to."""
    n_total = sum(len(f) for f in frames)
    c0 = time.process_time()
    res = encode_video(frames, VideoSettings(fps=fps, gop=gop, quality=quality, tracking=tracking,
                                             target_psnr=target_psnr))
    cpu = time.process_time() - c0
    r = VideoReader(res.data)
    threads = torch.get_num_threads()
    torch.set_num_threads(DECODE_THREADS)
    t0 = time.perf_counter()
    for i in range(len(frames)):
        r.frame(i)
    dec_fps = len(frames) / (time.perf_counter() - t0)
    # steady state: frames 1.. of a loaded segment
    r2 = VideoReader(res.data)
    r2.frame(0)
    m = min(gop, len(frames)) - 1
    t0 = time.perf_counter()
    for i in range(1, m + 1):
        r2.frame(i)
    steady = m / max(time.perf_counter() - t0, 1e-9) if m > 0 else float("nan")
    torch.set_num_threads(threads)
    r3 = VideoReader(res.data)
    p, p_min, p_all = _psnr_frames(frames, r3.frame, psnr_idx, cams)
    row = {
        "clip": name, "codec": f"gsv ({res.mode}, gop {gop}, {quality})", "mode": res.mode,
        "frames": len(frames), "gaussians": max(len(f) for f in frames),
        "bits_per_gaussian_frame": len(res.data) * 8 / n_total, "kb_per_frame": len(res.data) / 1024 / len(frames),
        "psnr_db": p, "psnr_min_db": p_min, "psnr_per_frame": p_all, "psnr_frames": list(psnr_idx),
        "segments": res.info.n_segments,
        "encode_s_per_frame": res.encode_s / len(frames), "encode_cpu_s_per_frame": cpu / len(frames),
        "decode_fps": dec_fps,
        "decode_fps_steady": steady, "bytes": len(res.data),
        "streams": {k: v for k, v in res.stream_bytes.items()},
        "segment_modes": res.segment_modes,
    }
    if keep is not None:
        keep.append(res.data)
    carried = res.stream_bytes.get("tracked_by_rendering", 0) - res.segment_modes.count("tracked")
    if carried > 0:  # predicted frames of tracked-by-rendering segments: what their colour refresh costs
        row["target_psnr"] = target_psnr
        row["colour_refresh_bits_per_gaussian_frame"] = res.stream_bytes.get("COLU", 0) * 8 / (carried * row["gaussians"])
        row["colour_refresh_share"] = res.stream_bytes.get("COLU", 0) / len(res.data)
    return row


def bench_per_frame(name, frames, cams, every, psnr_idx):
    rows = []
    idx = list(range(0, len(frames), every))
    n_avg = sum(len(frames[i]) for i in idx) / len(idx)
    with tempfile.TemporaryDirectory() as td:
        for fmt in ("lgs", "spz", "sog"):
            sizes, t_enc, t_dec, ps = [], 0.0, 0.0, []
            for i in idx:
                path = Path(td) / f"f{i}.{fmt}"
                t0 = time.perf_counter()
                if fmt == "lgs":
                    blob, _ = lgs.encode(frames[i])
                    path.write_bytes(blob)
                else:
                    write_scene(frames[i], path, format=fmt)
                t_enc += time.perf_counter() - t0
                sizes.append(path.stat().st_size)
                t0 = time.perf_counter()
                dec = read_scene(path)
                t_dec += time.perf_counter() - t0
                if i in psnr_idx or len(ps) < 2:
                    ps.append(float(psnr(_render(dec, cams), _render(frames[i], cams)).mean()))
            per = sum(sizes) / len(sizes)
            rows.append({
                "clip": name, "codec": f"per-frame {fmt}", "frames": len(frames), "gaussians": int(n_avg),
                "bits_per_gaussian_frame": per * 8 / n_avg, "kb_per_frame": per / 1024, "psnr_db": sum(ps) / len(ps), "psnr_min_db": min(ps),
                "encode_s_per_frame": t_enc / len(idx), "decode_fps": len(idx) / t_dec, "decode_fps_steady": None,
                "bytes": int(per * len(frames)), "sampled_frames": len(idx),
            })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gaussians", type=int, default=50000)
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--wave-frames", type=int, default=200)
    ap.add_argument("--gop", type=int, default=30)
    ap.add_argument("--psnr-every", type=int, default=15)
    ap.add_argument("--baseline-every", type=int, default=15)
    ap.add_argument("--clips", default="performer,wave,independent",
                    help="comma list: performer (plain and shuffled), wave, independent, timing, motion")
    ap.add_argument("--shuffled-frames", type=int, default=0, help="frames of the shuffled performer clip (0: --frames)")
    ap.add_argument("--independent-frames", type=int, default=10, help="frames of the re-sampled performer clip")
    ap.add_argument("--independent-gaussians", type=int, default=0, help="its Gaussians per frame (0: --gaussians)")
    ap.add_argument("--independent-target", type=float, default=35.0,
                    help="--target-psnr (held-out dB) of the re-sampled clip's encode")
    ap.add_argument("--timing-gaussians", type=int, default=50000, help="clip 'timing': Gaussians per frame")
    ap.add_argument("--timing-frames", type=int, default=8, help="clip 'timing': frames of the shuffled clip")
    ap.add_argument("--qualities", default="medium,high", help="presets for the plain performer")
    ap.add_argument("--motion-scene", default=str(SHARED / "scenes" / "guitar.compressed.ply"),
                    help="clip 'motion': the scene to twist and swing")
    ap.add_argument("--motion-gaussians", type=int, default=30000, help="clip 'motion': Gaussians of the speed sweep")
    ap.add_argument("--motion-frames", type=int, default=4, help="clip 'motion': frames per speed")
    ap.add_argument("--speeds", default="0.5,1,2,5,10,20", help="clip 'motion': peak neighbour spacings per frame")
    ap.add_argument("--kinds", default="twist,swing", help="clip 'motion': motions of the sweep")
    ap.add_argument("--cycle-gaussians", type=int, default=60000,
                    help="clip 'motion': Gaussians of the 12-frame twist cycle (0: skip it)")
    ap.add_argument("--quick", action="store_true", help="10k Gaussians, 30 frames, 60 wave frames")
    ap.add_argument("--out", default=str(RESULTS / "video"))
    a = ap.parse_args()
    if a.quick:
        a.gaussians, a.frames, a.wave_frames = 10000, 30, 60
    torch.set_num_threads(2)
    rows = []
    clips = set(a.clips.split(","))
    if "performer" in clips:
        rows += bench_performer(a)
    if "wave" in clips:
        rows += bench_wave(a)
    if "independent" in clips:
        rows += bench_independent(a)
    if "timing" in clips:
        rows += bench_timing(a)
    if "motion" in clips:
        rows += bench_motion(a)
    write_results(rows, a)


def bench_performer(a) -> list[dict]:
    rows = []
    t0 = time.perf_counter()
    frames, fps = performer_frames(a.gaussians, a.frames)
    print(f"performer: {len(frames)} frames x {len(frames[0]):,} Gaussians ({time.perf_counter() - t0:.1f} s)", flush=True)
    cams = orbit_cameras(frames[0], 4, width=256, height=256, up="+y", elevation_deg=10)
    pidx = list(range(0, len(frames), a.psnr_every))
    for q in a.qualities.split(","):
        rows.append(bench_gsv("performer", frames, fps, a.gop, cams, pidx, q))
        print(json.dumps(rows[-1]), flush=True)
    g = torch.Generator().manual_seed(0)
    shuffled = [f[torch.randperm(len(f), generator=g)] for f in frames[: a.shuffled_frames or len(frames)]]
    rows.append(bench_gsv("performer shuffled", shuffled, fps, a.gop, cams, list(range(0, len(shuffled), a.psnr_every))))
    print(json.dumps(rows[-1]), flush=True)
    rows += bench_per_frame("performer", frames, cams, a.baseline_every, pidx)
    for r in rows[-3:]:
        print(json.dumps(r), flush=True)
    return rows


def bench_wave(a) -> list[dict]:
    rows = []
    wave_files = sorted(glob.glob(str(WAVE / "*.sog")))[: a.wave_frames]
    if wave_files:
        wave = [read_scene(p) for p in wave_files]
        wcams = orbit_cameras(wave[0], 4, width=256, height=256, up="+y", elevation_deg=35)
        widx = list(range(0, len(wave), a.psnr_every))
        rows.append(bench_gsv("wave", wave, 30.0, a.gop, wcams, widx))
        print(json.dumps(rows[-1]), flush=True)
        rows += bench_per_frame("wave", wave, wcams, a.baseline_every, widx)
        for r in rows[-3:]:
            print(json.dumps(r), flush=True)
    else:
        print(f"wave sequence not found under {WAVE}: skipped")
    return rows


def bench_independent(a) -> list[dict]:
    """The performer re-sampled every frame (no shared Gaussians): tracking by rendering."""
    n = a.independent_gaussians or a.gaussians
    t0 = time.perf_counter()
    frames, fps = resampled_performer_frames(n, a.independent_frames)
    print(f"independent: {len(frames)} frames x {n:,} Gaussians ({time.perf_counter() - t0:.1f} s)", flush=True)
    cams = orbit_cameras(frames[0], 4, width=256, height=256, up="+y", elevation_deg=10)
    pidx = list(range(len(frames)))  # every frame: the target holds per frame
    kept: list = []
    rows = [bench_gsv("independent", frames, fps, a.gop, cams, pidx, target_psnr=a.independent_target, keep=kept)]
    rows += bench_per_frame("independent", frames, cams, max(1, a.baseline_every // 5), pidx[:1])
    sog = next(r for r in rows if r["codec"] == "per-frame sog")
    rows[0]["ratio_to_sog"] = rows[0]["bytes"] / sog["bytes"]
    rows[0]["frames_below_target"] = sum(p < a.independent_target for p in rows[0]["psnr_per_frame"])
    from compress.video.fidelity import clip_fidelity

    held = clip_fidelity(frames, VideoReader(kept[0]).frame, pidx)  # the encoder's held-out views
    rows[0]["psnr_held_per_frame"] = [x.psnr for x in held]
    rows[0]["psnr_min_held_db"] = min(x.psnr for x in held)
    rows[0]["frames_below_target_held"] = sum(x.psnr < a.independent_target for x in held)
    for r in rows:
        print(json.dumps(r), flush=True)
    return rows


def bench_timing(a) -> list[dict]:
    """Encode time per frame at --timing-gaussians: correspondence (shuffled performer) and
    tracking by rendering (re-sampled performer, --timing-frames frames), decode fps on one thread."""
    n, nf = a.timing_gaussians, a.timing_frames
    frames, fps = performer_frames(n, nf)
    g = torch.Generator().manual_seed(0)
    shuffled = [f[torch.randperm(len(f), generator=g)] for f in frames]
    cams = orbit_cameras(frames[0], 4, width=256, height=256, up="+y", elevation_deg=10)
    rows = [bench_gsv(f"timing {n // 1000}k shuffled", shuffled, fps, nf, cams, [0, nf - 1])]
    print(json.dumps(rows[-1]), flush=True)
    ind, fps = resampled_performer_frames(n, 3)
    rows.append(bench_gsv(f"timing {n // 1000}k independent", ind, fps, 3, cams, [1, 2], target_psnr=a.independent_target))
    print(json.dumps(rows[-1]), flush=True)
    return rows


def _subsample(scene, n: int, seed: int = 0):
    if n >= len(scene):
        return scene
    g = torch.Generator().manual_seed(seed)
    return scene[torch.sort(torch.randperm(len(scene), generator=g)[:n]).values]


def _motion_row(name: str, clip, cams, a, extra: dict) -> list[dict]:
    """Matches recovered (registration of each frame pair), then the clip in auto mode and
    per-frame baselines on the same frames."""
    t0 = time.perf_counter()
    shares = [recovered_share(register_frames(clip.frames[f - 1], clip.frames[f]).match, clip.truth[f - 1], clip.truth[f])
              for f in range(1, len(clip.frames))]
    t_reg = (time.perf_counter() - t0) / max(len(shares), 1)
    pidx = list(range(len(clip.frames)))
    row = bench_gsv(name, clip.frames, 30.0, len(clip.frames), cams, pidx)
    row.update(extra, matches_recovered=min(shares), matches_recovered_mean=sum(shares) / len(shares),
               register_s_per_pair=t_reg, peak_speed_spacings=max(clip.speeds))
    rows = [row]
    print(json.dumps(row), flush=True)
    rows += bench_per_frame(name, clip.frames, cams, max(1, len(clip.frames) - 1), [1])
    for r in rows[1:]:
        print(json.dumps(r), flush=True)
    return rows


def bench_motion(a) -> list[dict]:
    """Twist and swing of a shared scene at increasing speed, re-sorted every frame."""
    path = Path(a.motion_scene)
    if not path.is_file():
        print(f"motion scene not found: {path}: skipped")
        return []
    base = read_scene(path).to(dtype=torch.float32)
    scene = _subsample(base, a.motion_gaussians)
    cams = orbit_cameras(scene, 4, width=256, height=256, up="+y", elevation_deg=10)
    rows = []
    for kind in a.kinds.split(","):
        for sp in [float(v) for v in a.speeds.split(",")]:
            clip = motion_clip(scene, kind, speed=sp, frames=a.motion_frames, cycle=12)
            rows += _motion_row(f"{kind} {sp:g} sp/frame", clip, cams, a,
                                {"motion": kind, "speed_spacings": sp, "scene": path.name})
    if a.cycle_gaussians:
        scene = _subsample(base, a.cycle_gaussians)
        cams = orbit_cameras(scene, 4, width=256, height=256, up="+y", elevation_deg=10)
        amp = (1.0 / 3.0) * 12 / (2 * 3.141592653589793)  # a third of a radian per frame at the far end
        clip = motion_clip(scene, "twist", frames=12, cycle=12, amplitude=amp)
        rows += _motion_row(f"twist cycle 12 frames {len(scene) // 1000}k", clip, cams, a,
                            {"motion": "twist cycle", "amplitude_rad": amp, "scene": path.name})
    return rows


def write_results(rows: list[dict], a) -> None:
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"gaussians": a.gaussians, "frames": a.frames, "gop": a.gop, "psnr_every": a.psnr_every,
            "wave_frames": a.wave_frames, "independent_frames": a.independent_frames,
            "independent_gaussians": a.independent_gaussians or a.gaussians, "independent_target": a.independent_target,
            "load_avg_at_end": os.getloadavg(),
            "baseline_every": a.baseline_every, "cameras": "4 orbit views 256x256", "threads": 2,
            "decode_threads": DECODE_THREADS, "note": "per-frame baselines measured on every baseline_every-th frame",
            "motion": {"scene": a.motion_scene, "gaussians": a.motion_gaussians, "frames": a.motion_frames,
                       "speeds": a.speeds, "kinds": a.kinds, "cycle_gaussians": a.cycle_gaussians}}
    out.with_suffix(".json").write_text(json.dumps({"settings": meta, "rows": rows}, indent=1))
    keys = ["clip", "codec", "frames", "gaussians", "bits_per_gaussian_frame", "kb_per_frame", "psnr_db", "psnr_min_db",
            "encode_s_per_frame", "decode_fps", "decode_fps_steady", "bytes"]
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        for r in rows:
            w.writerow([r.get(k) if not isinstance(r.get(k), float) else round(r[k], 4) for k in keys])
    _table(rows)
    _plot(rows, out.with_suffix(".png"))


def _table(rows) -> None:
    from rich.console import Console

    from splat.progress import summary_table

    Console().print(summary_table("video benchmark", ["clip / codec", "bits/G/frame", "KB/frame", "PSNR dB",
                                                       "worst dB", "matches", "enc s/frame", "dec fps", "steady fps"],
                                  [(f"{r['clip']} / {r['codec']}", r["bits_per_gaussian_frame"], r["kb_per_frame"],
                                    r["psnr_db"], r["psnr_min_db"],
                                    "-" if r.get("matches_recovered") is None else r["matches_recovered"],
                                    r["encode_s_per_frame"], r["decode_fps"],
                                    "-" if r["decode_fps_steady"] is None else r["decode_fps_steady"]) for r in rows]))


def _plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clips = sorted({r["clip"] for r in rows})
    if not clips:
        return
    fig, axes = plt.subplots(1, len(clips), figsize=(5 * len(clips), 4), squeeze=False)
    for ax, c in zip(axes[0], clips):
        for r in [r for r in rows if r["clip"] == c]:
            ax.scatter(r["bits_per_gaussian_frame"], r["psnr_db"], s=40)
            ax.annotate(r["codec"], (r["bits_per_gaussian_frame"], r["psnr_db"]), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("bits / Gaussian / frame")
        ax.set_ylabel("PSNR vs original renders (dB)")
        ax.set_title(c)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
