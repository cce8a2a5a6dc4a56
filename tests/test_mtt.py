"""MTT: the bounded-memory gradient equals the published full unroll, the step plan, determinism, own-objective
improvement, resume, learned step size in evaluation, and clear errors for unusable experts."""
import pytest
import torch

from elfkit import data, experts, models, seeding
from elfkit.distill import mtt
from elfkit.errors import DivergenceError, ElfkitError
from elfkit.evaluate import evaluate_synset


@pytest.fixture(scope="module")
def toy():
    return data.synthetic(n_train=20, n_test=4)


@pytest.fixture(scope="module")
def trajs(toy, tmp_path_factory):
    root = tmp_path_factory.mktemp("experts")
    return experts.pool(toy, "ConvNetW32", 2, recipe="mtt_expert", epochs=3, seed=0, root=root)


@pytest.mark.parametrize("arch,strategy,batch", [("ConvNetW32", "color_crop_cutout_flip_scale_rotate", 3),
                                                 ("ConvNetBN", None, 6), ("LeNet", "scale_rotate", 4)])
def test_bounded_gradient_equals_full_unroll(arch, strategy, batch):
    torch.manual_seed(0)
    net = models.create(arch, 1, 3, (28, 28)).train()
    names = [k for k, _ in net.named_parameters()]
    start = [p.detach().clone() for p in net.parameters()]
    target = [p + 0.05 * torch.randn_like(p) for p in start]
    images, labels = torch.randn(6, 1, 28, 28), torch.tensor([0, 0, 1, 1, 2, 2])
    steps = mtt.plan_steps(6, 5, batch, strategy, (28, 28), seeding.generator(1))
    lr = torch.tensor(0.02)
    lb, gib, glb = mtt.trajectory_loss(net, names, start, target, images, labels, lr, steps, "bounded")
    lf, gif, glf = mtt.trajectory_loss(net, names, start, target, images, labels, lr, steps, "full")
    assert torch.allclose(lb, lf, rtol=1e-5)
    assert torch.allclose(gib, gif, rtol=1e-4, atol=1e-6 * float(gif.abs().max()))
    assert torch.allclose(glb, glf, rtol=1e-4)
    assert gib.abs().sum() > 0 and glb != 0


def test_loss_is_the_normalised_parameter_distance():
    torch.manual_seed(0)
    net = models.create("MLP", 1, 2, (28, 28)).train()
    names = [k for k, _ in net.named_parameters()]
    start = [p.detach().clone() for p in net.parameters()]
    target = [p + 0.1 for p in start]
    loss, _, _ = mtt.trajectory_loss(net, names, start, target, torch.randn(2, 1, 28, 28), torch.tensor([0, 1]),
                                     torch.tensor(0.0), mtt.plan_steps(2, 3, 2, None, (28, 28), seeding.generator(0)))
    assert loss.item() == pytest.approx(1.0)               # η = 0: the student stays at θ_0, so L = 1


def test_step_plan_pops_chunks_of_a_permutation():
    steps = mtt.plan_steps(10, 4, 4, None, (28, 28), seeding.generator(0))
    sizes = [len(i) for i, _ in steps]
    assert sizes == [2, 4, 4, 2]                               # split(4) of 10 = [4, 4, 2], popped from the end
    assert sorted(torch.cat([i for i, _ in steps[:3]]).tolist()) == list(range(10))
    drawn = mtt.plan_steps(10, 2, 10, "color_crop_cutout_flip_scale_rotate", (28, 28), seeding.generator(0))
    assert all(d is not None and d.n == 10 for _, d in drawn)   # independent per-sample parameters


def _run(d, trajs, **kw):
    args = dict(ipc=1, experts=trajs, arch="ConvNetW32", iterations=4, syn_steps=3, expert_epochs=1,
                max_start_epoch=2, lr_img=100.0, lr_lr=1e-7, seed=1)
    args.update(kw)
    return mtt.distill(d, **args)


def test_deterministic_records_learned_lr_and_improves_objective(toy, trajs):
    a, b, c = _run(toy, trajs), _run(toy, trajs), _run(toy, trajs, seed=2)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.meta["syn_lr"] != 0.01 and a.meta["syn_lr"] > 0
    long = _run(toy, trajs, iterations=40, max_start_epoch=1, lr_img=1000.0)
    first = sum(v for _, v, _ in long.meta["loss_curve"][:5]) / 5
    last = sum(v for _, v, _ in long.meta["loss_curve"][-5:]) / 5
    assert last < first


def test_evaluation_uses_the_learned_step_size(toy, trajs, monkeypatch):
    s = _run(toy, trajs, iterations=2)
    seen = []
    import elfkit.evaluate as ev

    real = ev.train_and_eval
    monkeypatch.setattr(ev, "train_and_eval", lambda *a, **k: seen.append(k["lr"]) or real(*a, **k))
    evaluate_synset(s, toy, ["ConvNetW32"], n_models=1, epochs=1)
    evaluate_synset(s, toy, ["ConvNetW32"], n_models=1, epochs=1, use_syn_lr=False, lr=0.01)
    assert seen == [s.meta["syn_lr"], 0.01]


def test_resume_equals_uninterrupted(toy, trajs, tmp_path, monkeypatch):
    full = _run(toy, trajs)
    ckpt = tmp_path / "mtt.ckpt"
    calls = {"n": 0}
    real = mtt.trajectory_loss

    def interrupt(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(mtt, "trajectory_loss", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _run(toy, trajs, checkpoint=ckpt, checkpoint_every=2)
    monkeypatch.setattr(mtt, "trajectory_loss", real)
    resumed = _run(toy, trajs, checkpoint=ckpt, checkpoint_every=2, resume=True)
    assert torch.equal(resumed.images, full.images) and resumed.meta["syn_lr"] == full.meta["syn_lr"]
    assert resumed.meta["loss_curve"] == full.meta["loss_curve"]


def test_divergence_and_unusable_experts_give_clear_errors(toy, trajs):
    with pytest.raises(DivergenceError, match="lower lr_img"):
        _run(toy, trajs, lr_img=1e38, iterations=3)
    with pytest.raises(ElfkitError, match="needs trajectories of at least"):
        _run(toy, trajs, max_start_epoch=3, expert_epochs=2)
    with pytest.raises(ElfkitError, match="needs expert trajectories"):
        _run(toy, trajs=[])
    with pytest.raises(ElfkitError, match="different architecture"):
        _run(toy, trajs, arch="ConvNetW64")
    with pytest.raises(DivergenceError, match="lower lr_lr"):
        _run(toy, trajs, lr_lr=1.0, iterations=3)
