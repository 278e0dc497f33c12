"""The fine-tuned loop's first prune ratio from render-only probes, and a first round that
misses bisecting towards no pruning (compress/scene/recover.py), on fruit_drops."""
from __future__ import annotations

import math

import pytest

from compress.scene.eval import fidelity, render_views
from compress.scene.prune import prune
from compress.scene.recover import RecoverPlan, estimate_start, prune_recover
from compress.scene.views import split_views
from conftest import shared_file


@pytest.fixture(scope="module")
def fruit():
    from compress.scene.significance import significance
    from splat.io import read_scene

    scene = read_scene(shared_file("scenes", "fruit_drops_sh3.ply"))
    views = split_views(scene, None, max_side=64, n_train=6, n_heldout=3)
    return scene, views, significance(scene, views.train, backend="cpu"), render_views(scene, views.heldout, backend="cpu")


def test_the_estimate_is_the_edge_of_the_render_only_fidelity(fruit):
    scene, views, scores, ref = fruit
    probes: list[tuple[float, float]] = []
    target = 35.0
    r = estimate_start(scene, scores, ref, views.heldout, target, backend="cpu", on_probe=lambda a, b: probes.append((a, b)))
    assert len(probes) == 5 and 0.0 < r <= 0.97
    held = [a for a, b in probes if b >= target]
    assert r == pytest.approx(max(held))  # the largest probe that held ...
    assert all(b < target for a, b in probes if a > r + 1e-9)  # ... and every larger one missed
    # independent check of the fidelity at the returned ratio
    assert fidelity(ref, prune(scene, scores, r)[0], views.heldout, backend="cpu", with_ssim=False).psnr >= target
    # an unreachable target prunes nothing; a trivial one prunes as far as allowed (in 5 halvings)
    assert estimate_start(scene, scores, ref, views.heldout, 1e9, backend="cpu") == 0.0
    easy = estimate_start(scene, scores, ref, views.heldout, -1.0, max_prune=0.9, backend="cpu")
    assert 0.0 < 1.0 - math.log(1 - easy) / math.log(0.1) < 1 / 32 + 1e-9


def test_a_first_round_that_misses_bisects_towards_no_pruning(fruit):
    from compress.scene.distill import render_targets
    from compress.scene.rate import level_config
    from compress.scene.views import pseudo_views

    scene, views, scores, ref = fruit
    pv = [c.scaled(0.5) for c in pseudo_views(scene, views.train)]
    targets = render_targets(scene, pv, backend="cpu")
    # the miss at 0.96 is certain at 80 dB; the bisection then tries 1 - sqrt(0.04) = 0.8, then 1 - sqrt(0.2)
    plan = RecoverPlan(target_psnr=80.0, start=0.96, max_prune=0.97, steps=2, refine=2)
    best, trials = prune_recover(scene, scores, scene, pv, targets, ref, views.heldout, level_config(1), plan,
                                 backend="cpu")
    assert best is None
    assert [round(t.prune, 4) for t in trials] == [0.96, 0.8, round(1 - math.sqrt(0.2), 4)]
