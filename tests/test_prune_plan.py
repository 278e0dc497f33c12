"""Pruning planned at a fidelity target (``compress.scene.prune_plan``) and its use in the
targeted path (``CompressSettings(plan_prune=True)``)."""
from __future__ import annotations

import math

import torch

from compress.scene.eval import fidelity, render_views
from compress.scene.pipeline import CompressSettings, compress_scene
from compress.scene.pipeline import plans
from compress.scene.prune_plan import plan_prune, relative_rate
from compress.scene.significance import significance
from compress.scene.views import split_views
from splat import GaussianScene


def _half_hidden(n: int = 1200, side: int = 48):
    """A random scene whose second half is fully transparent (it adds nothing to any render)."""
    scene = GaussianScene.random(n, sh_degree=0, seed=5, scale_range=(0.02, 0.15))
    logits = scene.opacity_logits.clone()
    logits[n // 2:] = -30.0
    scene = scene.replace(opacity_logits=logits)
    return scene, split_views(scene, None, max_side=side, n_train=4, n_heldout=3)


def test_relative_rate_prices_the_error_left_to_the_quantizers():
    assert abs(relative_rate(0.0, 100.0, 40.0) - 1.0) < 1e-6  # 100 dB: no error left to make up
    assert relative_rate(0.2, 40.0, 40.0) == math.inf and relative_rate(0.2, 39.0, 40.0) == math.inf
    # pruning error a quarter of the target's: 0.5 * log2(4/3) more bits on each 5-bit value
    assert abs(relative_rate(0.2, 40.0 + 10 * math.log10(4), 40.0, 5.0) - 0.8 * (1 + math.log2(4 / 3) / 10)) < 1e-12
    assert relative_rate(0.3, 50.0, 40.0) < relative_rate(0.2, 50.0, 40.0)  # same error, more pruned: fewer bytes


def test_the_plan_prunes_what_no_render_sees_and_stops_before_what_they_do():
    scene, views = _half_hidden()
    scores = significance(scene, views.train)
    ref = render_views(scene, views.heldout)
    plan = plan_prune(scene, scores, ref, views.heldout, 45.0)
    assert all(p >= 99.0 for r, p, _ in plan.probes if r <= 0.5)  # the hidden half costs nothing
    assert 0.45 < plan.ratio < 0.7 and plan.rate < 0.56  # all of it pruned, and no more than is worth it
    chosen = next(p for r, p, _ in plan.probes if r == plan.ratio)
    assert chosen > 45.0 and plan.probes[-1][0] > plan.ratio and plan.probes[-1][2] > plan.rate
    # nothing hidden and a target no pruning reaches: keep everything
    visible = GaussianScene.random(600, sh_degree=0, seed=6, scale_range=(0.05, 0.2))
    v = split_views(visible, None, max_side=48, n_train=4, n_heldout=3)
    none = plan_prune(visible, significance(visible, v.train), render_views(visible, v.heldout), v.heldout, 99.0)
    assert none.ratio == 0.0 and none.rate == 1.0


def test_targeted_compression_plans_its_pruning_by_default_and_still_lands():
    scene, _ = _half_hidden(1600, side=64)
    st = dict(target_psnr=40.0, max_side=64, train_views=4, heldout_views=3)
    assert plans(CompressSettings(**st)) and not plans(CompressSettings(plan_prune=False, **st))
    assert not plans(CompressSettings(prune=0.3, **st)) and not plans(CompressSettings(level=1, **st))
    assert not plans(CompressSettings())  # no target: the fine-tuned default path
    res = compress_scene(scene, CompressSettings(**st))
    assert 0.45 < res.prune < 0.7 and len(res.decoded) == len(scene) - int(res.prune * len(scene))
    assert any(n.startswith("prune plan") for n in res.notes)
    views = split_views(scene, None, max_side=64, n_train=4, n_heldout=3)
    measured = fidelity(render_views(scene, views.heldout), res.decoded, views.heldout, with_ssim=False).psnr
    assert 40.0 <= measured
    plain = compress_scene(scene, CompressSettings(prune=0.0, **st))
    assert len(res.data) < len(plain.data)
