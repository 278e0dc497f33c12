"""The compressor lets go of its input while the prune + fine-tune rounds run (the default path's
memory bound on large scenes), and reads it again where a round prunes it once more; the file is
the same as with the input held."""
from __future__ import annotations

import weakref

import numpy as np
import torch

import compress.scene.recover as recover
from compress.scene.pipeline import CompressSettings, compress_scene, handoff
from conftest import shared_file
from splat import GaussianScene

SMALL = dict(max_side=64, train_views=6, heldout_views=3, steps=4, max_seconds=None, backend="cpu")


def _arrays() -> dict[str, np.ndarray]:
    """Every second Gaussian of fruit_drops (SH 3), as numpy arrays (float32)."""
    from splat.io import read_scene

    scene = read_scene(shared_file("scenes", "fruit_drops_sh3.ply"))[::2]
    return {k: t.detach().numpy().copy() for k, t in scene.fields().items()}


def _scene(arrays: dict[str, np.ndarray], refs: list | None = None) -> GaussianScene:
    """A scene whose tensors own nothing: their memory is the numpy arrays (weakly referenced in
    ``refs``), so a dead reference means the memory was freed."""
    own = {k: a.copy() for k, a in arrays.items()}
    if refs is not None:
        refs += [weakref.ref(a) for a in own.values()]
    return GaussianScene(**{k: torch.from_numpy(a) for k, a in own.items()})


def test_the_input_is_released_while_fine_tuning_and_the_file_is_unchanged(monkeypatch):
    arrays = _arrays()
    st = CompressSettings(**SMALL)
    held = compress_scene(_scene(arrays), st)

    refs: list = []
    reads = []
    alive = []
    finetune = recover.finetune

    def spy(*a, **k):
        alive.append(sum(r() is not None for r in refs))
        return finetune(*a, **k)

    monkeypatch.setattr(recover, "finetune", spy)

    def read():
        reads.append(1)
        return _scene(arrays, refs)

    load = handoff(_scene(arrays, refs), read)
    released = compress_scene(load, st)
    assert alive and alive == [0] * len(alive), f"input arrays alive while fine-tuning: {alive}"
    assert released.data == held.data and released.prune == held.prune
    assert released.fidelity.psnr == held.fidelity.psnr
    assert released.input_count == len(arrays["means"]) and released.input_sh_degree == 3
    assert not reads  # every round held: the input was never needed again


def test_rounds_that_prune_the_input_again_read_it_again():
    """The first round misses: the bisection prunes the input again, through the loader."""
    from compress.scene.distill import render_targets
    from compress.scene.eval import render_views
    from compress.scene.rate import level_config
    from compress.scene.recover import RecoverPlan, prune_recover
    from compress.scene.significance import significance
    from compress.scene.views import pseudo_views, split_views

    arrays = _arrays()
    scene = _scene(arrays)
    views = split_views(scene, None, max_side=64, n_train=6, n_heldout=3)
    ref = render_views(scene, views.heldout, backend="cpu")
    scores = significance(scene, views.train, backend="cpu")
    pv = [c.scaled(0.5) for c in pseudo_views(scene, views.train)]
    targets = render_targets(scene, pv, backend="cpu")
    plan = RecoverPlan(target_psnr=200.0, start=0.5, steps=3, refine=2)  # never holds
    calls = []

    def source():
        calls.append(1)
        return scene

    args = (scores, scene, pv, targets, ref, views.heldout, level_config(1), plan)
    best, trials = prune_recover(source, *args, backend="cpu")
    assert best is None and len(trials) == 3 and len(calls) == 3  # the first round and two bisections
    _, again = prune_recover(scene, *args, backend="cpu")
    assert [(t.prune, t.bytes, t.psnr) for t in trials] == [(t.prune, t.bytes, t.psnr) for t in again]
