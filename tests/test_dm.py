"""DM: the loss formula, determinism, checkpoint/resume equality, the BN branch, divergence handling."""
import pytest
import torch

from elfkit import augment, data, models
from elfkit.distill import dm
from elfkit.errors import DivergenceError, ElfkitError


@pytest.fixture(scope="module")
def toy():
    return data.synthetic(n_train=24, n_test=4)


def test_dm_loss_equals_per_class_formula():
    torch.manual_seed(0)
    net = models.create("ConvNetW32", 1, 3, (28, 28)).requires_grad_(False)
    xr, yr = torch.randn(12, 1, 28, 28), torch.tensor([0, 1, 2] * 4)
    xs, ys = torch.randn(6, 1, 28, 28), torch.tensor([0, 0, 1, 1, 2, 2])
    ref = sum(((net.embed(xr[yr == c]).mean(0) - net.embed(xs[ys == c]).mean(0)) ** 2).sum() for c in range(3))
    for cpu_chunks in (False, True):
        got = dm.dm_loss(net, xr, yr, xs, ys, 3, bn=False, cpu=cpu_chunks)
        assert torch.allclose(got, ref, rtol=1e-5)


def test_dm_loss_bn_branch_mixes_classes_in_one_batch():
    torch.manual_seed(0)
    net = models.create("ConvNetBN", 1, 2, (28, 28)).train().requires_grad_(False)
    xr, yr = torch.randn(8, 1, 28, 28), torch.tensor([0, 1] * 4)
    xs, ys = torch.randn(4, 1, 28, 28), torch.tensor([0, 0, 1, 1])
    er, es = net.embed(xr), net.embed(xs)  # all classes in one forward: BN batch statistics mix classes
    ref = sum(((er[yr == c].mean(0) - es[ys == c].mean(0)) ** 2).sum() for c in range(2))
    assert torch.allclose(dm.dm_loss(net, xr, yr, xs, ys, 2, bn=True), ref, rtol=1e-5)
    per_class = sum(((net.embed(xr[yr == c]).mean(0) - net.embed(xs[ys == c]).mean(0)) ** 2).sum() for c in range(2))
    assert not torch.allclose(ref, per_class)  # the BN branch is not the per-class computation


def _run(d, **kw):
    args = dict(ipc=2, arch="ConvNetW32", iterations=6, batch_real=8, seed=3)
    args.update(kw)
    return dm.distill(d, **args)


def test_dm_is_deterministic_and_seed_dependent(toy):
    a, b, c = _run(toy), _run(toy), _run(toy, seed=4)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)
    assert a.labels.tolist() == [c for c in range(10) for _ in range(2)]


def test_dm_reduces_its_objective(toy):
    s = _run(toy, iterations=30, lr_img=1.0)
    curve = [v for _, v in s.meta["loss_curve"]]
    assert curve[-1] < curve[0]


def test_resume_equals_uninterrupted(toy, tmp_path, monkeypatch):
    full = _run(toy)
    ckpt = tmp_path / "dm.ckpt"
    calls = {"n": 0}
    real = augment.siamese_by_class

    def interrupt(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:  # dies during iteration index 4, after the checkpoint at 4 was written
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(augment, "siamese_by_class", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _run(toy, checkpoint=ckpt, checkpoint_every=2)
    monkeypatch.setattr(augment, "siamese_by_class", real)
    from elfkit.safefile import load_tensors

    assert load_tensors(ckpt)[1]["iteration"] == "4"   # the run died after the checkpoint at iteration 4
    resumed = _run(toy, checkpoint=ckpt, checkpoint_every=2, resume=True)
    assert torch.equal(resumed.images, full.images)
    assert resumed.meta["loss_curve"] == full.meta["loss_curve"]


def test_resume_refuses_a_foreign_checkpoint(toy, tmp_path):
    ckpt = tmp_path / "dm.ckpt"
    _run(toy, checkpoint=ckpt, checkpoint_every=2)
    with pytest.raises(ElfkitError, match="different DM configuration"):
        _run(toy, checkpoint=ckpt, checkpoint_every=2, resume=True, lr_img=0.5)


def test_divergence_stops_with_a_clear_message_and_keeps_the_checkpoint(toy, tmp_path):
    ckpt = tmp_path / "dm.ckpt"
    _run(toy, checkpoint=ckpt, checkpoint_every=2)
    before = ckpt.read_bytes()
    bad = data.synthetic(n_train=24, n_test=4)
    bad.x_train[0, 0, 0, 0] = float("nan")
    bad.x_train[bad.y_train == bad.y_train[0]] = float("nan")
    with pytest.raises(DivergenceError, match="lower lr_img"):
        dm.distill(bad, ipc=2, arch="ConvNetW32", iterations=4, batch_real=8, seed=3, checkpoint=tmp_path / "x.ckpt",
                   checkpoint_every=2)
    assert ckpt.read_bytes() == before


def test_dm_any_ipc_and_bn_model(toy):
    s = dm.distill(toy, ipc=3, arch="ConvNetBN", iterations=2, batch_real=8, seed=0)
    assert s.images.shape == (30, 1, 28, 28) and s.ipc == 3
