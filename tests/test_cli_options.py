"""One spelling of every shared option across `splat` commands, option ranges, and help texts."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from rich.style import Style

import splat.io as sio
from splat import GaussianScene
from splat.cli import build_app, main
from splat.cli_options import check_range
from splat.errors import UsageError

# every command that writes something: its output is -o/--output
WRITERS = {("convert",), ("compress",), ("decompress",), ("render",), ("fit-image",), ("render-image",),
           ("memory", "extract"), ("memory", "build"), ("memory", "render"), ("memory", "query"),
           ("video", "encode"), ("video", "decode"), ("video", "synth"), ("publish",)}
RICH_TAG = re.compile(r"(?<!\\)\[([a-z#/@][^\[]*?)\]")  # what rich would take as markup


def _commands(cmd, path=()):
    subs = getattr(cmd, "commands", None)
    yield path, cmd
    for name, sub in (subs or {}).items():
        yield from _commands(sub, path + (name,))


@pytest.fixture(scope="module")
def commands():
    return dict(_commands(typer.main.get_command(build_app())))


def test_every_output_option_is_dash_o_output(commands):
    missing = WRITERS - set(commands)
    assert not missing, f"commands not registered: {missing}"
    for path, cmd in commands.items():
        options = [p for p in cmd.params if getattr(p, "opts", None) and p.param_type_name == "option"]
        for p in options:
            if p.hidden:
                continue
            assert "--out" not in p.opts, (path, p.opts)
            if "-o" in p.opts or "--output" in p.opts or p.name in ("out", "output", "output_opt"):
                assert sorted(p.opts) == ["--output", "-o"], (path, p.opts)
            assert "--device" not in p.opts, (path, "use --backend")
            if p.name == "backend":
                assert p.opts == ["--backend"] and p.default == "auto", path
        if path in WRITERS:
            assert any(sorted(p.opts) == ["--output", "-o"] for p in options), f"{path} has no -o/--output"


def test_help_texts_have_no_swallowed_brackets(commands):
    for path, cmd in commands.items():
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        for text in texts:
            for m in RICH_TAG.finditer(text):
                tag = m.group(1)
                if not tag.startswith("/"):
                    Style.parse(tag)  # an unknown style would be swallowed by rich: escape it as \\[...]


def test_memory_extract_help_names_the_extra(capsys):
    assert main(["memory", "extract", "--help"]) == 0
    assert "Needs the [features] extra." in " ".join(capsys.readouterr().out.split())


@pytest.fixture
def small_ply(tmp_path: Path) -> Path:
    path = tmp_path / "s.ply"
    sio.write_scene(GaussianScene.random(40, sh_degree=1, seed=3), path)
    return path


def test_deprecated_out_still_works(small_ply, tmp_path, capsys):
    out = tmp_path / "o.spz"
    assert main(["convert", str(small_ply), "--out", str(out)]) == 0
    assert "--out is deprecated; use --output" in capsys.readouterr().err
    assert len(sio.read_scene(out)) == 40
    assert main(["convert", str(small_ply), "-o", str(tmp_path / "p.spz")]) == 0
    assert main(["convert", str(small_ply), str(tmp_path / "q.spz"), "-o", str(tmp_path / "r.spz")]) == 2
    assert "give the output once" in capsys.readouterr().err


@pytest.mark.parametrize("argv,text", [
    (["compress", "{ply}", "-o", "{tmp}/a.lgs", "--codebook", "0"], "--codebook must be in [1, 65536], got 0"),
    (["compress", "{ply}", "-o", "{tmp}/a.lgs", "--prune", "1"], "--prune must be in [0, 1), got 1"),
    (["compress", "{ply}", "-o", "{tmp}/a.lgs", "--prune", "nan"], "--prune must be in [0, 1), got nan"),
    (["compress", "{ply}", "-o", "{tmp}/a.lgs", "--sh-degree", "4"], "--sh-degree must be in [0, 3], got 4"),
    (["compress", "{ply}", "-o", "{tmp}/a.lgs", "--target-psnr", "inf"], "--target-psnr must be in (0, 100]"),
    (["compress", "{ply}", "-o", "{tmp}/a.lgs", "--plan-prune"], "--plan-prune/--no-plan-prune need --target-psnr and neither --prune nor --level"),
    (["compress", "{ply}", "-o", "{tmp}/a.lgs", "--target-psnr", "40", "--prune", "0.2", "--no-plan-prune"],
     "--plan-prune/--no-plan-prune need --target-psnr and neither --prune nor --level"),
    (["compress", "{ply}", "-o", "{tmp}/a.lgs", "--backend", "metal"], "--backend must be auto, cpu or gsplat"),
    (["compress", "{ply}", "-o", "{tmp}/a.lgs", "--max-side", "0"], "'--max-side': Input should be greater than or equal to 16"),
    (["fit-image", "{ply}", "-o", "{tmp}/a.gsi", "--backend", "gsplat"], "fit-image runs on the CPU"),
    (["fit-image", "{ply}", "-o", "{tmp}/a.gsi", "--device", "cuda"], "fit-image runs on the CPU"),
    (["fit-image", "{ply}", "-o", "{tmp}/a.gsi", "--bpp", "-1"], "--bpp must be in (0, 64], got -1"),
    (["fit-image", "{ply}", "-o", "{tmp}/a.gsi", "--init", "random"], "--init must be structure or gradient, got 'random'"),
    (["render-image", "{ply}", "-o", "{tmp}/a.png", "--scale", "inf"], "--scale must be > 0, got inf"),
    (["render", "{ply}", "-o", "{tmp}/v", "--backend", "reference"], "--backend must be auto, cpu or gsplat"),
    (["video", "encode", "{tmp}", "-o", "{tmp}/a.gsv", "--gop", "0"], "'--gop': Input should be greater than or equal to 1"),
    (["video", "synth", "-o", "{tmp}/f", "--frames", "0"], "'--frames': Input should be greater than or equal to 1"),
    (["memory", "build", "{ply}", "--cameras", "{ply}", "--features", "{tmp}", "-o", "{tmp}/a.m3",
      "--temperature", "0"], "--temperature must be > 0, got 0"),
    (["memory", "render", "{ply}", "-o", "{tmp}/a.npy", "--backend", "vulkan"], "--backend must be auto, cpu or reference"),
])
def test_option_ranges_fail_clearly(small_ply, tmp_path, capsys, argv, text):
    argv = [a.format(ply=small_ply, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert text in " ".join(err.split()), err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.ply"]  # nothing written


def test_check_range_edges():
    check_range("--x", 0.0, 0.0, 1.0)
    check_range("--x", 1.0, 0.0, 1.0)
    check_range("--x", None, 0.0, 1.0)
    for v in (-1e-9, 1.0 + 1e-9, float("nan"), float("inf")):
        with pytest.raises(UsageError, match="--x must be in"):
            check_range("--x", v, 0.0, 1.0)
    with pytest.raises(UsageError, match="--x must be > 0"):
        check_range("--x", 0, 0, None, lo_open=True)


@pytest.mark.parametrize("codebook", [1, 2, 65536])
def test_codebook_edges_round_trip(codebook):
    """The smallest and largest --codebook values write .lgs files their decoder reads back."""
    from compress.scene.codec import QuantConfig, decode, encode

    scene = GaussianScene.random(300, sh_degree=1, seed=4)
    data, _ = encode(scene, config=QuantConfig(sh_codebook=codebook))
    got = decode(data)
    assert len(got) == 300 and got.sh_degree == 1 and bool(got.sh_rest.isfinite().all())
    with pytest.raises(ValueError, match="sh_codebook must be >= 1"):
        encode(scene, config=QuantConfig(sh_codebook=0))


@pytest.mark.parametrize("level,position_bits", [(0, 16), (3, 21), (0, 21), (3, 16)])
def test_level_and_position_bits_edges_round_trip(level, position_bits):
    """--level 0..3 and --position-bits 16..21 (the ranges the CLI accepts) decode back, positions within the grid step."""
    import torch

    from compress.scene.codec import decode, encode
    from compress.scene.rate import level_config

    scene = GaussianScene.random(200, sh_degree=0, seed=5)
    data, report = encode(scene, config=level_config(level, position_bits=position_bits))
    got = decode(data)
    assert len(got) == 200
    extent = float((scene.means.max(0).values - scene.means.min(0).values).max())
    step = extent / (2 ** position_bits - 1)
    assert torch.allclose(scene.means[torch.as_tensor(report.permutation)], got.means, atol=step + 1e-6)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU-only message")
@pytest.mark.parametrize("cmd", [["render", "{ply}", "-o", "{tmp}/v"], ["compress", "{ply}", "-o", "{tmp}/a.lgs"],
                                 ["eval", "{ply}", "{ply}"], ["compress", "{ply}", "-o", "{tmp}/a.lgs", "--device", "cuda"]])
def test_gsplat_without_a_gpu_is_one_line(small_ply, tmp_path, capsys, cmd):
    argv = [a.format(ply=small_ply, tmp=tmp_path) for a in cmd]
    if "--device" not in argv:
        argv += ["--backend", "gsplat"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--backend gsplat needs a CUDA GPU" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.ply"]


@pytest.mark.parametrize("sub", ["extract", "render"])
def test_memory_gsplat_backend_is_refused_in_one_line(small_ply, tmp_path, capsys, sub):
    argv = (["memory", "extract", str(small_ply), "--views", "2", "-o", str(tmp_path / "f")] if sub == "extract"
            else ["memory", "render", str(tmp_path / "missing.m3"), "-o", str(tmp_path / "f.npy")])
    assert main(argv + ["--backend", "gsplat"]) == 2
    err = capsys.readouterr().err
    assert "--backend must be auto, cpu or reference" in err and "feature memories" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.ply"]
