"""Readers that follow a name never leave the asset and never read without a bound.

The hostile folders are built at test time (symlinks, FIFOs and links to /dev/zero cannot
live in git). Every CLI case runs in one child process under a 2 GB address-space cap, each
with a 20 s alarm, and an audit hook records every file the child opens: a case passes when
the command exits 2 with one line naming the offending file, prints no traceback, opens
neither the secret file placed beside the asset folder nor /dev/zero, and nothing it prints
holds the secret.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import splat.io as sio
from splat import FormatError, GaussianScene
from splat.bounded import read_regular, resolve_inside, stat_regular

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"),
                                reason="needs POSIX FIFOs and /dev/zero")

SECRET = "SECRET-7f3a9c-never-print-me"
ADDRESS_SPACE = 2 << 30
CASE_SECONDS = 20

CHILD = r"""
import contextlib, io, json, os, signal, sys, time
cases = json.loads(open(sys.argv[1]).read())
watch = set(json.loads(open(sys.argv[2]).read()))
opened = []

def hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes)):
        p = os.fsdecode(args[0])
        if p in watch or os.path.realpath(p) in watch:
            opened.append(p)

sys.addaudithook(hook)

def alarm(signum, frame):
    raise TimeoutError("case ran past its time limit")

signal.signal(signal.SIGALRM, alarm)
from splat.cli import main
results = {}
for case in cases:
    out, err = io.StringIO(), io.StringIO()
    opened.clear()
    t0 = time.perf_counter()
    signal.alarm(int(sys.argv[3]))
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(case["argv"])
        except BaseException as e:
            rc = f"raised {type(e).__name__}: {e}"
    signal.alarm(0)
    results[case["name"]] = {"rc": rc, "out": out.getvalue(), "err": err.getvalue(),
                             "seconds": time.perf_counter() - t0, "opened": sorted(set(opened))}
print(json.dumps(results))
"""


def _cap_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


# ---------------------------------------------------------------------- hostile assets
def _sog(folder: Path, n: int = 40, seed: int = 0) -> Path:
    sio.write_scene(GaussianScene.random(n, sh_degree=1, seed=seed), folder / "meta.json", sort=False)
    return folder


def _run_folder(folder: Path, scene: GaussianScene | None = None) -> Path:
    from splat.io import nerfstudio

    models = folder / "nerfstudio_models"
    models.mkdir(parents=True)
    nerfstudio.write(scene if scene is not None else GaussianScene.random(30, seed=3), models / "step-000000100.ckpt")
    return folder


def _stride0_checkpoint(path: Path, n: int = 400_000_000) -> None:
    z = torch.zeros(1, 1)
    p = "_model.gauss_params."
    state = {p + "means": z.expand(n, 3), p + "scales": z.expand(n, 3), p + "quats": z.expand(n, 4),
             p + "features_dc": z.expand(n, 3), p + "features_rest": torch.zeros(1, 1, 1).expand(n, 15, 3),
             p + "opacities": z.expand(n, 1)}
    torch.save({"step": 1, "pipeline": state}, path)


def _memory(n: int = 60):
    from compress.memory.memory import QUERY_EXTRA, Memory, ModelMemory

    g = torch.Generator().manual_seed(0)
    scene = GaussianScene.random(n, seed=4)
    model = ModelMemory("clip", 0, 4, torch.randn(8, 6, generator=g) / 4, torch.randn(4, 6, generator=g) / 4)
    return Memory(scene.with_extras(**{QUERY_EXTRA: torch.randn(n, 4, generator=g)}), [model])


def _m3_with_ref(path: Path, ref: str, sha) -> None:
    from compress.memory.m3file import encode_m3

    path.write_bytes(encode_m3(_memory(), embed_scene=False, scene_ref=ref, scene_sha256=sha))


def _m3_proj_bitflip(path: Path) -> None:
    """A bit flipped in a PROJ float's exponent, the chunk's CRC recomputed: finite, but the
    features it makes overflow to Inf/NaN."""
    from compress.container import pack_container, unpack_container
    from compress.memory.m3file import MAGIC, VERSION, encode_m3

    c = unpack_container(encode_m3(_memory()), magic=MAGIC)
    chunks = []
    for ch in c.chunks:
        data = ch.data
        if ch.tag == "PROJ":
            a = np.frombuffer(data, "<u4").copy()
            a[0] = (a[0] & 0x807FFFFF) | (0xFD << 23)  # exponent 253: about 1e38
            assert np.isfinite(a.view("<f4")).all()
            data = a.tobytes()
        chunks.append((ch.tag, data))
    path.write_bytes(pack_container(MAGIC, VERSION, c.header, chunks))


def _lod(folder: Path, filenames: list[str], leaves: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    bound = {"min": [-10, -10, -10], "max": [10, 10, 10]}
    meta = {"version": 1, "lodLevels": 1, "filenames": filenames,
            "tree": {"bound": bound, "children": [{"bound": bound, "lods": lv} for lv in leaves]}}
    (folder / "lod-meta.json").write_text(json.dumps(meta))
    return folder


def build_cases(tmp: Path) -> tuple[list[dict], list[str]]:
    """(cases, paths that must never be opened). Each case: name, argv, the file its error names."""
    secret = tmp / "secret.txt"
    secret.write_text(SECRET + "\n")
    outside = _sog(tmp / "outside_sog", seed=9)  # a valid scene beside the asset folder
    root = tmp / "assets"
    root.mkdir()
    cases: list[dict] = []

    def case(name: str, argv: list, names: str) -> None:
        cases.append({"name": name, "argv": [str(a) for a in argv], "names": names})

    # 1. a symlink to /dev/zero as a SOG texture and as a checkpoint
    a = _sog(root / "zero_texture")
    (a / "means_l.webp").unlink()
    (a / "means_l.webp").symlink_to("/dev/zero")
    case("sog_texture_dev_zero", ["info", a], "means_l.webp")
    r = _run_folder(root / "zero_ckpt")
    ck = r / "nerfstudio_models" / "step-000000100.ckpt"
    ck.unlink()
    ck.symlink_to("/dev/zero")
    case("checkpoint_dev_zero", ["info", r], "step-000000100.ckpt")
    r = _run_folder(root / "zero_config")
    (r / "config.yml").symlink_to("/dev/zero")
    case("config_dev_zero", ["info", r], "config.yml")
    # 2. a FIFO as a texture, a checkpoint and a unit index
    a = _sog(root / "fifo_texture")
    (a / "quats.webp").unlink()
    os.mkfifo(a / "quats.webp")
    case("sog_texture_fifo", ["info", a], "quats.webp")
    r = _run_folder(root / "fifo_ckpt")
    (r / "nerfstudio_models" / "step-000000100.ckpt").unlink()
    os.mkfifo(r / "nerfstudio_models" / "step-000000100.ckpt")
    case("checkpoint_fifo", ["info", r], "step-000000100.ckpt")
    lod = _lod(root / "fifo_unit", ["0_0/meta.json"], [{"0": {"file": 0, "offset": 0, "count": 10}}])
    (lod / "0_0").mkdir()
    os.mkfifo(lod / "0_0" / "meta.json")
    case("streamed_unit_fifo", ["info", lod], "meta.json")
    # 3. symlinks leaving the folder: a texture, a texture onto the secret, a unit folder
    a = _sog(root / "link_texture")
    (a / "sh0.webp").unlink()
    (a / "sh0.webp").symlink_to(outside / "sh0.webp")
    case("sog_texture_link_out", ["convert", a, tmp / "out1.ply"], "sh0.webp")
    a = _sog(root / "link_secret")
    (a / "scales.webp").unlink()
    (a / "scales.webp").symlink_to(os.path.relpath(secret, a))
    case("sog_texture_link_secret", ["info", a], "scales.webp")
    lod = _lod(root / "link_unit", ["0_0/meta.json"], [{"0": {"file": 0, "offset": 0, "count": 10}}])
    (lod / "0_0").symlink_to(outside, target_is_directory=True)
    case("streamed_unit_link_out", ["convert", lod, tmp / "out2.ply"], "lod-meta.json")
    # 4. .m3 scene references: absolute, climbing, hash-less, /proc
    scene_ply = root / "m3" / "scene.ply"
    scene_ply.parent.mkdir()
    sio.write_scene(_memory().scene.replace(extras={}), scene_ply)
    sha = __import__("hashlib").sha256(scene_ply.read_bytes()).hexdigest()
    m = root / "m3"
    _m3_with_ref(m / "abs.m3", str(secret), None)
    for cmd in (["info"], ["memory", "render"], ["view"]):
        extra = {"info": [], "memory": ["-o", tmp / "feat.npy"], "view": ["--port", "0"]}[cmd[0]]
        case(f"m3_absolute_ref_{cmd[-1]}", cmd + [m / "abs.m3"] + extra, "abs.m3")
    _m3_with_ref(m / "abs_hashed.m3", str(scene_ply), sha)  # a valid hash does not make an absolute path fine
    case("m3_absolute_ref_hashed", ["info", m / "abs_hashed.m3"], "abs_hashed.m3")
    _m3_with_ref(m / "climb.m3", "../../secret.txt", sha)
    case("m3_climbing_ref", ["info", m / "climb.m3"], "climb.m3")
    _m3_with_ref(m / "nohash.m3", "scene.ply", "")
    case("m3_empty_sha", ["info", m / "nohash.m3"], "nohash.m3")
    _m3_with_ref(m / "nullhash.m3", "scene.ply", None)
    case("m3_null_sha", ["memory", "query", m / "nullhash.m3", "--pixel", "1,1", "-o", tmp / "q.png"], "nullhash.m3")
    _m3_with_ref(m / "proc.m3", "/proc/self/environ", "0" * 64)
    case("m3_proc_environ", ["info", m / "proc.m3"], "proc.m3")
    (m / "link_scene.ply").symlink_to(secret)
    _m3_with_ref(m / "linked.m3", "link_scene.ply", sha)
    case("m3_ref_symlink_out", ["info", m / "linked.m3"], "linked.m3")
    _m3_with_ref(m / "wrong.m3", "scene.ply", "ab" * 32)
    case("m3_wrong_sha", ["info", m / "wrong.m3"], "wrong.m3")
    # 5. a 7 KB checkpoint holding stride-0 tensors of 400 M rows
    (root / "stride0").mkdir()
    _stride0_checkpoint(root / "stride0" / "step-000000001.ckpt")
    case("checkpoint_stride0", ["info", root / "stride0" / "step-000000001.ckpt"], "step-000000001.ckpt")
    # 6. streamed SOG with repeated references
    unit = _sog(root / "repeat_unit" / "0_0", n=300)
    case("streamed_same_unit_10000", ["info", _lod(unit.parent, ["0_0/meta.json"] * 10_000,
                                                   [{"0": {"file": i, "offset": 0, "count": 300}} for i in range(10_000)])],
         "lod-meta.json")
    rows = _lod(root / "repeat_rows", ["0_0/meta.json"], [{"0": {"file": 0, "offset": 0, "count": 300}}] * 20_000)
    _sog(rows / "0_0", n=300)
    case("streamed_same_rows_20000", ["info", rows], "lod-meta.json")
    alias = _lod(root / "alias_unit", ["0_0/meta.json", "0_1/meta.json"],
                 [{"0": {"file": 0, "offset": 0, "count": 40}}, {"0": {"file": 1, "offset": 0, "count": 40}}])
    _sog(alias / "0_0")
    (alias / "0_1").symlink_to("0_0", target_is_directory=True)
    case("streamed_unit_alias", ["info", alias], "lod-meta.json")
    # 7. a NUL byte in a lod-meta.json file name
    case("streamed_nul_name", ["info", _lod(root / "nul", ["0_0/meta\u0000.json"],
                                            [{"0": {"file": 0, "offset": 0, "count": 1}}])], "lod-meta.json")
    # 8. a 100,000-digit sh_degree in config.yml; a 100,000-digit integer in lod-meta.json
    r = _run_folder(root / "long_config")
    (r / "config.yml").write_text("pipeline:\n  model:\n    sh_degree: " + "9" * 100_000 + "\n")
    case("config_long_sh_degree", ["info", r], "config.yml")
    lod = root / "long_int"
    lod.mkdir()
    (lod / "lod-meta.json").write_text('{"lodLevels": ' + "1" * 100_000 + ', "filenames": [], "tree": {}}')
    case("streamed_long_integer", ["info", lod], "lod-meta.json")
    # 9. a flipped bit in an .m3 PROJ chunk (CRC fixed)
    _m3_proj_bitflip(m / "proj.m3")
    case("m3_proj_bitflip", ["info", m / "proj.m3"], "proj.m3")
    # camera files beside an asset that lead out of its folder
    r = _run_folder(root / "link_dataparser")
    (r / "dataparser_transforms.json").symlink_to(secret)
    (tmp / "cams.json").write_text(json.dumps([{"width": 8, "height": 8, "fx": 8, "fy": 8, "position": [0, 0, -3],
                                                "rotation": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}]))
    case("dataparser_link_out", ["render", r, "--cameras", tmp / "cams.json", "-o", tmp / "views"],
         "dataparser_transforms.json")
    d = root / "link_cameras"
    d.mkdir()
    sio.write_scene(GaussianScene.random(50, seed=2), d / "scene.ply")
    (d / "cameras.json").symlink_to(secret)
    case("cameras_beside_link_out", ["compress", d / "scene.ply", "-o", tmp / "x.lgs"], "cameras.json")
    return cases, [str(secret.resolve()), "/dev/zero"]


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    cases, never = build_cases(tmp)
    (tmp / "cases.json").write_text(json.dumps(cases))
    (tmp / "never.json").write_text(json.dumps(never))
    env = dict(os.environ, COLUMNS="200")
    env.pop("SPLAT_DEBUG", None)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp / "cases.json"), str(tmp / "never.json"),
                           str(CASE_SECONDS)], capture_output=True, text=True, env=env, cwd=tmp,
                          preexec_fn=_cap_address_space, timeout=CASE_SECONDS * len(cases) + 120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    return {c["name"]: (c, results[c["name"]]) for c in cases}, tmp, proc.stderr


CASE_NAMES = [
    "sog_texture_dev_zero", "checkpoint_dev_zero", "config_dev_zero", "sog_texture_fifo", "checkpoint_fifo",
    "streamed_unit_fifo", "sog_texture_link_out", "sog_texture_link_secret", "streamed_unit_link_out",
    "m3_absolute_ref_info", "m3_absolute_ref_render", "m3_absolute_ref_view", "m3_absolute_ref_hashed", "m3_climbing_ref", "m3_empty_sha",
    "m3_null_sha", "m3_proc_environ", "m3_ref_symlink_out", "m3_wrong_sha", "checkpoint_stride0",
    "streamed_same_unit_10000", "streamed_same_rows_20000", "streamed_unit_alias", "streamed_nul_name",
    "config_long_sh_degree", "streamed_long_integer", "m3_proj_bitflip", "dataparser_link_out",
    "cameras_beside_link_out",
]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_asset_exits_2_naming_the_file(cli_results, name):
    cases, _, _ = cli_results
    case, res = cases[name]
    text = res["out"] + res["err"]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert res["rc"] == 2, (case["argv"], res)
    assert len(lines) == 1 and lines[0].startswith("error:"), text
    assert case["names"] in lines[0], (case["names"], text)
    assert "Traceback" not in text and "internal error" not in text
    assert res["seconds"] < CASE_SECONDS, res["seconds"]
    assert res["opened"] == [], f"opened {res['opened']}"  # neither the secret nor /dev/zero was ever opened


def test_no_output_ever_holds_the_secret(cli_results):
    cases, tmp, child_stderr = cli_results
    assert set(cases) == set(CASE_NAMES)
    for case, res in cases.values():
        assert SECRET not in res["out"] + res["err"], case["name"]
    assert SECRET not in child_stderr
    written = [p for p in tmp.rglob("*") if p.is_file() and not p.is_symlink() and p.name != "secret.txt"
               and not p.name.endswith((".webp", ".ckpt"))]
    for p in written:
        if p.stat().st_size < 64 << 20:
            assert SECRET.encode() not in p.read_bytes(), p
    # nothing was written for a refused input
    assert not any((tmp / n).exists() for n in ("out1.ply", "out2.ply", "feat.npy", "q.png", "x.lgs", "views"))


# ---------------------------------------------------------------------- the helper itself (API)
def test_resolve_inside_refuses_names_leaving_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.bin").write_bytes(b"abc")
    (tmp_path / "out.bin").write_bytes(b"secret")
    (root / "up").symlink_to(tmp_path, target_is_directory=True)
    (root / "link.bin").symlink_to("sub/a.bin")
    assert resolve_inside(root, "sub/a.bin") == (root / "sub" / "a.bin").resolve()
    assert resolve_inside(root, "link.bin") == (root / "sub" / "a.bin").resolve()  # a link inside is fine
    assert resolve_inside(root, "sub/../sub/a.bin").name == "a.bin"
    for bad, why in (("../out.bin", "outside"), ("up/out.bin", "outside"), (str(tmp_path / "out.bin"), "absolute"),
                     ("a\x00b", "invalid"), ("", "invalid")):
        with pytest.raises(FormatError, match=why):
            resolve_inside(root, bad, owner=root / "index.json")
    (root / "loop").symlink_to("loop")
    with pytest.raises(FormatError):
        read_regular("loop", root=root)


def test_read_regular_bounds_and_kinds(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 100)
    assert read_regular(f) == b"x" * 100
    assert read_regular("f.bin", 100, root=tmp_path) == b"x" * 100
    with pytest.raises(FormatError, match="larger than the 99 bytes"):
        read_regular(f, 99)
    os.mkfifo(tmp_path / "p")
    with pytest.raises(FormatError, match="a FIFO"):
        read_regular(tmp_path / "p")  # returns at once: opened non-blocking, refused by fstat
    with pytest.raises(FormatError, match="a FIFO"):
        stat_regular("p", root=tmp_path)
    with pytest.raises(FormatError, match="a device"):
        read_regular("/dev/zero", 10)
    with pytest.raises(FormatError, match="a directory"):
        read_regular(tmp_path)
    with pytest.raises(FormatError, match="no such file"):
        read_regular("missing", root=tmp_path)


def test_m3_reference_rules_in_the_api(tmp_path):
    from compress.memory.m3file import read_m3, write_m3
    from splat.errors import UsageError

    mem = _memory()
    (tmp_path / "scenes").mkdir()
    (tmp_path / "m3").mkdir()
    sio.write_scene(mem.scene.replace(extras={}), tmp_path / "scenes" / "s.ply")
    # the writer refuses a reference its readers would refuse, unless told
    with pytest.raises(UsageError, match="not in the .m3's folder"):
        write_m3(mem, tmp_path / "m3" / "x.m3", embed_scene=False, scene_path=tmp_path / "scenes" / "s.ply")
    write_m3(mem, tmp_path / "m3" / "x.m3", embed_scene=False, scene_path=tmp_path / "scenes" / "s.ply",
             allow_outside_ref=True)
    with pytest.raises(FormatError, match="leads outside"):
        read_m3(tmp_path / "m3" / "x.m3")
    back = read_m3(tmp_path / "m3" / "x.m3", allow_outside_ref=True)  # the user means it: hash still checked
    assert torch.equal(back.scene.means, mem.scene.means) and back.scene_ref == "../scenes/s.ply"
    (tmp_path / "scenes" / "s.ply").write_bytes((tmp_path / "scenes" / "s.ply").read_bytes() + b"\0")
    with pytest.raises(FormatError, match="SHA-256"):
        read_m3(tmp_path / "m3" / "x.m3", allow_outside_ref=True)
    # inside the folder: read without any option
    sio.write_scene(mem.scene.replace(extras={}), tmp_path / "m3" / "inside.ply")
    write_m3(mem, tmp_path / "m3" / "in.m3", embed_scene=False, scene_path=tmp_path / "m3" / "inside.ply")
    assert len(read_m3(tmp_path / "m3" / "in.m3").scene) == len(mem.scene)


def test_checkpoint_views_are_checked_before_conversion(tmp_path):
    from splat.io import nerfstudio

    scene = GaussianScene.random(20, sh_degree=1, seed=1)
    state = nerfstudio.state_dict(scene)
    key = nerfstudio.PREFIXES[0] + "means"
    base = torch.arange(24, dtype=torch.float32)
    state[key] = base.as_strided((20, 3), (1, 1))  # overlapping rows of a 24-float storage
    buf = __import__("io").BytesIO()
    torch.save({"step": 0, "pipeline": state}, buf)
    with pytest.raises(FormatError, match="overlapping"):
        nerfstudio.decode(buf.getvalue(), "x.ckpt")
    state[key] = scene.means.t().contiguous().t()  # a transposed but dense view is fine
    buf = __import__("io").BytesIO()
    torch.save({"step": 0, "pipeline": state}, buf)
    assert torch.equal(nerfstudio.decode(buf.getvalue(), "x.ckpt").means, scene.means)
