"""DC and DSA: the three gradient distances against hand formulas, the loop table and its rule, BN handling,
Siamese augmentation inside matching, determinism, own-objective improvement, resume, divergence."""
import pytest
import torch
import torch.nn.functional as F

from elfkit import augment, data, models, seeding
from elfkit.distill import dc, dsa
from elfkit.errors import DivergenceError, ElfkitError


@pytest.fixture(scope="module")
def toy():
    return data.synthetic(n_train=24, n_test=4)


def _grads(seed):
    g = torch.Generator().manual_seed(seed)
    shapes = [(8, 3, 3, 3), (8,), (4, 5, 5), (10, 12), (10,)]     # conv, bias, LayerNorm weight, linear, bias
    return [torch.randn(s, generator=g) for s in shapes]


def test_ours_is_the_layerwise_row_cosine_ignoring_1d_tensors():
    gs, gr = _grads(0), _grads(1)
    ref = 0.0
    for a, b in zip(gs, gr):
        if a.ndim == 1:
            continue
        a2, b2 = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        for i in range(a2.shape[0]):
            ref += 1 - float((a2[i] * b2[i]).sum()) / (float(a2[i].norm() * b2[i].norm()) + 1e-6)
    assert dc.match_loss(gs, gr, "ours").item() == pytest.approx(ref, rel=1e-5)
    changed = [t.clone() for t in gs]
    changed[1] += 100.0                                            # a bias: contributes nothing
    assert dc.match_loss(changed, gr, "ours").item() == pytest.approx(ref, rel=1e-5)


def test_mse_is_a_sum_and_cos_is_over_the_concatenation():
    gs, gr = _grads(2), _grads(3)
    vs, vr = torch.cat([t.flatten() for t in gs]), torch.cat([t.flatten() for t in gr])
    assert dc.match_loss(gs, gr, "mse").item() == pytest.approx(float(((vs - vr) ** 2).sum()), rel=1e-6)
    cos = 1 - float((vs * vr).sum()) / (float(vs.norm() * vr.norm()) + 1e-6)
    assert dc.match_loss(gs, gr, "cos").item() == pytest.approx(cos, rel=1e-5)
    assert dc.match_loss(gs, gs, "cos").item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ElfkitError, match="choose one of"):
        dc.match_loss(gs, gr, "l1")


def test_loop_table_rule_user_loops_and_cap():
    assert dc.loops_for(1) == (1, 1) and dc.loops_for(10) == (10, 50) and dc.loops_for(50) == (50, 10)
    with pytest.warns(UserWarning, match="not in the published loop table"):
        assert dc.loops_for(12) == (10, 50)          # nearest row
    with pytest.warns(UserWarning):
        assert dc.loops_for(15) == (10, 50)          # tie 10/20 -> the smaller
    with pytest.warns(UserWarning):
        assert dc.loops_for(100) == (50, 10)
    assert dc.loops_for(12, loops=(3, 4)) == (3, 4)
    assert dc.loops_for(10, cap=(2, 10)) == (2, 10) and dc.loops_for(1, cap=(2, 10)) == (1, 1)
    with pytest.raises(ElfkitError, match="outer >= 1"):
        dc.loops_for(10, loops=(0, 5))


def test_gm_loss_equals_per_class_gradient_distance():
    torch.manual_seed(0)
    net = models.create("ConvNetW32", 1, 2, (28, 28))
    params = list(net.parameters())
    xr = [torch.randn(5, 1, 28, 28) for _ in range(2)]
    xs = [torch.randn(2, 1, 28, 28, requires_grad=True) for _ in range(2)]
    got = dc.gm_loss(net, params, xr, xs, "ours", None, None)
    ref = 0
    for c in range(2):
        gr = torch.autograd.grad(F.cross_entropy(net(xr[c]), torch.full((5,), c)), params)
        gs = torch.autograd.grad(F.cross_entropy(net(xs[c]), torch.full((2,), c)), params, create_graph=True)
        ref = ref + dc.match_loss(gs, [t.detach() for t in gr])
    assert torch.allclose(got, ref)
    got.backward()
    assert xs[0].grad is not None and xs[0].grad.abs().sum() > 0    # the images receive gradient


def test_dsa_matching_applies_one_shared_draw_to_real_and_synthetic(monkeypatch):
    seen = []
    real = augment.siamese

    def spy(xs, strategy, g, *a, **k):
        out = real(xs, strategy, g, *a, **k)
        seen.append(out)
        return out

    monkeypatch.setattr(augment, "siamese", spy)
    torch.manual_seed(0)
    net = models.create("ConvNetW32", 1, 2, (28, 28))
    x = torch.randn(3, 1, 28, 28)
    g = seeding.generator(0)
    dc.gm_loss(net, list(net.parameters()), [x, x], [x.clone(), x.clone()], "ours",
               augment.strategy_for("fashion_mnist"), g)
    assert len(seen) == 2                                           # one draw per class
    for r, s in seen:
        assert torch.equal(r, s)                                    # same images -> identical augmentation
    assert not torch.equal(seen[0][0], x) or not torch.equal(seen[1][0], x)


def test_bn_statistics_are_frozen_during_matching(toy):
    torch.manual_seed(0)
    net = models.create("ConvNetBN", 1, 10, (28, 28))
    cls = data.class_indices(toy.y_train, 10)
    dc._freeze_bn(net, toy.x_train, cls, seeding.generator(0))
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns) and all(m.num_batches_tracked.item() == 1 for m in bns)
    a = net(toy.x_train[:4])
    b = net(toy.x_train[:2])
    assert torch.allclose(a[:2], b, atol=1e-5)                       # batch-independent: fixed statistics


def _run(d, mod=dc, **kw):
    args = dict(ipc=2, arch="ConvNetW32", iterations=4, batch_real=6, seed=3, loops=(2, 2), init="real")
    args.update(kw)
    return mod.distill(d, **args)


@pytest.mark.parametrize("mod", [dc, dsa])
def test_deterministic_and_seed_dependent(toy, mod):
    a, b, c = _run(toy, mod), _run(toy, mod), _run(toy, mod, seed=4)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.meta["method"] == mod.__name__.rsplit(".", 1)[1].upper()


@pytest.mark.parametrize("mod", [dc, dsa])
def test_improves_its_own_objective(toy, mod):
    """The matching loss on a fixed panel of fresh networks drops from the initial to the distilled set."""
    s0 = _run(toy, mod, iterations=0)
    s1 = _run(toy, mod, iterations=12, lr_img=0.5, loops=(1, 0))
    strategy = augment.strategy_for(toy.name) if mod is dsa else None
    cls = data.class_indices(toy.y_train, 10)

    def objective(images):
        total = 0.0
        for k in range(4):
            with seeding.forked(100 + k):
                net = models.create("ConvNetW32", 1, 10, (28, 28))
            reals = [toy.x_train[c] for c in cls]
            total += float(dc.gm_loss(net, list(net.parameters()), reals, list(images.split(2)), "ours", strategy,
                                      seeding.generator(k)).detach())
        return total

    assert objective(s1.images) < objective(s0.images)


@pytest.mark.parametrize("mod", [dc, dsa])
def test_resume_equals_uninterrupted(toy, tmp_path, mod, monkeypatch):
    full = _run(toy, mod)
    ckpt = tmp_path / "x.ckpt"
    calls = {"n": 0}
    real = dc.gm_loss

    def interrupt(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:        # 2 outer steps per iteration: dies in iteration index 2
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(dc, "gm_loss", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _run(toy, mod, checkpoint=ckpt, checkpoint_every=2)
    monkeypatch.setattr(dc, "gm_loss", real)
    resumed = _run(toy, mod, checkpoint=ckpt, checkpoint_every=2, resume=True)
    assert torch.equal(resumed.images, full.images)
    assert resumed.meta["loss_curve"] == full.meta["loss_curve"]
    with pytest.raises(ElfkitError, match="different"):
        _run(toy, mod, checkpoint=ckpt, checkpoint_every=2, resume=True, lr_img=0.3)


def test_divergence_stops_and_keeps_the_last_good_checkpoint(toy, tmp_path):
    ckpt = tmp_path / "dc.ckpt"
    _run(toy, checkpoint=ckpt, checkpoint_every=2)
    before = ckpt.read_bytes()
    with pytest.raises(ElfkitError, match="already exists; pass resume=True"):   # never overwritten silently
        _run(toy, checkpoint=ckpt, checkpoint_every=2, resume=False, lr_img=1e38, iterations=6)
    assert ckpt.read_bytes() == before
    fresh = tmp_path / "fresh.ckpt"
    with pytest.raises(DivergenceError, match="lower lr_img.*No checkpoint was written yet"):
        _run(toy, checkpoint=fresh, checkpoint_every=2, lr_img=1e38, iterations=6)
    assert not fresh.exists()


def test_bn_model_noise_init_and_unsupported_settings(toy):
    s = dc.distill(toy, ipc=1, arch="ConvNetBN", iterations=1, batch_real=4, init="noise", seed=0)
    assert s.images.shape == (10, 1, 28, 28)
    with pytest.raises(ElfkitError, match="unknown init"):
        dc.distill(toy, ipc=1, iterations=1, init="zeros")
    with pytest.raises(ElfkitError, match="gradient distance"):
        dc.distill(toy, ipc=1, iterations=1, metric="l2")
    with pytest.raises(models.ModelError):
        dc.distill(toy, ipc=1, iterations=1, arch="ConvNetXYZ")


def test_channels_last_matching_equals_the_default_layout():
    torch.manual_seed(0)
    net = models.create("ConvNetW32", 1, 2, (28, 28))
    xr = [torch.randn(5, 1, 28, 28) for _ in range(2)]
    xs = [torch.randn(2, 1, 28, 28) for _ in range(2)]
    a = dc.gm_loss(net, list(net.parameters()), xr, xs, "ours", None, None)
    net_cl = net.to(memory_format=torch.channels_last)
    b = dc.gm_loss(net_cl, list(net_cl.parameters()), xr, xs, "ours", None, None, channels_last=True)
    assert torch.allclose(a, b, rtol=1e-4)
