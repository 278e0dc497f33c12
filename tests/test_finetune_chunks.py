"""Fine-tuning in chunks of Gaussians: gradients and optimiser state for one chunk at a time."""
from __future__ import annotations

import torch

import compress.scene.distill as distill
from compress.scene.distill import FinetuneConfig, finetune, render_targets
from compress.scene.views import split_views
from splat import GaussianScene


def _setup(n: int = 1200):
    teacher = GaussianScene.random(n, sh_degree=1, seed=3, scale_range=(0.03, 0.15))
    g = torch.Generator().manual_seed(1)
    student = teacher.replace(sh_dc=teacher.sh_dc + 0.3 * torch.randn(teacher.sh_dc.shape, generator=g),
                              opacity_logits=teacher.opacity_logits - 0.5)
    views = split_views(teacher, None, max_side=40, n_train=6, n_heldout=3)
    return teacher, student, views


def _err(scene, views, target) -> float:
    return float(((render_targets(scene, views, backend="cpu") - target) ** 2).mean())


def test_chunks_hold_one_chunk_of_state_and_train_every_gaussian(monkeypatch):
    teacher, student, views = _setup()
    sizes = []
    real = distill._adam

    def spy(groups):
        sizes.append(max(p.shape[0] for grp in groups for p in grp["params"]))
        return real(groups)

    monkeypatch.setattr(distill, "_adam", spy)
    cfg = FinetuneConfig(steps=30, seed=0, train_geometry=False, chunk=400)
    tuned, hist = finetune(student, teacher, views.train, config=cfg, backend="cpu")
    assert sizes == [400, 400, 400] and len(hist) == 30  # three chunks of 400, ten steps each
    # the chunks partition the scene: every visible Gaussian's colour moved, geometry stayed
    moved = (tuned.sh_dc - student.sh_dc).abs().amax(1) > 0
    assert moved.float().mean() > 0.5
    assert torch.equal(tuned.means, student.means) and torch.equal(tuned.quats, student.quats)
    target = render_targets(teacher, views.heldout, backend="cpu")
    assert _err(tuned, views.heldout, target) < 0.9 * _err(student, views.heldout, target)


def test_one_chunk_is_the_plain_fine_tune():
    teacher, student, views = _setup(500)
    a, ha = finetune(student, teacher, views.train, config=FinetuneConfig(steps=8, seed=2, chunk=None), backend="cpu")
    b, hb = finetune(student, teacher, views.train, config=FinetuneConfig(steps=8, seed=2, chunk=500), backend="cpu")
    assert ha == hb
    for k, t in a.fields().items():
        assert torch.equal(t, getattr(b, k)), k


def test_a_chunk_render_equals_the_plain_render():
    """The chunked step's render (colours of the other Gaussians without a gradient, the chunk's
    spliced in) is the render of the same scene, and the gradient reaches only the chunk."""
    teacher, _, views = _setup(300)
    idx = torch.arange(0, 300, 3)
    work = {k: t.detach().clone() for k, t in teacher.fields().items()}
    params = {k: work[k][idx].clone().requires_grad_(True) for k in ("opacity_logits", "sh_dc", "sh_rest")}
    out = distill._render_chunk(teacher, work, params, idx, views.train[0], "cpu")
    ref = render_targets(teacher, views.train[:1], backend="cpu")[0]
    assert torch.allclose(out, ref, atol=1e-6)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.shape[0] == len(idx) for p in params.values())
    assert params["sh_dc"].grad.abs().sum() > 0


def test_in_place_trains_the_student_own_tensors_to_the_same_result():
    """``in_place`` gives the copying fine-tune's result bit for bit, in the student's own
    tensors; without it the student is left as it was."""
    teacher, student, views = _setup(500)
    before = {k: t.clone() for k, t in student.fields().items()}
    cfg = FinetuneConfig(steps=6, seed=2, train_geometry=False)
    a, ha = finetune(student, teacher, views.train, config=cfg, backend="cpu")
    for k, t in student.fields().items():
        assert torch.equal(t, before[k]), k  # untouched
    assert a.means.data_ptr() == student.means.data_ptr()  # untrained fields are shared, not copied
    own = student.replace(**{k: t.clone() for k, t in student.fields().items()})
    b, hb = finetune(own, teacher, views.train, config=cfg, backend="cpu", in_place=True)
    assert ha == hb
    for k, t in a.fields().items():
        assert torch.equal(t, getattr(b, k)), k
    assert b.sh_dc.data_ptr() == own.sh_dc.data_ptr() and torch.equal(own.sh_dc, a.sh_dc)
