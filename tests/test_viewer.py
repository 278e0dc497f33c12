"""Viewer logic without a browser: splat packing, selection, SH colour, the per-tab update
worker (coalescing, throttling, in-place updates, vanished clients), asset loading errors
and what the HTTP side serves."""
from __future__ import annotations

import math
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from splat.errors import FormatError, UsageError
from splat.scene import SH_C0, GaussianScene
from viewer.splat_layer import SplatLayer
from viewer.splats import (
    BYTES_PER_SPLAT,
    camera_moved,
    pack_buffer,
    prepare_splats,
    select_indices,
    view_colors,
)


# ---------------------------------------------------------------------- helpers
def unpack(buf: np.ndarray):
    """viser buffer -> (centres [M,3], cov upper triangle [M,6], rgba [M,4] uint8)."""
    centers = buf[:, 0:3].copy().view(np.float32)
    cov = buf[:, 4:7].copy().view(np.float16).astype(np.float32)
    rgba = buf[:, 7:8].copy().view(np.uint8).reshape(-1, 4)
    return centers, cov, rgba


class FakeHandle:
    def __init__(self, api):
        self.api = api

    @property
    def buffer(self):
        return self.api.buffers[-1]

    @buffer.setter
    def buffer(self, buf):
        if self.api.fail:
            raise RuntimeError("client disconnected")
        self.api.buffers.append(np.array(buf, copy=True))

    def remove(self):
        self.api.removed = True


class FakeSceneApi:
    """Records what a SplatLayer pushes (stands in for a viser client's SceneApi)."""

    def __init__(self):
        self.buffers: list[np.ndarray] = []
        self.adds = 0
        self.fail = False
        self.removed = False

    def add_gaussian_splats(self, name, centers, covariances, rgbs, opacities):
        self.adds += 1
        return FakeHandle(self)


def quat_to_mat_np(q):
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


# ---------------------------------------------------------------------- packing and selection
def test_pack_buffer_layout_matches_scene():
    scene = GaussianScene.random(64, sh_degree=0, seed=3)
    prep = prepare_splats(scene)
    idx = np.arange(0, 64, 3)
    rgb = prep.base_rgb[idx]
    buf = pack_buffer(prep, idx, rgb, splat_scale=1.5)
    assert buf.dtype == np.uint32 and buf.shape == (len(idx), 8) and buf.nbytes == BYTES_PER_SPLAT * len(idx)
    centers, cov, rgba = unpack(buf)
    np.testing.assert_array_equal(centers, scene.means.numpy()[idx])
    for j, i in enumerate(idx):  # covariance: R diag(s^2) R^T, scaled by 1.5^2, in float64 by hand
        R = quat_to_mat_np(scene.quats[i].double().numpy())
        S = np.diag(np.exp(scene.log_scales[i].double().numpy()) ** 2)
        full = 1.5**2 * R @ S @ R.T
        want = full[[0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]]
        np.testing.assert_allclose(cov[j], want, rtol=2e-3, atol=1e-6)
    want_rgb = np.clip(np.round(SH_C0 * scene.sh_dc.double().numpy()[idx] * 255 + 0.5 * 255), 0, 255)
    assert np.abs(rgba[:, :3].astype(int) - want_rgb).max() <= 1
    want_a = np.round(torch.sigmoid(scene.opacity_logits.double()).numpy()[idx] * 255)
    assert np.abs(rgba[:, 3].astype(int) - want_a).max() <= 1


def test_select_budget_threshold_and_ranking():
    scene = GaussianScene.random(500, seed=4)
    prep = prepare_splats(scene)
    assert np.array_equal(select_indices(prep), np.arange(500))
    top = select_indices(prep, budget=50)
    assert len(top) == 50 and np.all(np.diff(top) > 0)
    # the 50 kept are the 50 largest opacity x geometric-mean-scale^2
    sig = torch.sigmoid(scene.opacity_logits).numpy() * np.exp(scene.log_scales.numpy().mean(1)) ** 2
    assert set(top) == set(np.argsort(-sig)[:50])
    thr = select_indices(prep, opacity_threshold=0.7)
    assert np.array_equal(thr, np.flatnonzero(prep.opacities >= 0.7))
    both = select_indices(prep, opacity_threshold=0.7, budget=20)
    assert len(both) == 20 and set(both) <= set(thr)
    with pytest.raises(ValueError, match="contribution"):
        select_indices(prep, budget=10, ranking="contribution")
    prep.set_contribution(np.arange(500, dtype=np.float32))
    assert np.array_equal(select_indices(prep, budget=10, ranking="contribution"), np.arange(490, 500))


def test_view_colors_degree1_by_hand():
    scene = GaussianScene.random(40, sh_degree=1, seed=5)
    prep = prepare_splats(scene)
    cam = np.array([0.3, -2.0, 4.0])
    got = view_colors(prep, np.arange(40), cam)
    d = scene.means.double().numpy() - cam
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    x, y, z = d[:, 0:1], d[:, 1:2], d[:, 2:3]
    c1 = 0.4886025119029199
    r = scene.sh_rest.double().numpy()
    want = SH_C0 * scene.sh_dc.double().numpy() - c1 * y * r[:, 0] + c1 * z * r[:, 1] - c1 * x * r[:, 2] + 0.5
    np.testing.assert_allclose(got, np.clip(want, 0, 1), atol=0.5 / 255 + 1e-4)  # 8-bit colours
    # off, or no camera: the base colour
    np.testing.assert_allclose(view_colors(prep, np.arange(40), cam, sh=False), prep.base_rgb)
    assert not np.allclose(got, prep.base_rgb, atol=1e-3)


def test_camera_moved_thresholds():
    c = np.zeros(3)
    assert camera_moved(None, np.array([0, 0, 5.0]), c, 1.0)
    assert not camera_moved(np.array([0, 0, 5.0]), np.array([0, 0.01, 5.0]), c, 1.0)  # 0.11 deg, 0.01 < 0.02 r
    rot = np.array([5 * math.sin(math.radians(3)), 0, 5 * math.cos(math.radians(3))])
    assert camera_moved(np.array([0, 0, 5.0]), rot, c, 100.0)  # 3 deg turn
    assert camera_moved(np.array([0, 0, 5.0]), np.array([0, 0, 5.5]), c, 1.0)  # dolly > 2% of radius


# ---------------------------------------------------------------------- the per-tab worker
def make_layer(n=300, sh_degree=1, **kw):
    api = FakeSceneApi()
    prep = prepare_splats(GaussianScene.random(n, sh_degree=sh_degree, seed=6))
    layer = SplatLayer(api, "/splats", prep, camera_position=np.array([0, 0, 4.0]), **kw)
    return api, prep, layer


def test_layer_first_push_is_synchronous_and_updates_in_place():
    api, prep, layer = make_layer()
    try:
        assert len(api.buffers) == 1 and len(api.buffers[0]) == 300  # pushed before the constructor returns
        layer.update(budget=40)
        assert layer.flush(5)
        assert len(api.buffers[-1]) == 40 and layer.stats.shown == 40
        layer.update(splat_scale=2.0)
        assert layer.flush(5)
        _, cov2, _ = unpack(api.buffers[-1])
        _, cov1, _ = unpack(pack_buffer(prep, layer.indices, prep.base_rgb[layer.indices]))
        np.testing.assert_allclose(cov2, 4.0 * cov1, rtol=2e-3, atol=1e-6)
        new = prepare_splats(GaussianScene.random(120, sh_degree=1, seed=7))
        layer.set_splats(new)  # next "frame"
        assert layer.flush(5)
        assert api.adds == 1, "content must be replaced in place, not by new nodes"
        np.testing.assert_array_equal(unpack(api.buffers[-1])[0], new.means[layer.indices])
        assert layer.stats.bytes_sent == sum(b.nbytes for b in api.buffers)
    finally:
        layer.close()
    assert api.removed


def test_layer_coalesces_bursts_of_settings():
    api, prep, layer = make_layer(n=2000)
    try:
        for b in range(100, 2000, 10):  # a slider being dragged: 190 events
            layer.update(budget=b)
        assert layer.flush(10)
        assert len(api.buffers[-1]) == 1990
        assert len(api.buffers) < 60, f"{len(api.buffers)} pushes for one drag"
    finally:
        layer.close()


def test_layer_sh_refresh_follows_camera_and_is_throttled():
    api, prep, layer = make_layer(min_interval=0.25)
    try:
        n0 = len(api.buffers)
        t0 = time.monotonic()
        for k in range(40):  # orbit quickly through 40 positions within ~0.2 s
            a = math.radians(3 * (k + 1))
            layer.camera_changed(np.array([4 * math.sin(a), 0.0, 4 * math.cos(a)]))
            time.sleep(0.005)
        assert layer.flush(10)
        elapsed = time.monotonic() - t0
        refreshes = len(api.buffers) - n0
        assert 1 <= refreshes <= 1 + elapsed / 0.25 + 1, (refreshes, elapsed)
        last = np.array([4 * math.sin(math.radians(120)), 0.0, 4 * math.cos(math.radians(120))])
        _, _, rgba = unpack(api.buffers[-1])
        want = np.clip(view_colors(prep, layer.indices, last) * 255 + 0.5, 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(rgba[:, :3], want)  # the newest camera, not a stale one
        assert layer.stats.sh_refreshes == refreshes
        # SH off: camera motion no longer pushes anything
        layer.update(sh=False)
        assert layer.flush(5)
        n1 = len(api.buffers)
        layer.camera_changed(np.array([0.0, 4.0, 0.0]))
        time.sleep(0.3)
        assert layer.flush(5) and len(api.buffers) == n1
        np.testing.assert_array_equal(unpack(api.buffers[-1])[2][:, :3],
                                      np.clip(prep.base_rgb[layer.indices] * 255 + 0.5, 0, 255).astype(np.uint8))
    finally:
        layer.close()


def test_layer_degree0_ignores_camera():
    api, prep, layer = make_layer(sh_degree=0)
    try:
        assert not layer.sh_active
        layer.camera_changed(np.array([3.0, 3.0, 3.0]))
        time.sleep(0.2)
        assert layer.flush(5) and len(api.buffers) == 1
    finally:
        layer.close()


def test_layer_survives_vanished_client():
    api, prep, layer = make_layer()
    api.fail = True  # the tab closed: every push raises
    layer.update(budget=10)
    layer.camera_changed(np.array([4.0, 0.0, 0.0]))
    assert layer.flush(5)
    assert layer.stats.errors >= 1 and "disconnected" in layer.stats.last_error
    assert layer._thread.is_alive()
    api.fail = False
    layer.update(budget=20)
    assert layer.flush(5) and len(api.buffers[-1]) == 20
    layer.close(remove=False)
    assert not layer._thread.is_alive()


# ---------------------------------------------------------------------- loading and hosting
def test_open_asset_errors(tmp_path):
    from viewer.assets import open_asset

    with pytest.raises(FormatError, match="not found"):
        open_asset(tmp_path / "missing.ply")
    (tmp_path / "junk.ply").write_bytes(b"not a splat file at all")
    with pytest.raises(FormatError):
        open_asset(tmp_path / "junk.ply")


def test_gsi_without_codec_is_a_clear_error(tmp_path):
    pytest.importorskip("viewer.image_view")
    try:
        import compress.image  # noqa: F401
        if hasattr(compress.image, "decode"):
            pytest.skip("the .gsi codec is installed; its files are covered by the browser tests")
    except ImportError:
        pass
    from viewer.assets import open_asset

    p = tmp_path / "x.gsi"
    p.write_bytes(b"GSI\x00garbage")
    with pytest.raises(FormatError, match="gsi"):
        open_asset(p)


def test_bad_host_is_a_usage_error_not_a_hang():
    from viewer.server import check_bindable

    t0 = time.monotonic()
    with pytest.raises(UsageError):
        check_bindable("203.0.113.7")  # TEST-NET-3: never an address of this machine
    with pytest.raises(UsageError):
        check_bindable("no-such-host.invalid")
    assert time.monotonic() - t0 < 20


def test_next_free_path_never_overwrites(tmp_path):
    from viewer.server import next_free_path

    a = next_free_path(tmp_path, "v")
    a.write_bytes(b"x")
    b = next_free_path(tmp_path, "v")
    assert a != b and not b.exists() and a.read_bytes() == b"x"


@pytest.fixture
def memory_server():
    from viewer.scene_view import scene_asset_from_memory
    from viewer.server import ViewerServer

    srv = ViewerServer(scene_asset_from_memory(GaussianScene.random(50, seed=1)), port=0, log=None,
                       measure_first_frame=False)
    yield srv
    srv.stop()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def test_serves_only_the_viewer_client(memory_server, tmp_path):
    srv = memory_server
    assert srv.host == "127.0.0.1" and srv.port > 0
    status, body = _get(srv.url + "/")
    assert status == 200 and b"<html" in body.lower()
    for path in ("/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd", "/tmp",
                 "/" + str(tmp_path).lstrip("/"), "/pyproject.toml"):
        assert _get(srv.url + path)[0] == 404, path


def test_server_binds_loopback_by_default(memory_server):
    """The listening socket is bound to 127.0.0.1, not to every interface."""
    import os

    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("needs Linux /proc/net/tcp to read listening addresses")
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in open(table).read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, port = local.split(":")
            if state == "0A" and int(port, 16) == memory_server.port:  # 0A = LISTEN
                listening.add(addr)
    assert listening == {"0100007F"}, listening  # 127.0.0.1, little-endian hex


def test_fast_sh_equals_toolkit_sh_degree3():
    from render.sh import sh_colors

    scene = GaussianScene.random(200, sh_degree=3, seed=8)
    prep = prepare_splats(scene)
    idx = np.arange(3, 200, 2)
    cam = np.array([-1.5, 0.7, 3.2])
    got = view_colors(prep, idx, cam)
    want = sh_colors(3, scene.sh_coeffs.double()[idx], scene.means.double()[idx],
                     torch.tensor(cam)[None])[0].clamp(0, 1).numpy()
    np.testing.assert_allclose(got, want, atol=0.5 / 255 + 1e-4)  # 8-bit colours


def test_fast_covariance_equals_torch_float64():
    from render.projection import covariance_3d
    from viewer._cov_kernel import cov_triu

    g = torch.Generator().manual_seed(3)
    quats = torch.randn(500, 4, generator=g, dtype=torch.float64) * 3.0  # not unit: normalised inside
    log_s = torch.empty(500, 3, dtype=torch.float64).uniform_(-9.0, 1.5, generator=g)
    want = covariance_3d(quats, log_s.exp()).reshape(-1, 9)[:, [0, 1, 2, 4, 5, 8]].numpy()
    got = cov_triu(quats.numpy(), log_s.numpy())
    scale2 = np.exp(2 * log_s.numpy()).max(axis=1, keepdims=True)  # the entries' natural size
    assert (np.abs(got - want) <= 2e-6 * scale2).all(), (np.abs(got - want) / scale2).max()


def test_fast_float16_bits_equal_numpy():
    from viewer._cov_kernel import to_float16_bits

    rng = np.random.default_rng(0)
    x = rng.standard_normal(20000) * 10.0 ** rng.uniform(-9, 5.2, 20000)
    halves = np.arange(65536, dtype=np.uint16).view(np.float16)
    halves = halves[np.isfinite(halves)].astype(np.float64)
    ties = (np.sort(halves)[:-1] + np.sort(halves)[1:]) / 2  # exactly between two halves: round to even
    special = [0.0, -0.0, 65504.0, 65519.0, 2.0**-25, 2.0**-24, 1.5 * 2.0**-24, 2.0**-14, np.inf, -np.inf]
    x = np.concatenate([special, halves, ties, x]).astype(np.float32)
    x = x[: len(x) // 6 * 6].reshape(-1, 6)  # shaped like covariance rows
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(to_float16_bits(x), x.astype(np.float16).view(np.uint16))
    assert np.isnan(to_float16_bits(np.array([np.nan], np.float32)).view(np.float16)).all()


def test_contribution_ranking_uses_rendered_blend_weight():
    from render import rasterize
    from viewer.scene_view import scene_asset_from_memory

    scene = GaussianScene.random(300, seed=9, scale_range=(0.02, 0.2))
    asset = scene_asset_from_memory(scene)
    done = threading.Event()
    errors = []
    asset.request_contribution(lambda err: (errors.append(err), done.set()))
    assert done.wait(120) and errors == [None]
    # the scores are the renderer's blend weights summed over the ranking views
    cams = asset.contribution_cameras()
    want = sum(rasterize(scene, c, sh_degree=0, return_stats=True).stats.blend_weight.double() for c in cams)
    np.testing.assert_allclose(asset.prepared.contribution, want.numpy(), rtol=1e-3, atol=1e-3)
    top = select_indices(asset.prepared, budget=30, ranking="contribution")
    assert set(top) == set(np.argsort(-want.numpy(), kind="stable")[:30])
    # asking again is immediate
    again = threading.Event()
    asset.request_contribution(lambda err: again.set())
    assert again.is_set()


def test_pack_buffer_never_sends_infinities():
    prep = prepare_splats(GaussianScene.random(20, seed=10, scale_range=(1.0, 50.0)))
    buf = pack_buffer(prep, np.arange(20), prep.base_rgb, splat_scale=1e4)
    _, cov, _ = unpack(buf)
    assert np.isfinite(cov).all() and cov.max() <= 65504


# ---------------------------------------------------------------------- websocket Origin check
def _ws_handshake(port: int, origin: str | None) -> str:
    """A raw websocket opening handshake; returns the status line of the answer."""
    import base64
    import os
    import socket

    import viser

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Protocol: viser-v{viser.__version__}\r\n"
               + (f"Origin: {origin}\r\n" if origin is not None else "") + "\r\n")
        s.sendall(req.encode())
        return s.recv(4096).split(b"\r\n", 1)[0].decode()


def test_websocket_refuses_foreign_origins():
    from viewer.scene_view import scene_asset_from_memory
    from viewer.server import ViewerServer

    lines: list[str] = []
    srv = ViewerServer(scene_asset_from_memory(GaussianScene.random(50, seed=1)), port=0, log=lines.append,
                       measure_first_frame=False, allow_origins=["https://Tools.Example.org/"])
    try:
        p = srv.port
        for bad in ("http://evil.example", "null", f"http://evil.example:{p}", f"http://127.0.0.1:{p + 1}",
                    f"https://127.0.0.1:{p}", "http://tools.example.org", "garbage"):
            assert " 403 " in _ws_handshake(p, bad), bad
        for good in (f"http://127.0.0.1:{p}", f"http://localhost:{p}", f"http://[::1]:{p}",
                     "https://tools.example.org", None):
            assert " 101 " in _ws_handshake(p, good), good
        assert srv.origins.refused == 7
        refused = [ln for ln in lines if "refused a websocket" in ln]
        assert len(refused) == 7 and "--allow-origin" in refused[0]
        # a connection dropped before its handshake is one log line, not a traceback
        import socket

        socket.create_connection(("127.0.0.1", p)).close()
        deadline = time.monotonic() + 10
        while not any("closed before its handshake" in ln for ln in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any("closed before its handshake" in ln for ln in lines)
        assert _get(srv.url + "/")[0] == 200  # plain HTTP (the page itself) is unaffected
    finally:
        srv.stop()


def test_allow_origin_is_validated():
    from splat.errors import UsageError
    from viewer.origin import normalise_origin, own_origins

    assert normalise_origin("HTTP://Example.com:80/") == "http://example.com"
    assert normalise_origin("http://[::1]:8080") == "http://[::1]:8080"
    for bad in ("example.com", "ftp://x", "http://x/path", "null", "http://x:99999"):
        with pytest.raises(UsageError, match="--allow-origin"):
            normalise_origin(bad)
    assert own_origins("127.0.0.1", 8080) == {"http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"}
    assert "http://192.168.1.5:8080" in own_origins("192.168.1.5", 8080)
