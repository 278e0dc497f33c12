"""File formats: real shared scenes, round trips with stated error bounds, PLY variants, registry."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_file
from io_helpers import field_errors, max_errors

import splat.io as sio
from splat import SH_C0, FormatError, GaussianScene, UsageError
from splat.io import FormatSpec, dotsplat, ply, sog, spz
from splat.io.sog import morton_order

SCENES = [
    # file, format, count, SH degree
    ("scenes/biker.spz", "spz", 152_746, 0),
    ("scenes/fruit_drops_sh3.ply", "ply", 4_721, 3),
    ("scenes/donut_sh0.ply", "ply", 45_624, 0),
    ("scenes/guitar.compressed.ply", "compressed-ply", 90_854, 0),
    ("scenes/test64_sh.compressed.ply", "compressed-ply", 64, 3),
    ("scenes/plant.splat", "splat", 113_648, 0),
    ("video/wave/wave_0001.sog", "sog", 4_225, 0),
]

# ----------------------------------------------------------------------------------
# Quantisation bounds of each lossy format, as we write and read it (see docs/formats/README.md).
HALF_U8 = 0.5 / 255  # an 8-bit value in [0,1] rounds to within half a step
SPLAT_BOUNDS = {"means": 0.0, "log_scales": 1e-6, "opacity": HALF_U8 + 1e-7, "rgb": HALF_U8 + 1e-6,
                "quat": 1.0 / 128 + 1e-6}
SPZ_BOUNDS = {"means": 0.5 / 4096 + 1e-6, "log_scales": 1 / 32 + 1e-6, "opacity": HALF_U8 + 1e-7,
              "dc": 0.5 / (0.15 * 255) + 1e-6, "quat": 2e-3,
              "sh1": (0.5 + 4) / 128 + 1e-6, "sh_rest": (0.5 + 8) / 128 + 1e-6}


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sio.FormatWarning)
        return fn(*a, **k)


def _plausible(scene: GaussianScene, name: str) -> None:
    assert len(scene) > 0
    scene.check_finite()
    qn = scene.quats.norm(dim=1)
    assert float(qn.min()) > 1e-3, f"{name}: degenerate rotation"
    op = scene.opacities
    assert 0.05 < float(op.mean()) < 0.95, f"{name}: mean opacity {float(op.mean())}"
    rgb = scene.colors.median(dim=0).values
    assert ((rgb > -0.05) & (rgb < 1.05)).all(), f"{name}: median colour {rgb}"
    lo, hi = scene.bounds(quantile=0.01)
    diag = float((hi - lo).norm())
    assert 0.05 < diag < 1000, f"{name}: robust extent {diag}"
    med_scale = float(scene.scales.median())
    assert 1e-5 * diag < med_scale < 0.1 * diag, f"{name}: median scale {med_scale} for extent {diag}"


@pytest.mark.parametrize("rel,fmt,count,degree", SCENES, ids=[s[0].split("/")[-1] for s in SCENES])
def test_shared_scene_reads_plausibly(rel, fmt, count, degree):
    path = shared_file(*rel.split("/"))
    assert sio.detect_format(path) == fmt
    scene = sio.read_scene(path)
    assert len(scene) == count and scene.sh_degree == degree
    _plausible(scene, rel)


def test_every_wave_frame_reads():
    folder = shared_file("video", "wave")
    frames = sorted(folder.glob("wave_*.sog"))
    assert len(frames) == 200
    centres = []
    for f in frames:
        s = sio.read_scene(f)
        assert len(s) == 4225 and s.sh_degree == 0
        s.check_finite()
        centres.append(s.means.mean(0))
    # an animated 65x65 grid: every frame centred near the same place, none identical to the next
    c = torch.stack(centres)
    assert float((c - c.mean(0)).norm(dim=1).max()) < 0.5


def test_fruit_drops_extras_and_normals():
    s = sio.read_scene(shared_file("scenes", "fruit_drops_sh3.ply"))
    assert list(s.extras) == ["transform"]  # normals are all zero there, so not kept
    assert s.extras["transform"].shape == (4721,) and s.extras["transform"].dtype == torch.float32


def test_spz_is_read_in_ply_axes():
    """biker.spz stores RUB (y up) with the rider standing on y=0; in our RDF frame that floor is max y."""
    s = sio.read_scene(shared_file("scenes", "biker.spz"))
    lo, hi = s.bounds()
    assert abs(float(hi[1])) < 1e-6 and float(lo[1]) < -3.0
    raw = spz.read(shared_file("scenes", "biker.spz"), coordinate_system="rdf")
    assert torch.equal(raw.means[:, 1], -s.means[:, 1]) and torch.equal(raw.means[:, 0], s.means[:, 0])


# ---------------------------------------------------------------------------------- PLY
def _scene_with_extras(n=300, degree=2, seed=1) -> GaussianScene:
    s = GaussianScene.random(n, sh_degree=degree, seed=seed)
    g = torch.Generator().manual_seed(seed)
    return s.with_extras(
        feat=torch.randn(n, 4, generator=g),
        weight=torch.rand(n, generator=g, dtype=torch.float64),
        label=torch.randint(0, 255, (n,), generator=g, dtype=torch.uint8),
        index=torch.arange(n, dtype=torch.int32),
        normal=torch.randn(n, 3, generator=g),
    )


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_ply_round_trip_is_bit_exact(tmp_path, degree):
    s = _scene_with_extras(degree=degree)
    sio.write_scene(s, tmp_path / "a.ply")
    back = sio.read_scene(tmp_path / "a.ply")
    assert back.equal(s)
    assert back.extras["weight"].dtype == torch.float64 and back.extras["label"].dtype == torch.uint8


@pytest.mark.parametrize("name", ["fruit_drops_sh3.ply", "donut_sh0.ply"])
def test_ply_real_file_round_trip_is_bit_exact(tmp_path, name):
    s = sio.read_scene(shared_file("scenes", name))
    data = ply.encode(s)
    again = ply.decode(data)
    assert again.equal(s)
    assert ply.encode(again) == data


def test_ply_reader_matches_plyfile_on_real_file():
    plyfile = pytest.importorskip("plyfile")
    path = shared_file("scenes", "fruit_drops_sh3.ply")
    v = plyfile.PlyData.read(str(path))["vertex"].data
    s = sio.read_scene(path)
    assert np.array_equal(s.means.numpy(), np.stack([v["x"], v["y"], v["z"]], 1))
    assert np.array_equal(s.quats.numpy(), np.stack([v[f"rot_{i}"] for i in range(4)], 1))
    assert np.array_equal(s.opacity_logits.numpy(), v["opacity"])
    rest = np.stack([v[f"f_rest_{i}"] for i in range(45)], 1).reshape(-1, 3, 15)
    assert np.array_equal(s.sh_rest.numpy(), rest.transpose(0, 2, 1))  # f_rest is channel-major
    assert np.array_equal(s.extras["transform"].numpy(), v["transform"])


@pytest.mark.parametrize("text,byte_order", [(True, "="), (False, ">"), (False, "<")])
def test_ply_ascii_and_big_endian_written_by_plyfile(tmp_path, text, byte_order):
    plyfile = pytest.importorskip("plyfile")
    s = GaussianScene.random(50, sh_degree=1, seed=4)
    names = (["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(9)]
             + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    cols = [s.means, s.sh_dc, s.sh_rest.transpose(1, 2).reshape(50, 9), s.opacity_logits[:, None], s.log_scales, s.quats]
    table = torch.cat(cols, 1).numpy()
    # double precision and a shuffled property order must be tolerated too
    arr = np.empty(50, dtype=[(n, "f8") for n in reversed(names)])
    for i, n in enumerate(names):
        arr[n] = table[:, i]
    el = plyfile.PlyElement.describe(arr, "vertex")
    path = tmp_path / "v.ply"
    plyfile.PlyData([el], text=text, byte_order=byte_order).write(str(path))
    back = sio.read_scene(path)
    assert back.equal(s.replace(extras={}))


def test_ply_without_normals_or_rest(tmp_path):
    s = GaussianScene.random(20, sh_degree=0)
    data = ply.encode(s).replace(b"property float nx\nproperty float ny\nproperty float nz\n", b"")
    # drop the 12 normal bytes from every 17-float row to keep the file consistent
    header, body = data.split(b"end_header\n")
    rows = np.frombuffer(body, "<f4").reshape(20, 17)
    path = tmp_path / "n.ply"
    path.write_bytes(header + b"end_header\n" + np.delete(rows, [3, 4, 5], axis=1).tobytes())
    assert sio.read_scene(path).equal(s)


# ---------------------------------------------------------------------------------- .splat
def test_splat_round_trip_within_bounds(tmp_path):
    s = GaussianScene.random(2000, sh_degree=0, seed=2)
    s = s.replace(sh_dc=s.sh_dc.clamp(-0.5 / SH_C0, 0.5 / SH_C0))  # .splat clamps colours to [0,1]
    sio.write_scene(s, tmp_path / "a.splat")
    assert (tmp_path / "a.splat").stat().st_size == 32 * 2000
    err = max_errors(s, sio.read_scene(tmp_path / "a.splat"))
    for k, bound in SPLAT_BOUNDS.items():
        assert err[k] <= bound, (k, err[k], bound)


def test_splat_real_file_re_encodes_within_one_step():
    s = sio.read_scene(shared_file("scenes", "plant.splat"))
    again = dotsplat.decode(dotsplat.encode(s))
    err = max_errors(s, again)
    assert err["means"] == 0 and err["rgb"] < 1e-6 and err["opacity"] < 1e-6 and err["log_scales"] < 1e-6
    assert err["quat"] <= SPLAT_BOUNDS["quat"]


def test_splat_warns_about_dropped_sh(tmp_path):
    with pytest.warns(sio.FormatWarning, match="SH degree 2 dropped"):
        sio.write_scene(GaussianScene.random(5, sh_degree=2), tmp_path / "a.splat")


# ---------------------------------------------------------------------------------- SPZ
def _spz_errors_within_bounds(ref: GaussianScene, got: GaussianScene) -> None:
    e = field_errors(ref, got)
    for k in ("means", "opacity", "dc", "quat"):
        assert float(e[k].max()) <= SPZ_BOUNDS[k], (k, float(e[k].max()))
    inside = (ref.log_scales > -10) & (ref.log_scales < 5.9)
    assert float(e["log_scales"][inside].max()) <= SPZ_BOUNDS["log_scales"]
    if ref.sh_degree:
        inside = ref.sh_rest.abs() < 0.95
        sh = e["sh_rest"]
        assert float(sh[:, :3][inside[:, :3]].max()) <= SPZ_BOUNDS["sh1"]
        if ref.sh_degree > 1:
            assert float(sh[:, 3:][inside[:, 3:]].max()) <= SPZ_BOUNDS["sh_rest"]


@pytest.mark.parametrize("version", [2, 3, 4])
@pytest.mark.parametrize("degree", [0, 1, 3])
def test_spz_round_trip_within_bounds(tmp_path, version, degree):
    s = GaussianScene.random(1500, sh_degree=degree, seed=version + degree, extent=3.0)
    s = s.replace(sh_dc=s.sh_dc.clamp(-3.3, 3.3), log_scales=s.log_scales.clamp(-9.9, 5.9))
    sio.write_scene(s, tmp_path / "a.spz", version=version)
    head = (tmp_path / "a.spz").read_bytes()[:4]
    assert head == (b"NGSP" if version == 4 else b"\x1f\x8b\x08\x00")
    got = sio.read_scene(tmp_path / "a.spz")
    if version == 2:  # v2 stores xyz in 8 bits each and derives w: coarse where w is small
        q = field_errors(s, got)["quat"]
        assert float(q.mean()) < 0.01 and float(q.max()) < 0.12
        got = got.replace(quats=s.unit_quats)
    _spz_errors_within_bounds(s, got)


def test_spz_real_file_re_encodes_losslessly():
    """Decoding biker.spz and packing it again reproduces the decoded values (v4 and v3).

    Exact for everything but the few rotations whose two largest components tie within
    the 10-bit precision: those may swap which component is dropped (still within bounds).
    """
    s = sio.read_scene(shared_file("scenes", "biker.spz"))
    for version in (4, 3):
        got = spz.decode(spz.encode(s, version=version))
        for name in ("means", "log_scales", "opacity_logits", "sh_dc"):
            assert torch.equal(getattr(got, name), getattr(s, name)), (version, name)
        changed = (got.quats != s.quats).any(1)
        assert int(changed.sum()) <= 1e-4 * len(s)
        assert float(field_errors(s, got)["quat"].max()) <= SPZ_BOUNDS["quat"]


def test_spz_coordinate_system_is_a_rotation():
    """RDF <-> RUB negates y and z: a 180-degree turn about x, applied to SH as well."""
    render_sh = pytest.importorskip("render.sh")
    s = GaussianScene.random(200, sh_degree=3, seed=7)
    data = spz.encode(s)
    rub = spz.decode(data, coordinate_system="rdf")  # what the file holds, unconverted
    ours = spz.decode(data)
    assert torch.allclose(rub.means, ours.means * torch.tensor([1.0, -1.0, -1.0]))
    dirs = torch.nn.functional.normalize(torch.randn(200, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    flip = torch.tensor([1.0, -1.0, -1.0])
    a = render_sh.eval_sh(3, ours.sh_coeffs, dirs)
    b = render_sh.eval_sh(3, rub.sh_coeffs, dirs * flip)
    assert torch.allclose(a, b, atol=1e-5)
    assert spz.decode(spz.encode(s, coordinate_system="rdf"), coordinate_system="rdf").means.allclose(
        s.means, atol=SPZ_BOUNDS["means"])


def test_spz_large_scene_lowers_fractional_bits():
    s = GaussianScene.random(100, extent=5000.0)
    data = spz.encode(s, version=4)  # a plain header: fractional bits at byte 13
    assert data[13] < 12
    got = spz.decode(data)
    assert float((got.means - s.means).abs().max()) <= 0.5 / (1 << data[13]) + 1e-3


def test_spz_unwritable_scene_leaves_no_file(tmp_path):
    s = GaussianScene.random(10, extent=1e8)
    with pytest.raises(UsageError, match="does not fit 24 bits"):
        sio.write_scene(s, tmp_path / "big.spz")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------- SOG
def _sog_check(ref: GaussianScene, got: GaussianScene) -> dict[str, float]:
    e = field_errors(ref, got)
    lg = torch.sign(ref.means) * torch.log1p(ref.means.abs())
    span = (lg.max(0).values - lg.min(0).values).double()
    # 16-bit log-space positions: |dx| <= (1+|x|) * (exp(step/2) - 1)
    bound = (1 + ref.means.double().abs()) * torch.expm1(span / 65535 / 2) + 1e-6
    assert (e["means"] <= bound).all()
    assert float(e["quat"].max()) <= 2.0 / 255 + 1e-3  # 8 bits over [-1/sqrt2, 1/sqrt2]
    assert float(e["opacity"].max()) <= HALF_U8 + 1e-6
    # 256-entry codebooks fitted to the data: small typical error, bounded worst case
    stats = {k: float(e[k].mean()) for k in ("log_scales", "dc")}
    assert stats["log_scales"] < 0.02 and float(e["log_scales"].max()) < 0.25
    assert stats["dc"] < 0.01 and float(e["dc"].max()) < 0.15
    if ref.sh_degree:
        rmse = float(e["sh_rest"].pow(2).mean().sqrt())
        stats["sh_rel_rmse"] = rmse / float(ref.sh_rest.pow(2).mean().sqrt())
        assert stats["sh_rel_rmse"] < 0.2
    return stats


def test_sog_round_trip_real_sh3_scene(tmp_path):
    s = sio.read_scene(shared_file("scenes", "fruit_drops_sh3.ply")).replace(extras={})
    sio.write_scene(s, tmp_path / "a.sog")
    got = sio.read_scene(tmp_path / "a.sog")
    ref = s[torch.from_numpy(morton_order(s.means.double().numpy()))]  # the writer sorts along a Morton curve
    _sog_check(ref, got)


def test_sog_folder_and_zip_agree(tmp_path):
    s = GaussianScene.random(700, sh_degree=1, seed=3)
    # a palette as large as the scene: the SH error is then only the 256-entry codebook's
    sio.write_scene(s, tmp_path / "a.sog", sort=False, palette_size=1024)
    sio.write_scene(s, tmp_path / "loose" / "meta.json", sort=False, palette_size=1024)
    assert sorted(p.name for p in (tmp_path / "loose").iterdir()) == [
        "means_l.webp", "means_u.webp", "meta.json", "quats.webp", "scales.webp", "sh0.webp",
        "shN_centroids.webp", "shN_labels.webp"]
    a = sio.read_scene(tmp_path / "a.sog")
    assert sio.detect_format(tmp_path / "loose") == "sog"
    assert sio.read_scene(tmp_path / "loose").equal(a)
    assert sio.read_scene(tmp_path / "loose" / "meta.json").equal(a)
    _sog_check(s, a)


def test_sog_real_file_re_encodes_within_bounds():
    s = sio.read_scene(shared_file("video", "wave", "wave_0001.sog"))
    got = sog_decode_bytes(sog.encode(s, sort=False))
    _sog_check(s, got)


def sog_decode_bytes(data: bytes) -> GaussianScene:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.sog"
        p.write_bytes(data)
        return sio.read_scene(p)


def test_sog_lossless_webp_keeps_rgb_under_zero_alpha(tmp_path):
    s = GaussianScene.random(64, seed=5)
    s = s.replace(opacity_logits=torch.full((64,), -30.0))  # alpha byte 0 everywhere
    sio.write_scene(s, tmp_path / "z.sog", sort=False)
    got = sio.read_scene(tmp_path / "z.sog")
    assert float((got.sh_dc - s.sh_dc).abs().max()) < 0.05


# ---------------------------------------------------------------------------------- chains
def test_format_chain_ply_splat_spz_sog(tmp_path):
    """ply -> spz -> sog -> splat -> ply: errors add up to no more than each format's bound."""
    s = GaussianScene.random(1200, sh_degree=0, seed=9)
    s = s.replace(sh_dc=s.sh_dc.clamp(-1.7, 1.7))
    cur = s
    for ext in ("ply", "spz", "sog", "splat", "ply"):
        _quiet(sio.write_scene, cur, tmp_path / f"c.{ext}", **({"sort": False} if ext == "sog" else {}))
        cur = sio.read_scene(tmp_path / f"c.{ext}")
    e = max_errors(s, cur)
    assert e["means"] < 1e-3 and e["opacity"] < 3 * HALF_U8 + 1e-6 and e["quat"] < 0.02
    assert e["rgb"] < 0.05 and e["log_scales"] < 0.2


def test_biker_through_every_writer(tmp_path):
    """The real SPZ scene written by every writer and read back agrees with the original decode."""
    s = sio.read_scene(shared_file("scenes", "biker.spz"))[:20000]
    for ext in ("ply", "splat", "spz", "sog"):
        _quiet(sio.write_scene, s, tmp_path / f"b.{ext}", **({"sort": False} if ext == "sog" else {}))
        got = sio.read_scene(tmp_path / f"b.{ext}")
        if ext in ("ply", "spz"):
            assert got.equal(s), ext
        elif ext == "splat":
            e = max_errors(s, got)
            assert e["means"] == 0 and e["opacity"] <= HALF_U8 and e["quat"] <= SPLAT_BOUNDS["quat"]
        else:
            _sog_check(s, got)


# ---------------------------------------------------------------------------------- registry
def test_detection_by_magic_then_extension(tmp_path):
    s = GaussianScene.random(10)
    (tmp_path / "looks_like.ply").write_bytes(spz.encode(s))
    assert sio.detect_format(tmp_path / "looks_like.ply") == "spz"
    (tmp_path / "legacy.bin").write_bytes(spz.encode(s, version=3))
    assert sio.detect_format(tmp_path / "legacy.bin") == "spz"
    (tmp_path / "raw.splat").write_bytes(dotsplat.encode(s))
    assert sio.detect_format(tmp_path / "raw.splat") == "splat"
    assert sio.detect_format(tmp_path / "new.compressed.ply") == "compressed-ply"  # not there: by extension
    (tmp_path / "x.unknown").write_bytes(b"\0" * 64)
    with pytest.raises(FormatError, match="unrecognised file format"):
        sio.detect_format(tmp_path / "x.unknown")
    with pytest.raises(UsageError, match="cannot tell the output format"):
        sio.write_scene(s, tmp_path / "out.xyz")
    with pytest.raises(UsageError, match="read-only"):
        sio.write_scene(s, tmp_path / "out.compressed.ply")
    with pytest.raises(UsageError, match="takes no option 'bogus'"):
        sio.write_scene(s, tmp_path / "out.spz", bogus=1)
    assert {f.name for f in sio.list_formats()} >= {"ply", "compressed-ply", "splat", "spz", "sog"}


class _EP:
    def __init__(self, name, obj):
        self.name, self.value, self._obj = name, f"fake:{name}", obj

    def load(self):
        if isinstance(self._obj, Exception):
            raise self._obj
        return self._obj


def test_plugin_formats_from_entry_points(tmp_path, monkeypatch):
    """Other packages register formats through the splat.formats entry-point group."""
    written = {}

    class Spec:  # any object with the spec attributes will do
        name = "toy"
        extensions = [".toy"]
        priority = 20

        @staticmethod
        def sniff(head):
            return head.startswith(b"TOY!")

        @staticmethod
        def reader(path, **opts):
            return ply.decode(Path(path).read_bytes()[4:], path)

        @staticmethod
        def writer(scene, path, **opts):
            written.update(opts)
            Path(path).write_bytes(b"TOY!" + ply.encode(scene))

    eps = [_EP("toy", lambda: Spec()), _EP("broken", ImportError("no such module"))]
    monkeypatch.setattr(sio, "entry_points", lambda group: eps if group == sio.ENTRY_POINT_GROUP else [])
    with pytest.warns(sio.FormatWarning, match="'broken' unavailable"):
        reg = sio.FormatRegistry(sio.builtin_formats(), plugins=True)
    assert reg.get("toy").origin.startswith("entry point toy")
    s = GaussianScene.random(7)
    reg.write(s, tmp_path / "a.toy", level=3)
    assert written == {"level": 3}
    (tmp_path / "a.toy").rename(tmp_path / "renamed.bin")
    assert reg.detect(tmp_path / "renamed.bin") == "toy"
    assert reg.read(tmp_path / "renamed.bin").equal(s)
    with pytest.raises(ValueError, match="already registered"):
        reg.register(FormatSpec("ply", (".ply",)))


def test_write_is_atomic_on_writer_failure(tmp_path):
    target = tmp_path / "keep.spz"
    target.write_bytes(b"old contents")
    bad = GaussianScene.random(3, extent=1e9)
    with pytest.raises(UsageError):
        sio.write_scene(bad, target)
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.spz"]


def test_empty_scene_round_trips(tmp_path):
    e = GaussianScene.empty(sh_degree=1)
    for ext in ("ply", "spz", "sog"):
        _quiet(sio.write_scene, e, tmp_path / f"e.{ext}")
        got = sio.read_scene(tmp_path / f"e.{ext}")
        assert len(got) == 0, ext
    # a .splat has no header: zero Gaussians would be an empty file, which readers reject
    with pytest.raises(ValueError, match="empty scene"):
        _quiet(sio.write_scene, e, tmp_path / "e.splat")
