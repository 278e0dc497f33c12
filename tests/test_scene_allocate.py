"""Bit allocation for --target-psnr without pruning, and the render sensitivity behind its classes."""
from __future__ import annotations

from dataclasses import replace

import torch

from compress.container import unpack_container
from compress.scene.codec import MAGIC, QuantConfig, encode
from compress.scene.eval import render_views
from compress.scene.rate import ALLOCATED, allocate
from compress.scene.sensitivity import ATTRIBUTES, error_weights, render_sensitivity
from compress.scene.views import split_views
from splat import GaussianScene


def _small():
    scene = GaussianScene.random(1500, sh_degree=0, seed=11, scale_range=(0.02, 0.15))
    views = split_views(scene, None, max_side=48, n_train=4, n_heldout=3)
    return scene, views


def test_render_sensitivity_sees_only_what_the_views_see():
    scene, views = _small()
    hidden = scene.replace(opacity_logits=torch.cat([scene.opacity_logits[:-1], torch.tensor([-30.0])]))
    sens = render_sensitivity(hidden, views.train)
    assert set(sens) == set(ATTRIBUTES)
    for k in ATTRIBUTES:
        assert sens[k].shape == (len(scene),) and (sens[k] >= 0).all()
        assert sens[k][-1] == 0 and sens[k][:-1].sum() > 0  # a Gaussian below the blending threshold has no weight
    w = error_weights(sens, {"log_scales": 0.1, "quats": 0.01, "sh_dc": 0.02})
    assert torch.allclose(w, sens["log_scales"] * 0.01 / 12 + sens["quats"] * 1e-4 / 12 + sens["sh_dc"] * 4e-4 / 12)


def test_allocate_meets_the_target_with_fewer_bytes_than_uniform_bits():
    scene, views = _small()
    ref = render_views(scene, views.heldout)
    best, trials = allocate(scene, None, 45.0, ref, views.heldout, base=QuantConfig(sh_codebook=64),
                            cameras=views.train, max_trials=4)
    assert best is not None and best.fidelity.psnr >= 45.0 and trials
    assert all(t.psnr < 45.0 or t.bytes >= len(best.data) for t in trials)  # the smallest passing trial is kept
    cfg = best.config
    assert all(ALLOCATED[k][2] <= getattr(cfg, k) <= ALLOCATED[k][3] for k in ALLOCATED)
    box = unpack_container(best.data, magic=MAGIC)
    assert box.version == 3 and "drops" in box.header["precision"]
    # the same target with every attribute at the finest depth the allocation chose costs more
    top = max(getattr(cfg, k) for k in ALLOCATED if k != "position_bits")
    uniform, _ = encode(scene, None, replace(cfg, scale_bits=top, rotation_bits=top, opacity_bits=top, dc_bits=top,
                                             max_drop=0))
    assert len(best.data) < len(uniform)


def test_allocate_reaches_the_coarsest_depths_without_invalid_settings():
    scene, views = _small()
    ref = render_views(scene, views.heldout)
    best, _ = allocate(scene, None, 12.0, ref, views.heldout, base=QuantConfig(sh_codebook=64), cameras=views.train,
                       max_trials=3, max_steps=1)  # a low target drives bit depths towards their floors
    assert best is not None and best.fidelity.psnr >= 12.0
    assert min(getattr(best.config, k) for k in ALLOCATED) <= 4


def test_reprobe_replaces_only_unmeasurable_errors():
    from compress.scene.rate import _reprobe

    added = {k: 1e-6 for k in ALLOCATED}
    added["opacity_bits"] = 0.0  # e.g. 8-bit opacity stored by the source: exact at the probe depth
    calls = []

    def probe(name, bits):
        calls.append((name, bits))
        return 3.2e-5

    out = _reprobe(added, 1e-4, probe)
    assert calls == [("opacity_bits", ALLOCATED["opacity_bits"][1] - 2)]
    assert out["opacity_bits"] == 2e-6 and all(out[k] == 1e-6 for k in ALLOCATED if k != "opacity_bits")
