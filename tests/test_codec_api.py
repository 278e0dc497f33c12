"""Every codec has the same four entry points: encode/decode (bytes) and write_*/read_* (paths).

For each: the file ``write_*`` leaves is exactly ``encode``'s bytes, ``read_*`` gives exactly
what ``decode`` gives, and the decoded object is the original within the codec's precision.
"""
from __future__ import annotations

import torch

from splat.scene import GaussianScene


def _scenes_equal(a: GaussianScene, b: GaussianScene) -> bool:
    return a.replace(extras={}).equal(b.replace(extras={}))


def _close(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    return float((a.float() - b.float()).abs().max()) <= tol


def test_scene_lgs(tmp_path):
    from compress.scene import decode, encode, read_lgs, write_lgs

    scene = GaussianScene.random(300, sh_degree=1, seed=1)
    data, _ = encode(scene)
    write_lgs(scene, tmp_path / "s.lgs")
    assert (tmp_path / "s.lgs").read_bytes() == data
    back = decode(data)
    assert _scenes_equal(read_lgs(tmp_path / "s.lgs"), back)
    assert len(back) == len(scene)
    # Gaussians come back in Morton order: compare sorted coordinates
    extent = float((scene.means.max(0).values - scene.means.min(0).values).max())
    for d in range(3):
        assert _close(back.means[:, d].sort().values, scene.means[:, d].sort().values, 0.01 * extent)


def test_image_gsi(tmp_path):
    from compress.image import ImageGaussians, decode, encode, read_gsi, write_gsi

    g = torch.Generator().manual_seed(0)
    img = ImageGaussians(torch.rand(200, 2, generator=g) * torch.tensor([40.0, 30.0]),
                         torch.rand(200, 2, generator=g) * 3 + 0.5, torch.rand(200, generator=g) * 6 - 3,
                         torch.rand(200, 3, generator=g), 40, 30)
    data = encode(img)
    assert write_gsi(img, tmp_path / "i.gsi") == len(data)
    assert (tmp_path / "i.gsi").read_bytes() == data
    back, again = decode(data), read_gsi(tmp_path / "i.gsi")
    for name in ("means", "scales", "rotations", "colors"):
        assert torch.equal(getattr(back, name), getattr(again, name))
    assert back.mode == img.mode == "sum"  # one default for fitting, the model and the renderer
    a, b = back.render(), img.render()
    assert float((a - b).abs().mean()) < 0.05 * float(b.abs().mean())  # quantised, still the same image


def test_video_gsv(tmp_path):
    from compress.video import VideoSettings, decode_video, encode_video, read_video, write_video

    # one scene moving: the default (auto) mode codes it tracked, the codec's main path
    # (random, unrelated frames would spend the test in tracking by rendering, which
    # tests/test_video_tracking.py covers)
    first = GaussianScene.random(200, sh_degree=0, seed=0)
    frames = [first.replace(means=first.means + 0.02 * s * torch.tensor([1.0, 0.5, 0.0])) for s in range(3)]
    st = VideoSettings(gop=2, fps=10.0)
    res = encode_video(frames, st)
    assert res.mode == "tracked"
    write_video(frames, tmp_path / "v.gsv", st)
    assert (tmp_path / "v.gsv").read_bytes() == res.data
    back, again = decode_video(res.data), read_video(tmp_path / "v.gsv")
    assert len(back) == len(again) == 3
    for f, a, b in zip(frames, back, again):
        assert _scenes_equal(a, b) and len(a) == len(f)
        extent = float((f.means.max(0).values - f.means.min(0).values).max())
        for d in range(3):
            assert _close(a.means[:, d].sort().values, f.means[:, d].sort().values, 0.01 * extent)


def test_memory_m3(tmp_path):
    from compress.memory import QUERY_EXTRA, Memory, ModelMemory, decode_m3, encode_m3, read_m3, write_m3

    g = torch.Generator().manual_seed(0)
    scene = GaussianScene.random(100, sh_degree=0, seed=0)
    q = torch.randn(100, 4, generator=g)
    models = [ModelMemory("clip", 0, 4, torch.randn(10, 8, generator=g), torch.randn(4, 8, generator=g), 0.05, True,
                          (48, 64), (6, 8))]
    mem = Memory(scene.with_extras(**{QUERY_EXTRA: q}), models, meta={})
    data = encode_m3(mem)
    assert write_m3(mem, tmp_path / "m.m3") == len(data)
    assert (tmp_path / "m.m3").read_bytes() == data
    back, again = decode_m3(data), read_m3(tmp_path / "m.m3")
    assert torch.equal(back.queries, again.queries) and _scenes_equal(back.scene, again.scene)
    assert _scenes_equal(back.scene, scene)  # geometry is stored losslessly
    step = (q.max(0).values - q.min(0).values) / 255  # 8-bit queries
    assert bool(((back.queries - q).abs() <= step / 2 + 1e-6).all())


def test_progress_protocol_is_one_type():
    from rich.console import Console

    from splat.progress import NullProgress, Progress, RichProgress, make_progress

    bar = make_progress(Console(file=open("/dev/null", "w")))
    rp = RichProgress(bar)
    assert isinstance(rp, Progress) and isinstance(NullProgress(), Progress)
    rp.start("stage", 10)
    rp.advance(3, "info")
    task = bar.tasks[0]
    assert (task.description, task.completed, task.total, task.fields["info"]) == ("stage", 3, 10, "info")
    rp.end()
    assert bar.tasks[0].completed == 10  # an early end shows the stage complete
    rp.start("unknown length", None)
    rp.advance(2)
    rp.end()
    assert bar.tasks[1].total == bar.tasks[1].completed == 2


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def start(self, desc, total):
        self.events.append(("start", desc, total))

    def advance(self, n=1, info=""):
        self.events.append(("advance", n, info))

    def end(self):
        self.events.append(("end",))


def test_codecs_report_progress_through_the_protocol():
    from compress.image import compress_image
    from compress.video import VideoSettings, encode_video

    rec = _Recorder()
    compress_image(torch.rand(16, 20, 3).numpy(), gaussians=30, steps=20, progress=rec)
    assert rec.events[0] == ("start", "fit", 20) and rec.events[-1] == ("end",)
    steps = sum(e[1] for e in rec.events if e[0] == "advance")
    assert 0 < steps <= 20 and "Gaussians" in rec.events[1][2]
    from compress.video.tracking import TrackSettings

    rec = _Recorder()
    # unrelated frames: segments one after another, each trying tracking by rendering first
    # (the loop that reports progress itself); the smallest tracking effort, as it fails anyway
    quick = TrackSettings(views=2, size=32, iters=2, icp_rounds=1, refresh=False, densify=0)
    res = encode_video([GaussianScene.random(50, seed=s) for s in range(3)], VideoSettings(gop=2, tracking=quick),
                       progress=rec)
    assert res.mode == "independent"
    assert rec.events[0] == ("start", "encoding", 3) and rec.events[-1] == ("end",)
    assert sum(e[1] for e in rec.events if e[0] == "advance") == 3


def test_image_defaults_agree(monkeypatch, tmp_path):
    """One render rule by default (fitting, the model, the renderer), and `splat fit-image`
    fits with the steps the committed benchmark measured (main fit + one rate-control stage)."""
    import csv
    from pathlib import Path

    import numpy as np

    import splat.cli as cli
    from compress.image import FitConfig, ImageGaussians, api
    from compress.image.fit import schedule
    from render.image2d import DEFAULT_MODE, render_image

    g = ImageGaussians(torch.rand(5, 2) * 8, torch.ones(5, 2), torch.zeros(5), torch.rand(5, 3), 8, 8)
    assert FitConfig().mode == g.mode == DEFAULT_MODE == "sum"
    args = (g.means, g.scales, g.rotations, g.colors, 8, 8)
    assert torch.equal(render_image(*args), render_image(*args, mode="sum"))

    seen = {}

    def fake_fit_rate(target, **kw):
        seen["steps"] = kw["cfg"].steps
        raise KeyboardInterrupt  # stop before fitting; the CLI exits non-zero

    monkeypatch.setattr(api, "fit_rate", fake_fit_rate)
    np.save(tmp_path / "in.npy", np.zeros((8, 8, 3), np.float32))
    assert cli.main(["fit-image", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.gsi")]) != 0
    assert seen["steps"] == FitConfig().steps
    from typer.testing import CliRunner

    shown = CliRunner().invoke(cli.build_app(), ["fit-image", "--help"], env={"COLUMNS": "200"}).output
    from compress.image.schedules import DEFAULT_SCHEDULE, SCHEDULES

    for name, sched in SCHEDULES.items():
        assert f"{sched['steps']} ({name})" in shown
    assert f"[default: {DEFAULT_SCHEDULE}]" in shown
    # the sweep the docs quote ran `--schedule best`: its main fit and rate-control stage
    bench = Path(__file__).resolve().parents[1] / "bench" / "results" / "image_rd_v5.csv"
    best = schedule(FitConfig(), "best")
    with open(bench) as f:
        measured = {int(r["steps"]) for r in csv.DictReader(f) if r["codec"] == "gsi"}
    assert measured == {best.steps + int(best.steps * best.finetune_fraction)}
