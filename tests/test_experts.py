"""Trajectories of real-data training: snapshots, resume equality, distinct seeds, the recipes' schedules."""
import pytest
import torch

from elfkit import data, experts, models


@pytest.fixture(scope="module")
def toy():
    return data.synthetic(n_train=20, n_test=5)


def _flat(state):
    return torch.cat([state[k].flatten().float() for k in sorted(state)])


def test_snapshots_and_loading(toy, tmp_path):
    t = experts.train(toy, "ConvNetW32", recipe="mtt_expert", epochs=3, seed=1, root=tmp_path, test_every=1)
    assert t.epochs() == [0, 1, 2, 3]
    assert set(t.test_acc) == {1, 2, 3}
    net = t.model(3, 1, 10, (28, 28))
    assert not net.training and torch.equal(_flat(net.state_dict()), _flat(t.state(3)))
    assert not torch.equal(_flat(t.state(0)), _flat(t.state(3)))
    with torch.random.fork_rng():
        torch.manual_seed(1)
        init = models.create("ConvNetW32", 1, 10, (28, 28))
    assert torch.equal(_flat(t.state(0)), _flat(init.state_dict()))      # entry 0 = the seeded initialisation


def test_resume_equals_uninterrupted(toy, tmp_path, monkeypatch):
    full = experts.train(toy, "ConvNetW32", recipe="elf_feature", epochs=4, seed=2, root=tmp_path / "a")
    calls = {"n": 0}
    real = experts.augment.dsa

    def die(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:       # one minibatch per epoch: dies in epoch index 2
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(experts.augment, "dsa", die)
    with pytest.raises(KeyboardInterrupt):
        experts.train(toy, "ConvNetW32", recipe="elf_feature", epochs=4, seed=2, root=tmp_path / "b")
    monkeypatch.setattr(experts.augment, "dsa", real)
    resumed = experts.train(toy, "ConvNetW32", recipe="elf_feature", epochs=4, seed=2, root=tmp_path / "b")
    for e in range(5):
        assert torch.equal(_flat(full.state(e)), _flat(resumed.state(e))), e


def test_distinct_seeds_give_distinct_members(toy, tmp_path):
    a = experts.train(toy, "ConvNetW32", recipe="ptm", epochs=1, seed=0, root=tmp_path)
    b = experts.train(toy, "ConvNetW32", recipe="ptm", epochs=1, seed=1, root=tmp_path)
    assert a.folder != b.folder
    assert not torch.equal(_flat(a.state(0)), _flat(b.state(0)))


def test_recipes_match_the_spec():
    r = experts.RECIPES
    assert (r["elf_feature"].epochs, r["elf_feature"].momentum, r["elf_feature"].milestones) == (200, 0.9, (101,))
    assert (r["mtt_expert"].momentum, r["mtt_expert"].weight_decay, r["mtt_expert"].milestones) == (0.0, 0.0, ())
    assert (r["ptm"].weight_decay, r["ptm"].dsa, r["ptm"].rebuild) == (5e-3, False, False)


def test_missing_snapshot_is_a_clear_error(toy, tmp_path):
    t = experts.train(toy, "ConvNetW32", recipe="mtt_expert", epochs=2, seed=0, root=tmp_path, snapshot_epochs=[1])
    assert t.epochs() == [0, 1, 2]
    with pytest.raises(Exception, match="no snapshot for epoch 5"):
        t.state(5)


def test_a_longer_run_holds_the_shorter_runs_weights_up_to_its_length(toy, tmp_path):
    """07 takes an early chosen PTM epoch from the pools' short run rather than E4's long one: that is exact only
    because training never looks ahead — same seed, data order and lr (the long run's first milestone falls past
    the short run) give bit-identical snapshots, with the test accuracies alike."""
    from dataclasses import replace

    rec = replace(experts.RECIPES["ptm"], milestones=(2,))     # lr x0.1 after epoch index 2: inside the long run only
    short = experts.train(toy, "ConvNetW32", recipe=rec, epochs=2, seed=5, root=tmp_path / "s", test_every=1)
    long = experts.train(toy, "ConvNetW32", recipe=rec, epochs=4, seed=5, root=tmp_path / "l", test_every=1)
    for e in (0, 1, 2):
        assert torch.equal(_flat(short.state(e)), _flat(long.state(e)))
        assert e == 0 or short.test_acc[e] == long.test_acc[e]
