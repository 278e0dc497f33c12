"""The result pages and the README's headline table, generated from ``bench/results/*.json``.

One script renders every measured figure the documentation quotes, so a number in the docs or
in the README cannot drift from the benchmark file that holds it. Every table states the
machine, the load and the command that produced it.

    python docs/gen_results.py --out DIR   # write the result pages (the docs hook does this at build time)
    python docs/gen_results.py --readme    # rewrite the README's headline block in place
    python docs/gen_results.py --check     # exit 1 when the README's block differs from the generator's

The README block sits between ``<!-- results:begin -->`` and ``<!-- results:end -->``.
``tests/test_docs.py`` fails when it is out of date. A file under bench/results/ that no page
uses is listed on the results index page under "Not on a results page".
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
MACHINE = "the project's shared development machine: 2 x86-64 CPU cores, no GPU"

# Results files kept in bench/results/ but measured with earlier code (a later file supersedes
# them); they are not rendered, and the results index says so.
SUPERSEDED = {
    "image_rd_summary.json": "`.gsi` version 1 streams, before the rate term (image_rd_v5_summary.json)",
    "image_rd_subset_summary.json": "before the rate term (image_rd_v5_summary.json)",
    "image_rd_v2_summary.json": "before the rate term (image_rd_v5_summary.json)",
    "image_rd_v3_summary.json": "six images, before the current learning rates, schedule and rate control (image_rd_v5_summary.json)",
    "image_rd_v4_summary.json": "the fitter before the RMSE loss, the rate-chosen weight, the 1/8-px grid and the best schedule (image_rd_v5_summary.json)",
    "image_bits.json": "`.gsi` files fitted before the rate term (image_bits_rate.json)",
    "image_budget_kodim07_summary.json": "a repeat of one row of image_budget_summary.json",
    "scene_default_quick.json": "one prune round under load (scene_default.json)",
    "scale_2m_sh_blocks.json": "the 2M row before the SH blocks were streamed (scale.json)",
    "memory_x1.json": "supervision on the feature map's own grid, not the default (memory.json)",
    "video_timing.json": "the encoder before its current training-view defaults (video_independent.json)",
    "scene_streams_classes.json": "one scene of scene_streams.json with precision classes",
}


def load(name: str) -> Any:
    return json.loads((RESULTS / name).read_text())


def one_min(x: Any) -> list[float]:
    """The 1-minute load averages in a recorded value (a number, a [1, 5, 15] triple, or lists of them)."""
    if x is None:
        return []
    if isinstance(x, (int, float)):
        return [float(x)]
    if isinstance(x, list) and len(x) == 3 and all(isinstance(v, (int, float)) for v in x):
        return [float(x[0])]
    if isinstance(x, list):
        return [v for item in x for v in one_min(item)]
    return []


def load_text(*values: Any) -> str:
    """'1.0' or '1.0-1.6': the range of the recorded 1-minute load averages."""
    vals = [v for x in values for v in one_min(x)]
    if not vals:
        return "not recorded"
    lo, hi = min(vals), max(vals)
    return f"{lo:.1f}" if round(lo, 1) == round(hi, 1) else f"{lo:.1f}-{hi:.1f}"


def num(x: float | None, digits: int = 2, unit: str = "") -> str:
    if x is None:
        return "-"
    s = f"{x:,.{digits}f}"
    return f"{s} {unit}" if unit else s


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def scene_name(path: str) -> str:
    return "playbot level 0" if path.endswith("meta.json") else path


@dataclass
class Table:
    """One measured table: what, where it comes from, and its rows."""

    title: str
    source: list[str]
    command: str
    load: str
    header: list[str]
    rows: list[list[str]]
    notes: str = ""
    machine: str = MACHINE

    def markdown(self, link: Callable[[str], str]) -> str:
        src = ", ".join(f"[`{s}`]({link(s)})" for s in self.source)
        lines = [f"### {self.title}", "",
                 f"- **Machine:** {self.machine}", f"- **Load average (1 min):** {self.load}",
                 f"- **Command:** `{self.command}`", f"- **Results file:** {src}", ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("|" + "---|" * len(self.header))
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            lines += ["", self.notes]
        return "\n".join(lines) + "\n"


@dataclass
class Page:
    name: str
    title: str
    intro: str
    tables: list[Table] = field(default_factory=list)

    def sources(self) -> set[str]:
        return {s for t in self.tables for s in t.source}

    def markdown(self) -> str:
        link = lambda s: f"files/{s}"  # noqa: E731  (copies of bench/results/ beside the pages)
        head = (f"# Results: {self.title}\n\n{self.intro}\n\n"
                "This page is generated by `docs/gen_results.py` from `bench/results/`; edit the "
                "benchmark, not the page.\n\n")
        return head + "\n".join(t.markdown(link) for t in self.tables)


# ---------------------------------------------------------------- rendering
def render_tables() -> list[Table]:
    d = load("render.json")
    m = d["meta"]
    rows = [[s["scene"], f"{s['gaussians']:,}", s["size"], f"**{num(s['forward_s'], 3)} s**",
             f"**{num(s['forward_backward_s'], 3)} s**", f"{num(s['forward_cpu1_s'], 3)} s",
             f"{num(s['forward_backward_cpu1_s'], 3)} s",
             f"{s['forward_peak_mb']:.0f} / {s['forward_backward_peak_mb']:.0f} MB"] for s in d["scenes"]]
    r = d["small_scene_ratios"]
    t1 = Table("CPU backend speed", ["render.json"], "python bench/render.py", load_text(m["load_average"]),
               ["scene", "Gaussians", "size", "forward, 2 threads (wall)", "fwd+bwd, 2 threads (wall)",
                "forward, 1 thread (CPU)", "fwd+bwd, 1 thread (CPU)", "peak memory fwd / fwd+bwd"], rows,
               f"Median of {m['runs']} runs, one orbit view, projection and SH included; torch {m['torch']}, "
               f"numba {m['numba']}, measured {m['date']}.")
    t2 = Table("Against dense PyTorch", ["render.json"], "python bench/render.py", load_text(m["load_average"]),
               ["scene", "vs float64 reference, forward", "vs float64 reference, fwd+bwd",
                "vs dense float32, forward", "vs dense float32, fwd+bwd"],
               [[r["scene"], f"{r['speedup_vs_float64_reference_fwd']:,.0f}x",
                 f"{r['speedup_vs_float64_reference_fwdbwd']:,.0f}x", f"{r['speedup_vs_dense_float32_fwd']:,.0f}x",
                 f"{r['speedup_vs_dense_float32_fwdbwd']:,.0f}x"]],
               "How many times faster the CPU backend is than the same rendering written as dense tensor code. "
               "At this size the CPU backend's 2-3 ms are mostly fixed cost, so the ratios grow with the scene.")
    d = load("kernel_tech.json")
    rows = [[r["kernel"], f"{r['cpu_1thread_s']:.3f} s", f"{r['wall_2threads_s']:.3f} s",
             f"{r['build_s']:.1f} s" if r["build_s"] else "-"] for r in d["rows"]]
    diffs = "; ".join(f"{k[len('max_abs_diff_'):]}: {v:.1e}" for k, v in d.items() if k.startswith("max_abs_diff_"))
    t3 = Table("The blend kernel: numba against a C++/OpenMP twin", ["kernel_tech.json"], "python bench/kernel_tech.py",
               "not recorded", ["kernel", "CPU, 1 thread", "wall, 2 threads", "build"], rows,
               f"{d['pairs']:,} tile-Gaussian pairs, {d['tile_size']}-px tiles, {d['gaussians_visible']:,} visible Gaussians. "
               f"Largest difference from the numba image: {diffs}.")
    return [t1, t2, t3]


# ---------------------------------------------------------------- scene compression
def scene_tables() -> list[Table]:
    rows_in = load("scene_default.json") + load("scene_default_playbot.json")
    rows = [[scene_name(r["scene"]), f"{r['gaussians']:,}", str(r["sh_degree"]), f"**{r['ratio']:.1f}x**",
             f"{r['psnr']:.2f} dB", f"{r['prune']:.2f}", f"{r['encode_s']:.0f} s", ms(r["decode_s"])] for r in rows_in]
    default = Table("The default path (`splat compress in -o out.lgs`)",
                    ["scene_default.json", "scene_default_playbot.json"],
                    "python bench/scene_default.py (playbot: --scenes playbot/0_0/meta.json --out bench/results/scene_default_playbot)",
                    load_text([r["load_before"] for r in rows_in]),
                    ["scene", "Gaussians", "SH", "x raw PLY", "fidelity", "prune chosen", "encode", "decode"], rows,
                    "Ratio against the float32 INRIA PLY; fidelity is the PSNR of the decoded scene's renders "
                    "against the original's on 8 held-out views.")

    d = load("scene_vs_sog.json")
    sogs = {r["scene"]: r for r in d["rows"] if r["format"] == "sog"}
    rows = []
    for t in d["rows"]:
        if t["format"] == "sog" or "target" not in t["setting"]:
            continue
        s = sogs[t["scene"]]
        b = t.get("bits", {})
        bits = " / ".join(str(b.get(k, "-")) for k in ("position_bits", "scale_bits", "rotation_bits",
                                                          "opacity_bits", "dc_bits"))
        pred = f"{t['predicted_psnr']:.2f} dB" if t.get("predicted_psnr") is not None else "-"
        cpu = f" ({t['encode_cpu_s']:.0f} CPU s)" if "encode_cpu_s" in t else ""
        rows.append([t["scene"], f"`{' '.join(t['setting'].split()[2:]) or 'default'}`", f"{s['gaussians']:,}", f"{s['bytes']:,}",
                     f"{s['psnr']:.2f} dB", f"{t['bytes']:,}", pred, f"{t['psnr']:.2f} dB", f"{t.get('prune', 0.0):.3f}",
                     f"**{s['bytes'] / t['bytes']:.2f}x**", bits, f"{t['encode_s']:.0f} s{cpu}", f"{t['decode_s']:.2f} s"])
    vs_sog = Table("At SOG's fidelity (`--target-psnr P`, P = SOG's PSNR)", ["scene_vs_sog.json"],
                   "python bench/scene_vs_sog.py", load_text(d["load_average_start"], d["load_average_end"]),
                   ["scene", "setting", "Gaussians", "SOG bytes", "SOG fidelity", "`.lgs` bytes", "predicted",
                    "`.lgs` fidelity", "pruned", "SOG / `.lgs`", "bits: pos / scale / rot / opacity / colour",
                    "encode", "decode"], rows,
                   "SOG written by PlayCanvas splat-transform (`-g cpu`) in the same run. `default`: the command as a "
                   "user runs it, which prunes the least significant Gaussians where that costs fewer bytes than finer "
                   "steps, then sets the step sizes; `--prune 0` sets step sizes only. Predicted: the error model's "
                   "first prediction, before one verifying encode.")

    d = load("scene_decode.json")
    names = {"sd2_playbot_all.lgs": "playbot, every Gaussian kept", "playbot_p66.lgs": "playbot pruned 66%",
             "pb_t385b.lgs": "playbot, `--target-psnr 38.5`"}
    rows = [[names.get(f["file"], f["file"]), f"{f['default_threads']['gaussians']:,}", f"{f['default_threads']['bytes']:,}",
             f"**{ms(f['default_threads']['min_s'])}**", ms(f["one_thread"]["min_s"]), ms(f["default_threads"]["cold_s"])]
            for f in d["files"]]
    decode = Table("Decode speed", ["scene_decode.json"], "python bench/scene_decode.py FILES",
                   load_text(d["load_before"], d["load_after"]),
                   ["file", "Gaussians", "bytes", "2 threads", "1 thread", "cold (first call)"], rows,
                   f"Minimum of {d['repeat']} warm decodes. The files are playbot level 0 with every Gaussian kept, "
                   "pruned 66% (the size of the default output), and with `--target-psnr 38.5`; "
                   "the benchmark's docstring has the commands that make them.")

    d = load("scene_target_playbot.json")
    target = Table("playbot at a 38.5 dB target", ["scene_target_playbot.json"],
                   "splat compress ../shared/data/scenes/playbot/0_0/meta.json -o out.lgs --target-psnr 38.5",
                   load_text(d["load_before"], d["load_after"]),
                   ["Gaussians", "bytes", "x raw PLY", "fidelity", "prune", "encode", "decode"],
                   [["500,000", f"{d['bytes']:,}", f"**{d['ratio']:.1f}x**", f"{d['psnr']:.2f} dB", f"{d['prune']:.2f}",
                     f"{d['encode_s']:.0f} s", ms(d["decode_s"])]],
                   "Encode time under that load: " + ", ".join(f"{k} {v:.0f} s" for k, v in d["timings"].items()) + ".")

    d = load("scene_target.json")
    by_scene: dict[str, list[dict]] = {}
    for r in d["rows"]:
        by_scene.setdefault(r["scene"], []).append(r)
    rows = [[f"{name} ({rs[0]['gaussians']:,})", " / ".join(r["label"] for r in rs),
             " / ".join(f"{r['target']:.2f}" for r in rs), " / ".join(f"{r['measured']:.2f}" for r in rs),
             " / ".join("yes" if r["landed"] else "**no**" for r in rs), " / ".join(f"{r['bytes']:,}" for r in rs),
             " / ".join(f"{r['seconds']:.0f}" for r in rs)] for name, rs in by_scene.items()]
    targets = Table("Landing on a target (`--target-psnr P`), subsampled scenes", ["scene_target.json"],
                    d["command"].replace(" --out /tmp/tp/scene_target.json", ""),
                    load_text(d["load_average_start"], d["load_average_end"]),
                    ["scene (Gaussians)", "target", "P (dB)", "measured (dB)", "in [P, P + 0.3]", "bytes", "encode s"],
                    rows, "A seeded random subsample of each shared scene, rendered at 128 px. `SOG`: SOG's own "
                    "fidelity on that subsample, written by splat-transform in the same run.")

    d = load("scene_rd.json")
    rows = [[f"{r['scene']} ({r['gaussians']:,}, {r['sh_degree']})", f"{r['format']} {r['setting']}",
             f"{r['bytes_per_gaussian']:.2f}", f"{r['ratio_vs_ply']:.1f}", f"{r['ratio_vs_spz']:.1f}",
             f"{r['ratio_vs_sog']:.1f}", f"{r['psnr']:.2f}", f"{r['encode_s']:.1f}", f"{r['decode_s']:.3f}"]
            for r in d["rows"] if r["format"] != "ply"]
    rd = Table("Formats and settings side by side", ["scene_rd.json"], "python bench/scene_rd.py --quick",
               load_text(d["load_average_end"]),
               ["scene (Gaussians, SH)", "format / setting", "B/G", "x raw PLY", "x SPZ", "x SOG", "fidelity dB",
                "encode s", "decode s"], rows,
               "B/G = bytes per input Gaussian; fidelity on the same 8 held-out 480x360 views for every format; "
               "SOG and compressed PLY by splat-transform 3.7.0. `no-prune L0/L1`: no pruning at 5 / 8 bits. "
               "This run predates the default path's prune/fine-tune loop (see the first table for the default).")

    d = load("scene_precision.json")
    rows = [[f"{r['low_fraction']:.0%}", str(r["low_drop"]), f"{r['bytes'] / 1000:.1f} kB", f"{r['psnr']:.2f} dB"]
            for r in d["rows"]]
    prec = Table(f"Precision classes ({d['scene']}, pruned {d['prune']:.0%})", ["scene_precision.json"],
                 "python bench/scene_precision.py", load_text(d["load_average"]),
                 ["coarser fraction", "bits dropped", "file", "fidelity"], rows,
                 "The least significant fraction of the Gaussians stores scales, rotations and colour this many bits "
                 "coarser (8 held-out 240x180 views).")

    d = load("scene_streams.json")
    rows = [[f"{r['scene']} ({r['gaussians']:,})", r["coding"], f"{r['total_bytes'] / 1000:.1f}",
             f"{r['encode_s']:.1f}", f"{r['decode_s']:.3f}"] for r in d["rows"]]
    streams = Table("Order-0 against context-modelled streams (no pruning, 8 bits)", ["scene_streams.json"],
                    "python bench/scene_rd.py --streams", load_text(d["load_average_end"]),
                    ["scene", "coding", "total kB", "encode s", "decode s"], rows, d.get("note", ""))
    d = load("scene_candidates.json")
    rows = []
    for r in d["rows"]:
        for bits, v in r["positions"].items():
            base = v["morton deltas"]
            rows.append([f"{r['scene']} ({r['gaussians']:,})", bits] +
                        [f"{v[k]:,}" + ("" if k == "morton deltas" else f" ({(v[k] / base - 1) * 100:+.1f}%)")
                         for k in ("morton deltas", "octree, no context", "octree, neighbour count",
                                   "octree, neighbour pattern")])
    cand = Table("Position coding candidates", ["scene_candidates.json"], "python bench/scene_candidates.py",
                 load_text(d["load_average_start"], d["load_average_end"]),
                 ["scene", "grid bits", "Morton deltas (kept)", "octree, no context", "octree, neighbour count",
                  "octree, neighbour pattern"], rows, "Bytes of the position stream.")
    return [default, vs_sog, targets, decode, target, rd, prec, streams, cand]


# ---------------------------------------------------------------- image fitting
def image_tables() -> list[Table]:
    d = load("image_rd_v5_summary.json")
    with open(RESULTS / "image_rd_v5.csv") as f:
        loads = [float(r["load"]) for r in csv.DictReader(f) if r.get("load")]
    rows = []
    for bpp, v in d.items():
        g, j, w, diff = v["gsi"], v["jpeg"], v["webp"], v["gsi_minus_jpeg"]
        rows.append([f"{float(bpp):g} bpp", str(g["images"]), f"{g['psnr']:.2f} dB @ {g['bpp']:.3f}",
                     f"{j['psnr']:.2f} dB @ {j['bpp']:.3f}", f"{w['psnr']:.2f} dB @ {w['bpp']:.3f}",
                     f"**{diff['mean_db']:+.2f}** / {diff['min_db']:+.2f} dB ({diff['worst_image']})"])
    rd = Table("Kodak: rate and distortion against JPEG and WebP (`--schedule best`)", ["image_rd_v5_summary.json"],
               "python bench/image_rd.py --schedule best --codecs gsi jpeg webp --out bench/results/image_rd_v5.csv",
               f"{min(loads):.1f}-{max(loads):.1f}" if loads else "not recorded",
               ["target", "images", "ours (.gsi)", "JPEG", "WebP", "ours - JPEG (mean / worst)"], rows,
               "JPEG and WebP (Pillow) at the largest quality whose real bpp is not above ours. Fit times from "
               "this loaded run are not the machine's speed; see the next table.")
    d = load("image_speed.json")
    rows = [[r["image"], r["schedule"], f"{r['bpp']:.3f}", f"{r['psnr']:.2f} dB", f"{r['gaussians']:,}",
             f"**{r['fit_wall_s']:.1f} s**", f"{r['fit_cpu_s']:.1f} s", f"{r['fit_peak_rss_mb']:.0f} MB",
             load_text(r["load_before"], r["load_after"])] for r in d["rows"]]
    gains = ", ".join(f"{x['image']} {x['psnr_gain_db']:+.2f} dB at {x['bpp_ratio']:.3f}x the bpp, "
                      f"{x['wall_speedup']:.2f}x faster (CPU {x['cpu_speedup']:.2f}x)" for x in d["summary"])
    dr = d["decode_render_default_threads"]["min_ms"], d["decode_render_one_thread"]["min_ms"]
    speed = Table("Fit time of the step schedules, and decode time", ["image_speed.json"], d["command"],
                  load_text([r["load_before"] for r in d["rows"]], [r["load_after"] for r in d["rows"]]),
                  ["image", "schedule", "bpp", "PSNR", "Gaussians", "fit (wall)", "fit (CPU)", "peak RSS", "load"],
                  rows, f"768x512 Kodak images, `splat fit-image` end to end, schedules interleaved. "
                        f"{d['summary'][0]['schedule']} against {d['summary'][0]['versus']}: {gains}. Decode + render "
                        f"of the first file ({d['rows'][0]['image']}, {d['rows'][0]['schedule']}): **{dr[0]:.1f} ms** (default threads), {dr[1]:.1f} ms (1 thread), minimum "
                        "over warm runs in one process." + (f" {d['note'][0].upper()}{d['note'][1:]}." if "note" in d else ""))
    d = load("image_budget_summary.json")
    rows = [[k.split("@")[1] + " bpp", "without the final stage" if k.startswith("main") else "always refine (current)",
             f"{v['psnr']:.3f} dB", f"{v['bpp']:.3f}", f"{v['gaussians']:,.0f}", f"{v['fit_s']:.0f} s"]
            for k, v in sorted(d.items(), key=lambda kv: kv[0].split("@")[::-1]) if "@" in k]
    budget = Table("Rate control: the final refinement stage (kodim01, 03, 07; means)", ["image_budget_summary.json"],
                   "python bench/image_budget.py", load_text(d["load_range"]),
                   ["target", "rate control", "PSNR", "bpp", "Gaussians", "fit"], rows)
    d = load("image_bits_rate.json")[0]
    s = d["streams"]
    bits = Table("Where the bits go", ["image_bits_rate.json"], "python bench/image_bits.py X.gsi",
                 "not recorded",
                 ["file", "Gaussians", "bpp", "header", "position", "shape (size + anisotropy)",
                  "colour (Y + Co + Cg)", "total bits per Gaussian"],
                 [[d["file"], f"{d['gaussians']:,}", f"{d['bpp']:.3f}", f"{d['header']:.2f}", f"{d['position']:.2f}",
                   f"{d['shape']:.2f} ({s['sa']:.2f} + {s['su']:.2f} + {s['sv']:.2f})",
                   f"{d['colour']:.2f} ({s['c0']:.2f} + {s['c1']:.2f} + {s['c2']:.2f})", f"{d['total']:.2f}"]],
                 "From `splat fit-image kodim03.png -o X.gsi --bpp 0.5`.")
    d = load("image_ctx.json")
    ctx_rows = []
    for r in d["rows"]:
        pos, att = r["positions"], r["attributes"]
        tree_best = min(v for k, v in pos.items() if k.startswith("tree|"))
        written = sum(a["written"] for a in att.values())
        best = sum(min(v for k, v in a.items() if k != "written") for a in att.values())
        ctx_rows.append([r["file"], f"{r['gaussians']:,}", f"{r['bits_per_gaussian']:.2f}",
                         f"{pos['written']:.2f} ({r['positions_written']})", f"{tree_best:.2f}", f"{pos['bound']:.2f}",
                         f"{written:.2f}", f"{best:.2f}", f"{r['best_saving_percent_of_file']:.2f}%"])
    ctx = Table("What better contexts would save (bits per Gaussian)", ["image_ctx.json"], d["meta"]["command"],
                load_text(d["meta"]["load_average"]),
                ["file", "Gaussians", "file total", "positions as written", "best quadtree context",
                 "uniform layout bound", "shape + colour as written", "best candidate contexts",
                 "best saving (share of the file)"], ctx_rows,
                "Files from `python bench/image_rd.py --images kodim03 kodim07 kodim01 kodim12 --bpp 0.5 1.0 --keep DIR`. "
                "Candidates priced by running the context coder's adaptive model on the decoded streams: quadtree "
                "masks given the level, the occupied neighbour nodes or the earlier layers' cells; attributes given "
                "the layer, the nearest earlier Gaussian's value (as context and as the predictor) or the local "
                "density. Positions lie within 1-3% of the cost of a uniformly random layout of the same count, and "
                "shape and colour carry little information about their neighbours', so none of these is worth a "
                "format change.")
    d = load("image_pos_step.json")
    grid = Table("Position grid at equal size (rate control to the target)", ["image_pos_step.json"], d["meta"]["command"],
                 load_text([r["load"] for r in d["rows"]]),
                 ["target bpp", "image", "grid (px)", "bpp", "PSNR", "Gaussians", "bits per Gaussian"],
                 [[f"{r['target']:g}", r["image"], f"1/{round(1 / r['pos_step'])}", f"{r['bpp']:.3f}",
                   f"{r['psnr']:.2f} dB", f"{r['gaussians']:,}", f"{r['bits_per_gaussian']:.2f}"] for r in d["rows"]],
                 "Each halving of the grid adds about 2.3 bits per Gaussian (one more quadtree level, close to uniform), "
                 "so the same file holds fewer Gaussians. 1/8 px is the default.")
    tables = [rd, speed, budget, bits, ctx, grid]
    d = load("image_large.json")
    if "render" in d:
        r = d["render"]
        tables.append(Table("Rendering a .gsi to large outputs (band by band)", ["image_large.json"], r["command"],
                            load_text([x["load_before"] for x in r["rows"]], [x["load_after"] for x in r["rows"]]),
                            ["source", "Gaussians", "output", "render-image (wall)", "CPU", "peak RSS"],
                            [[x["source"], f"{x['gaussians']:,}", x["output"], f"{x['wall_s']:.1f} s", f"{x['cpu_s']:.1f} s",
                              f"**{x['peak_rss_mb']:.0f} MB**"] for x in r["rows"]],
                            "`splat render-image X.gsi -o out.png --width W` in a subprocess, PNG written; " + r["note"] + "."))
    return tables


# ---------------------------------------------------------------- video
def video_rows(d: dict, psnr_min: bool = False) -> list[list[str]]:
    rows = []
    for r in d["rows"]:
        psnr = f"{r['psnr_db']:.1f}" if r["psnr_db"] < 99 else "lossless"
        if psnr_min and r.get("psnr_min_db") is not None:
            psnr += f" / {r['psnr_min_db']:.1f}"
        bold = "**" if r["codec"].startswith("gsv") else ""
        rows.append([f"{r['clip']} ({r['gaussians']:,}, {r['frames']} frames)", r["codec"],
                     f"{bold}{r['bits_per_gaussian_frame']:.2f}{bold}", f"{r['kb_per_frame']:.1f}", psnr,
                     f"{r['encode_s_per_frame']:.2f}", f"{r['decode_fps']:.1f}"])
    return rows


def video_tables() -> list[Table]:
    d = load("video.json")
    st = d["settings"]
    head = ["clip", "codec", "bits/Gaussian/frame", "KB/frame", "PSNR dB", "encode s/frame", "decode fps"]
    main = Table("`.gsv` against per-frame codecs", ["video.json"],
                 f"python bench/video.py --gaussians {st['gaussians']} --frames {st['frames']} --wave-frames "
                 f"{st['wave_frames']} --qualities medium --independent-frames {st['independent_frames']} "
                 f"--psnr-every {st['psnr_every']} --baseline-every {st['baseline_every']}",
                 load_text(st["load_avg_at_end"]) + " (at the end)", head, video_rows(d),
                 f"PSNR of renders of decoded against original frames ({st['cameras']}); decode on "
                 f"{st['decode_threads']} thread; the load makes the times pessimistic.")
    d = load("video_independent.json")
    st = d["settings"]
    irows = []
    for r in d["rows"]:
        gsv = r["codec"].startswith("gsv")
        psnr = f"{r['psnr_db']:.1f} / {r['psnr_min_db']:.1f}"
        held = f"{r['psnr_min_held_db']:.1f}" if r.get("psnr_min_held_db") is not None else "-"
        ratio = f"**{r['ratio_to_sog']:.2f}**" if r.get("ratio_to_sog") is not None else "-"
        refresh = (f"{r['colour_refresh_bits_per_gaussian_frame']:.1f} ({100 * r['colour_refresh_share']:.0f}%)"
                   if r.get("colour_refresh_bits_per_gaussian_frame") is not None else "-")
        enc = f"{r['encode_s_per_frame']:.1f}" + (f" / {r['encode_cpu_s_per_frame']:.1f}"
                                                  if r.get("encode_cpu_s_per_frame") is not None else "")
        irows.append([f"{r['clip']} ({r['gaussians']:,}, {r['frames']} frames)", r["codec"],
                      f"{'**' if gsv else ''}{r['bits_per_gaussian_frame']:.2f}{'**' if gsv else ''}", psnr, held, ratio,
                      refresh, enc])
    target = next((r["target_psnr"] for r in d["rows"] if r.get("target_psnr") is not None), 35.0)
    indep = Table("Independently made frames (flipbook), carried forward between keyframes", ["video_independent.json"],
                  f"python bench/video.py --clips independent --independent-gaussians {st['independent_gaussians']} "
                  f"--independent-frames {st['independent_frames']} --independent-target {target:g} "
                  f"--baseline-every {st['baseline_every']} --out bench/results/video_independent",
                  load_text(st["load_avg_at_end"]) + " (at the end)",
                  ["clip", "codec", "bits/Gaussian/frame", "PSNR dB mean / worst", "worst, held-out views",
                   "x per-frame SOG", "colour refresh bits/G/frame (share of file)", "encode s/frame (wall / CPU)"],
                  irows,
                  f"The performer re-sampled every frame (new Gaussians on the same moving surface), encoded with "
                  f"`--target-psnr {target:g}`. PSNR on every frame, on the benchmark's views ({st['cameras']}) and on "
                  "the held-out views the encoder checks; the colour refresh is the colour updates of the carried "
                  "frames. CPU seconds are summed over both threads; under load the wall time is an upper bound.")
    d = load("video_decode_idle.json")
    dec = Table("Playback-speed decode", ["video_decode_idle.json"], "python bench/video_decode.py",
                load_text(d["load_average_before"], d["load_average_after"]),
                ["Gaussians", "frames", "GOP", "bits/Gaussian/frame", "decode fps (one thread, segment loads included)",
                 "keyframe", "predicted frame (median)"],
                [[f"{d['gaussians']:,}", str(d["frames"]), str(d["gop"]), f"{d['bits_per_gaussian_frame']:.2f}",
                  f"**{d['decode_fps_incl_segment_loads']:.1f}**", f"{d['keyframe_ms']:.0f} ms",
                  f"{d['pframe_ms_median']:.1f} ms"]])
    return [main, indep, dec]


# ---------------------------------------------------------------- feature memory
def memory_tables() -> list[Table]:
    d = load("memory.json")
    m = d["meta"]
    names = {"feature3dgs-full": "Feature-3DGS-style, full D per Gaussian", "langsplat-ae-d3": "LangSplat-style AE latent"}
    rows = []
    for r in d["rows"]:
        bank = "-" if r["bank_max"] is None else f"{r['bank_max']}" + (
            f" ({r['bank_size']})" if r["bank_size"] and r["bank_size"] != r["bank_max"] else "")
        rows.append([names.get(r["method"], r["method"]), str(r["query_dim"]), bank, r["projection"] or "-",
                     f"{r['heldout_cos']:.3f}", f"{r['cos_gap_vs_full']:+.3f}", f"{r['heldout_l2']:.1f}",
                     f"{r['bytes'] / 1e6:.2f} MB", f"{r['storage_ratio_vs_full']:.0f}x", f"{r['train_seconds']:.0f} s"])
    return [Table(f"Held-out feature fidelity and storage ({m['scene']}, {m['gaussians']:,} Gaussians)", ["memory.json"],
                  m["command"], load_text(m["load_avg"]),
                  ["method", "q", "bank cap (size)", "projection", "held-out cos", "gap to full", "L2", "storage",
                   "vs full f32", "time"], rows,
                  f"{m['views']} views at {m['size'][0]}x{m['size'][1]} with {len(m['holdout'])} held out, "
                  f"{m['model']} features (D={m['dim']}); scored on the held-out views' feature cells. Storage is the "
                  f"feature part only. Times exclude the shared per-view operators ({m['operator_seconds']:.0f} s).")]


# ---------------------------------------------------------------- viewer
def viewer_tables() -> list[Table]:
    return [web_player_table(), web_player_table("web_player_speed2.json",
                                                 "The web player against viser, the clip at double speed")]


def web_player_table(name: str = "web_player.json", title: str = "The web player against viser") -> Table:
    """bench/web_player.py: the viser viewer and the web player, measured in one run. At speed 1
    the player's delivered fps cannot pass the clip's own rate; double speed shows the headroom."""
    d = load(name)
    m = d["meta"]
    cell = lambda x: "-" if x is None else (f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}")  # noqa: E731
    met = {True: "met", False: "missed", None: "-"}
    rows = [[r["metric"], cell(r["viser"]), f"**{cell(r['web_player'])}**", cell(r["ratio"]), r["goal"], met[r["met"]]]
            for r in d["summary"]]
    return Table(title, [name], m["command"].strip(),
                 load_text(m["load_before"], m["load_after"]),
                 ["metric", "viser", "web player", "web / viser", "goal", "met"], rows,
                 f"One run, the two paths alternating, median of {m['repeats']}; Chromium {m['chromium']} "
                 f"({m['client']}, {m['viewport'][0]}x{m['viewport'][1]}), a fresh browser per measurement. "
                 f"Scene: {d['scene']['note']}. Clip: {d['clip']['gaussians']:,} Gaussians, {d['clip']['frames']} "
                 f"frames at {d['clip']['fps']:g} fps, {d['clip']['file_mbit_s']:.1f} Mbit/s, played at speed "
                 f"{m['speed']:g} for {m['seconds']:g} s.")


# ---------------------------------------------------------------- scale
def scale_tables() -> list[Table]:
    d = load("scale.json")
    names = {"0.5M": "playbot level 0 (SH 2)", "2M": "playbot tiled 2x2 (SH 2)"}
    rows = []
    for r in d["rows"]:
        rows.append([names.get(r["size"], f"synthetic sphere ({r['size']})"), f"{r['n']:,}",
                     f"{r['raw_ply_bytes'] / 1e6:,.0f} MB", f"{r['lgs_bytes'] / 1e6:.2f} MB", f"{r['compress_s']:.0f} s",
                     f"{r['compress_peak_rss'] / 1e6:,.0f} MB ({r['compress_rss_x_ply']:.2f}x)", f"{r['decompress_s']:.2f} s",
                     f"{r['decompress_peak_rss'] / 1e6:,.0f} MB ({r['decompress_rss_x_ply']:.2f}x)",
                     "-" if r["psnr"] is None else f"{r['psnr']:.2f} dB", load_text(r.get("load_before"), r.get("load_after")),
                     f"`{r.get('command', d['meta']['command'])}`"])
    size = Table("Memory and time against scene size", ["scale.json"], d["meta"]["command"] + " (per row below)",
                 load_text([r.get("load_before") for r in d["rows"]], [r.get("load_after") for r in d["rows"]]),
                 ["scene", "Gaussians", "raw PLY", ".lgs", "compress", "peak RSS (x PLY)", "decompress",
                  "peak RSS (x PLY)", "fidelity", "load", "command"], rows,
                 "Compress path: `splat compress --steps 0 --prune 0.66 --level 1` (one prune + encode pass); each run "
                 "in its own process, peak RSS = VmHWM.")
    d = load("scale_ray.json")
    ray = Table("Serial against 2 Ray workers (video segments)", ["scale_ray.json"], d["command"],
                load_text(d["load_before"], d["load_after"]),
                ["clip", "serial (default threads)", "serial (1 thread)", "2 workers", "speed-up", "vs 1-thread serial",
                 "Ray start + warm-up (not counted)"],
                [[f"{d['gaussians']:,} Gaussians, {d['frames']} frames, {d['segments']} segments", f"{d['serial_s']:.1f} s",
                  f"{d['serial_1thread_s']:.1f} s", f"{d['workers2_s']:.1f} s", f"**{d['speedup']:.2f}x**",
                  f"{d['speedup_vs_1thread']:.2f}x", f"{d['ray_start_and_warm_s']:.1f} s"]],
                 "Bytes checked equal to the serial run's.")
    d = load("threads.json")
    rows = [[r["background"], r["setup"], str(r["threads"]), f"{r['wall_ms_per_step']:.1f}", f"{r['cpu_ms_per_step']:.1f}"]
            for r in d["rows"]]
    threads = Table("Threads: one image-fitting step, 1 and 2 threads", ["threads.json"], d["command"],
                    load_text([r["load_avg_1min"] for r in d["rows"]]),
                    ["background", "set-up", "threads", "wall ms/step", "CPU ms/step"], rows,
                    f"{d['image']} crop {d['crop']}x{d['crop']}, {d['gaussians']:,} Gaussians. `package`: the threading "
                    "layer `import splat` selects (numba `omp`, passive wait); `spin`: OpenMP's default active wait; "
                    "`busy`: one busy-looping process beside it. Under this load CPU time is the steadier figure.")
    return [size, ray, threads]


# ---------------------------------------------------------------- formats
def formats_tables() -> list[Table]:
    d = load("formats.json")
    rows = [[r["scene"], r["format"], f"{r['bytes_per_gaussian']:.1f}", f"{r['write_s']:.2f} s", f"{r['read_s']:.2f} s",
             f"{r['means_max']:.2g}", f"{r['opacity_max']:.2g}", f"{r['rgb_mean']:.2g}", f"{r['quat_max']:.2g}",
             "-" if r.get("sh_rel_rmse") is None else f"{r['sh_rel_rmse']:.3f}"] for r in d["round_trips"]]
    rt = Table("Round trips through each writable format", ["formats.json"], "python bench/formats.py",
               load_text(d["load_average"]),
               ["scene", "format", "B/G", "write", "read", "max position error", "max opacity error", "mean colour error",
                "max quaternion error", "SH relative RMSE"], rows)
    rows = [[r["file"], r["format"], f"{r['gaussians']:,}", f"{r['read_s']:.2f} s"] for r in d["real_files"]]
    real = Table("Reading the shared scenes", ["formats.json"], "python bench/formats.py", load_text(d["load_average"]),
                 ["file", "format", "Gaussians", "read"], rows)
    d = load("entropy_constriction.json")
    rows = []
    for r in d["rows"]:
        c = r["constriction_our_models"]
        rows.append([r["scene"], r["stream"], f"{r['count']:,}", f"{r['ours_static']['bytes']:,}",
                     f"{r['constriction_static']['bytes']:,}", f"{r['ours_context']['bytes']:,}", f"{c['bytes']:,}",
                     f"{r['ours_context']['decode_s'] * 1000:.1f} ms", f"{c['decode_s_extrapolated']:.2f} s"])
    ent = Table("The entropy coder against `constriction`", ["entropy_constriction.json"],
                "python bench/entropy_constriction.py", load_text(d["load_average_start"], d["load_average_end"]),
                ["scene", "stream", "values", "ours, static", "constriction, static", "ours, context models",
                 "constriction, our models", "ours, context decode", "constriction, our models, decode (extrapolated)"],
                rows, f"constriction {d.get('constriction', '')}. Same models, same size; decoding adaptive models "
                      "symbol by symbol from Python is what costs.")
    d = load("lod_levels.json")
    rows = [[str(r["level"]), f"{r['gaussians']:,}", f"**{r['merged_db']:.2f} dB**", f"{r['random_db']:.2f} dB",
             f"{r['most_significant_db']:.2f} dB"] for r in d["rows"]]
    lod = Table(f"Streamed SOG levels of detail ({d['scene']})", ["lod_levels.json"], "python bench/lod_levels.py",
                load_text(d["load_average"]),
                ["level", "Gaussians", "merged (ours)", "random subset", "most significant subset"], rows,
                f"PSNR of each coarser level against the full scene, {d['views']} views.")
    return [rt, real, ent, lod]


PAGES: list[tuple[str, str, str, Callable[[], list[Table]]]] = [
    ("render", "rendering", "The differentiable rasterizer's CPU backend. Design: [the renderer](../renderer.md).",
     render_tables),
    ("scene", "scene compression", "`.lgs`: size and fidelity. Usage: [scene compression](../guides/scene.md).",
     scene_tables),
    ("image", "image fitting", "`.gsi` on the Kodak images. Usage: [image fitting](../guides/image.md).", image_tables),
    ("video", "volumetric video", "`.gsv` clips. Usage: [volumetric video](../guides/video.md).", video_tables),
    ("memory", "feature memory", "`.m3`. Usage: [feature memory](../guides/memory.md).", memory_tables),
    ("viewer", "viewer", "`splat view` in headless Chromium. Usage: [the viewer](../viewer.md).", viewer_tables),
    ("scale", "scale and threads", "Large scenes, Ray workers and threads. Design: [scale](../scale.md).", scale_tables),
    ("formats", "formats and entropy coding", "Readers and writers ([formats and I/O](../guides/io.md)) and the "
     "entropy layer ([design note](../design/entropy.md)).", formats_tables),
]


def pages() -> dict[str, str]:
    """Markdown of every result page, keyed by its path under docs/ (``results/render.md``, ...)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    index = ["# Results", "",
             "Every figure in this documentation and in the README comes from a file in `bench/results/`, "
             "written by a script in `bench/`. These pages are generated from those files by "
             "`docs/gen_results.py` at every build, so they cannot disagree with them. Each table names the "
             "machine, the load average while it ran and the command that reproduces it. The development "
             "machine is shared, so a table measured under load gives upper bounds for times; sizes and "
             "qualities do not depend on the load.", "",
             "## Headline results", "", headline_table(lambda s: f"files/{s}"), "",
             "## Pages", ""]
    for name, title, intro, make in PAGES:
        page = Page(name, title, intro, make())
        used |= page.sources()
        out[f"results/{name}.md"] = page.markdown()
        index.append(f"- [{title[0].upper() + title[1:]}]({name}.md)")
    used |= set(HEADLINE_SOURCES)
    rest = sorted(p.name for p in RESULTS.glob("*.json") if p.name not in used)
    index += ["", "## Not on a results page", ""]
    for n in rest:
        why = SUPERSEDED.get(n, "not rendered yet: add it to `docs/gen_results.py`")
        index.append(f"- [`{n}`](files/{n}): {why}")
    out["results/index.md"] = "\n".join(index) + "\n"
    return out


# ---------------------------------------------------------------- the README's headline table
HEADLINE_SOURCES = ["render.json", "scene_default.json", "scene_vs_sog.json", "scene_decode.json",
                    "image_rd_v5_summary.json", "image_speed.json", "video.json", "video_decode_idle.json",
                    "memory.json", "scale.json", "web_decode.json", "web_player.json"]


def headline_rows() -> Iterable[tuple[str, str, str, str]]:
    """(capability, result, conditions, results file) for the README's table."""
    d = load("render.json")
    b = max(d["scenes"], key=lambda s: s["gaussians"])
    yield ("Rendering", f"{b['gaussians']:,} Gaussians at {b['size']}: forward {b['forward_s']:.3f} s, "
                        f"forward + backward {b['forward_backward_s']:.3f} s", f"CPU, 2 threads, load {load_text(d['meta']['load_average'])}",
           "render.json")
    rows = load("scene_default.json")
    lo, hi = min(r["ratio"] for r in rows), max(r["ratio"] for r in rows)
    big = max(rows, key=lambda r: r["gaussians"])
    yield ("Scene compression", f"{lo:.1f}-{hi:.0f}x smaller than the PLY at >= {min(r['psnr'] for r in rows):.0f} dB "
                                f"fidelity on {len(rows)} scenes; {big['scene']} ({big['gaussians']:,} Gaussians) in {big['encode_s']:.0f} s",
           f"default settings, load {load_text([r['load_before'] for r in rows])}", "scene_default.json")
    d = load("scene_vs_sog.json")
    sog = {r["scene"]: r["bytes"] for r in d["rows"] if r["format"] == "sog"}
    tails = {" ".join(r["setting"].split()[2:]) for r in d["rows"] if r["setting"].startswith("--target-psnr")}
    kind = next(k for k in ("", "--plan-prune", "--prune 0") if k in tails)
    ratios = [sog[r["scene"]] / r["bytes"] for r in d["rows"]
              if r["setting"].startswith("--target-psnr") and " ".join(r["setting"].split()[2:]) == kind]
    yield ("Scene compression", f"{sum(ratios) / len(ratios):.2f}x smaller than SOG on average ({min(ratios):.2f}-"
                                f"{max(ratios):.2f}x) at SOG's fidelity ({len(ratios)} scenes)",
           f"`{' '.join(['--target-psnr P', kind]).strip()}`, load {load_text(d['load_average_start'], d['load_average_end'])}",
           "scene_vs_sog.json")
    d = load("scene_decode.json")
    f = max(d["files"], key=lambda f: f["default_threads"]["gaussians"])["default_threads"]
    yield ("Scene decode", f"{f['gaussians']:,} Gaussians in {f['min_s']:.3f} s", f"2 threads, load "
                                                                                   f"{load_text(d['load_before'], d['load_after'])}",
           "scene_decode.json")
    d = load("image_rd_v5_summary.json")
    parts = [f"{v['gsi_minus_jpeg']['mean_db']:+.2f} dB at {float(k):g} bpp" for k, v in d.items()]
    n = next(iter(d.values()))["gsi"]["images"]
    yield ("Image fitting", "against JPEG (`--schedule best`): " + ", ".join(parts), f"{n} Kodak images",
           "image_rd_v5_summary.json")
    d = load("image_speed.json")
    r = next(r for r in d["rows"] if r["schedule"] == d["default_schedule"])
    yield ("Image fitting", f"fit {r['fit_wall_s']:.1f} s ({r['schedule']} schedule, {r['psnr']:.2f} dB), decode + render "
                            f"{d['decode_render_default_threads']['min_ms']:.0f} ms",
           f"{r['image']}, 768x512 at {r['target_bpp']} bpp, load {load_text(r['load_before'], r['load_after'])}",
           "image_speed.json")
    d = load("video.json")
    tr = next(r for r in d["rows"] if r.get("mode") == "tracked")
    lgs = next(r for r in d["rows"] if r["clip"] == tr["clip"] and r["codec"] == "per-frame lgs")
    yield ("Volumetric video", f"{tr['bits_per_gaussian_frame']:.2f} bits/Gaussian/frame at {tr['psnr_db']:.1f} dB, "
                               f"{lgs['bits_per_gaussian_frame'] / tr['bits_per_gaussian_frame']:.0f}x below per-frame `.lgs`",
           f"tracked performer, {tr['gaussians']:,} Gaussians, load {load_text(d['settings']['load_avg_at_end'])}", "video.json")
    d = load("video_independent.json")
    fb = d["rows"][0]
    if fb.get("ratio_to_sog") is not None:
        yield ("Volumetric video", f"flipbook (independently made frames): every frame >= {fb['psnr_min_held_db']:.1f} dB on held-out views "
                                   f"at {fb['ratio_to_sog']:.2f}x per-frame SOG, {fb['encode_cpu_s_per_frame']:.1f} CPU s/frame",
               f"re-sampled performer, {fb['gaussians']:,} Gaussians, `--target-psnr {fb['target_psnr']:g}`, "
               f"load {load_text(d['settings']['load_avg_at_end'])}", "video_independent.json")
    d = load("video_decode_idle.json")
    yield ("Volumetric video", f"decode {d['decode_fps_incl_segment_loads']:.1f} fps, {d['gaussians']:,} Gaussians",
           f"one thread, load {load_text(d['load_average_before'], d['load_average_after'])}", "video_decode_idle.json")
    d = load("web_decode.json")
    lgs = max(d["files"], key=lambda f: f["gaussians"])
    clip = d["videos"][0]["node"]
    yield ("Browser decode", f"{lgs['gaussians']:,}-Gaussian `.lgs` in {lgs['node']['min_s']:.2f} s "
                             f"({lgs['ratio_ts_over_numba']:.2f}x numba's time); 50,000-Gaussian clip at "
                             f"{clip['predicted_fps']:.0f} predicted frames/s",
           f"TypeScript in Node {d['node_version']}, one thread, load {load_text(d['load_before'], d['load_after'])}",
           "web_decode.json")
    d = load("web_player.json")
    row = {r["key"]: r for r in d["summary"]}
    ff, fps, wire = row["from_launch_s"], row["delivered_fps"], row["wire_ratio"]
    vs = lambda r, f: "" if r["viser"] is None else f" ({f.format(r['ratio'])}x viser's)"  # noqa: E731
    yield ("Web player", f"biker `.lgs` first frame in {ff['web_player']:.1f} s{vs(ff, '{:.2f}')}; 50k clip at "
                         f"{fps['web_player']:.1f} fps of its {d['clip']['fps']:.0f}{vs(fps, '{:.2f}')}, "
                         f"{wire['web_player']:.2f}x the file's bitrate "
                         "on the wire" + ("" if wire["viser"] is None else f" (viser {wire['viser']:.0f}x)"),
           f"headless Chromium, SwiftShader, load {load_text(d['meta']['load_before'], d['meta']['load_after'])}",
           "web_player.json")
    d = load("memory.json")
    ours = next(r for r in d["rows"] if r["method"] == "ours" and r["query_dim"] == 16 and r["projection"] == "learnable"
                and r["bank_max"] == 4096)
    yield ("Feature memory", f"held-out cosine {ours['cos_gap_vs_full']:.3f} below full per-Gaussian features at "
                             f"{ours['storage_ratio_vs_full']:.0f}x less storage", f"{d['meta']['scene']}, default settings, load {load_text(d['meta']['load_avg'])}",
           "memory.json")
    d = load("scale.json")
    r = max(d["rows"], key=lambda r: r["n"])
    yield ("Scale", f"{r['n']:,} Gaussians compressed in {r['compress_s'] / 60:.1f} min, peak memory "
                    f"{r['compress_rss_x_ply']:.2f}x the PLY", f"SH 3, load {load_text(r.get('load_before'), r.get('load_after'))}",
           "scale.json")


def headline_table(link: Callable[[str], str]) -> str:
    lines = ["| capability | result | conditions | source |", "|---|---|---|---|"]
    for cap, result, cond, src in headline_rows():
        lines.append(f"| {cap} | {result} | {cond} | [{src}]({link(src)}) |")
    return "\n".join(lines)


def readme_block() -> str:
    return (f"{BEGIN}\n<!-- generated by docs/gen_results.py from bench/results/: run "
            f"`python docs/gen_results.py --readme` after a benchmark -->\n"
            f"{headline_table(lambda s: f'bench/results/{s}')}\n{END}")


def rewrite_readme(text: str) -> str:
    a, b = text.find(BEGIN), text.find(END)
    if a < 0 or b < a:
        raise SystemExit(f"{README}: no {BEGIN} ... {END} block")
    return text[:a] + readme_block() + text[b + len(END):]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="write the result pages under this folder (results/*.md)")
    ap.add_argument("--readme", action="store_true", help="rewrite the README's headline block")
    ap.add_argument("--check", action="store_true", help="exit 1 if the README's block is out of date")
    args = ap.parse_args(argv)
    if args.out:
        for rel, text in pages().items():
            p = args.out / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
    text = README.read_text()
    if args.readme:
        new = rewrite_readme(text)
        if new != text:
            README.write_text(new)
    if args.check and rewrite_readme(text) != text:
        print(f"{README}: the headline block is out of date; run python docs/gen_results.py --readme", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
