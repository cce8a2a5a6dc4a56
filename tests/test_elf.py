"""ELF: the four feature losses against their formulas, the loss modes, baseline equality, shape errors."""
import pytest
import torch
import torch.nn.functional as F

from elfkit import data, elf, evaluate, models
from elfkit.errors import ElfkitError


@pytest.fixture
def sf():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 5, 4, 4, generator=g)
    f = torch.rand(3, 5, 4, 4, generator=g) * 3        # non-negative, NOT normalised over channels
    return s, f


def test_ce_is_channel_cross_entropy_with_unnormalised_targets(sf):
    s, f = sf
    B, C, H, W = s.shape
    ref = 0.0
    for b in range(B):
        for h in range(H):
            for w in range(W):
                logp = torch.log_softmax(s[b, :, h, w], 0)
                ref += -(f[b, :, h, w] * logp).sum()
    ref /= B * H * W
    assert torch.allclose(elf.feature_loss("CE", s, f), ref, rtol=1e-5)
    assert torch.allclose(elf.feature_loss("CE", s, f), F.cross_entropy(s, f), rtol=1e-5)  # torch's float targets
    # unnormalised targets weight each position by sum_c f: not the same as normalised targets
    assert not torch.allclose(elf.feature_loss("CE", s, f), elf.feature_loss("CE", s, f / f.sum(1, keepdim=True)))


def test_l2_l1_are_elementwise_means(sf):
    s, f = sf
    assert torch.allclose(elf.feature_loss("L2", s, f), ((s - f) ** 2).sum() / s.numel())
    assert torch.allclose(elf.feature_loss("l1", s, f), (s - f).abs().sum() / s.numel())


def test_cos_is_one_cosine_over_the_whole_batch(sf):
    s, f = sf
    u, v = s.flatten(), f.flatten()
    ref = 1 - (u @ v) / (torch.sqrt((u * u).sum()) * torch.sqrt((v * v).sum()) + 1e-6)
    assert torch.allclose(elf.feature_loss("COS", s, f), ref)
    per_sample = (1 - F.cosine_similarity(s.flatten(1), f.flatten(1))).mean()
    assert not torch.allclose(elf.feature_loss("COS", s, f), per_sample)


def test_unknown_kind_and_shape_mismatch_raise(sf):
    s, f = sf
    with pytest.raises(ElfkitError, match="CE"):
        elf.feature_loss("KL", s, f)
    with pytest.raises(ElfkitError, match="shapes differ"):
        elf.feature_loss("L2", s, f[:, :4])


def test_loss_modes_compose_the_terms(sf):
    torch.manual_seed(0)
    net = models.create("ConvNetW32", 1, 10, (28, 28))
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    front, rear = models.split(net)
    feats = torch.rand(4, 32, 4, 4)
    idx = torch.arange(4)
    s = front(x)
    task, rear_t = F.cross_entropy(rear(s), y), F.cross_entropy(rear(feats), y)
    want = {
        "task": task,
        "front_task": 0.5 * elf.feature_loss("CE", s, feats) + task,            # always channel-CE
        "rear_task": 0.25 * rear_t + task,
        "front_rear": 0.5 * elf.feature_loss("L2", s, feats) + rear_t,          # lam_rear ignored
        "front_rear_task": 0.5 * elf.feature_loss("L2", s, feats) + 0.25 * rear_t + task,
    }
    for mode, ref in want.items():
        got = elf.ElfLoss(feats, mode, "L2", lam_front=0.5, lam_rear=0.25)(net, x, y, idx)
        assert torch.allclose(got, ref), mode


def test_rear_term_trains_only_the_rear():
    torch.manual_seed(0)
    net = models.create("ConvNetW32", 1, 10, (28, 28))
    front, rear = models.split(net)
    feats = torch.rand(4, 32, 4, 4)
    loss = elf.ElfLoss(feats, "rear_task", lam_rear=1.0)
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    (loss(net, x, y, torch.arange(4)) - F.cross_entropy(net(x), y)).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in front.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in rear.parameters())


def _setup():
    d = data.synthetic(n_train=6, n_test=5)
    syn = evaluate.random_real(d, 2, seed=0)
    torch.manual_seed(1)
    fm = models.create("ConvNet", 1, 10, (28, 28))
    return d, syn, fm


def test_task_mode_reproduces_the_baseline_exactly():
    d, syn, fm = _setup()
    base = evaluate.evaluate_synset(syn, d, ["ConvNet"], n_models=2, seed=3, epochs=3)
    got = elf.evaluate(syn, d, ["ConvNet"], lambda a: fm, mode="task", lam_front=0, lam_rear=0, n_models=2, seed=3,
                       epochs=3)
    assert [r["value"] for r in got] == [r["value"] for r in base]


def test_elf_training_runs_and_is_labelled():
    d, syn, fm = _setup()
    got = elf.evaluate(syn, d, ["ConvNet"], lambda a: fm, n_models=1, seed=3, epochs=3)
    assert got[0]["eval_mode"] == "elf" and 0 <= got[0]["value"] <= 1


def test_micro_batched_elf_loss_gives_the_full_batch_gradient():
    torch.manual_seed(0)
    net = models.create("ConvNetW32", 1, 10, (28, 28))
    x, y, feats = torch.randn(50, 1, 28, 28), torch.randint(0, 10, (50,)), torch.rand(50, 32, 4, 4)
    loss = elf.ElfLoss(feats, "front_rear_task", "L2")
    assert loss.decomposable and not elf.ElfLoss(feats, "front_rear_task", "COS").decomposable
    idx = torch.arange(50)
    loss(net, x, y, idx).backward()
    full = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    for sl in idx.split(25):
        (loss(net, x[sl], y[sl], sl) * (len(sl) / 50)).backward()
    for a, p in zip(full, net.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-6, rtol=1e-4)


def test_mismatched_feature_model_names_the_right_one():
    d, syn, fm = _setup()                                    # fm: width 128, ResNet18's split needs 512
    with pytest.raises(ElfkitError, match="ConvNetW512"):
        elf.evaluate(syn, d, ["ResNet18"], lambda a: fm, n_models=1, epochs=1)


def test_cli_feature_model_then_elf_evaluate(tmp_path, capsys):
    from elfkit import cli

    d = data.synthetic()
    path = evaluate.random_real(d, 1, seed=0).save(tmp_path / "s.safetensors")
    root = tmp_path / "fm"
    base = ["evaluate", str(path), "--dataset", "synthetic", "--arch", "ConvNet", "--n-models", "1", "--epochs", "2",
            "--progress", "off", "--device", "cpu", "--elf", "--feature-root", str(root), "--feature-epoch", "1",
            "--feature-epochs", "2", "--out", str(tmp_path / "e.json")]
    assert cli.main(base) == 2 and "elfkit train-feature-model --arch ConvNet" in capsys.readouterr().err
    assert cli.main(["train-feature-model", "--dataset", "synthetic", "--arch", "ConvNet", "--epochs", "2",
                     "--snapshots", "1", "--root", str(root), "--progress", "off", "--device", "cpu"]) == 0
    assert cli.main(base) == 0
    import json

    recs = json.loads((tmp_path / "e.json").read_text())["records"]
    assert recs[0]["eval_mode"] == "elf" and recs[0]["loss_mode"] == "front_rear_task"


def test_feature_source_distill_fits_only_convnet_splits(tmp_path):
    d = data.synthetic(n_train=8, n_test=2)
    get = elf.feature_models(d, tmp_path, epoch=1, epochs=1, source="distill", train_missing=True)
    fm = get("ConvNetBN")
    assert type(fm).__name__ == "ConvNet" and fm.arch == "ConvNet"
    with pytest.raises(ElfkitError, match="no adapter"):
        get("ResNet18")
    with pytest.raises(ElfkitError, match="no ConvNet feature model"):
        elf.feature_models(d, tmp_path / "x", epoch=1, epochs=1)("ConvNet")


def test_the_front_terms_irreducible_part_is_its_minimum():
    """channel-CE = mean F·H(p) + mean F·KL(p‖q) for non-negative features (F = channel sum, p = f / F): the
    irreducible part equals the loss at the best student (q = p) and never exceeds the loss of any other."""
    g = torch.Generator().manual_seed(0)
    f = torch.rand(4, 16, 3, 3, generator=g) * 3            # non-negative, like a ReLU block's output
    s = torch.randn(4, 16, 3, 3, generator=g)
    irr = elf.irreducible_ce(f)
    p = f / f.sum(1, keepdim=True)
    kl = (f.sum(1) * (p * (p.log() - torch.log_softmax(s, 1))).sum(1)).mean()
    assert torch.allclose(elf.feature_loss("CE", s, f), irr + kl, atol=1e-5)
    assert torch.allclose(elf.feature_loss("CE", p.log(), f), irr, atol=1e-5)     # q = p: only F·H(p) is left
    assert elf.feature_loss("CE", s, f) > irr


def test_elf_terms_are_logged_per_epoch_without_changing_training():
    from elfkit import data
    from elfkit.evaluate import random_real

    d = data.synthetic(n_train=40, n_test=20)
    syn = random_real(d, 2, 0)
    fm = models.create("ConvNetW32", 1, 10, (28, 28))
    kw = dict(n_models=1, seed=0, epochs=2, batch_size=256, dsa=True)
    losses: list = []
    logged = elf.evaluate(syn, d, ["ConvNetW32"], lambda a: fm, terms=losses, **kw)
    plain = elf.evaluate(syn, d, ["ConvNetW32"], lambda a: fm, **kw)
    assert logged == plain                                   # logging changes no bit of the result
    terms = losses[0].terms_by_epoch(3)
    assert terms["epoch"] == [0, 1, 2] and all(len(terms[k]) == 3 for k in ("front", "rear", "task"))
    assert all(f >= i for f, i in zip(terms["front"], terms["front_irreducible"]))
