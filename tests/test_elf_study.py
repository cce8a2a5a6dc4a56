"""The ELF study (04_elf_ablations, 05_inductive_bias): sweep definitions resolve to registry models, every ablation
knob changes the loss that is actually trained, identical cells are evaluated once, smoke runs are complete and fast."""

import pytest
import torch
import torch.nn.functional as F

import elfkit as ek
from elfkit import augment, data, elf, models, profiles, study
from elfkit.errors import ElfkitError
from elfkit.evaluate import random_real
from elfkit.experiments import elf_ablations as ab, grid, inductive_bias as ib

FMNIST = (1, (28, 28))   # Fashion-MNIST's shape (the synthetic data has the same)


@pytest.mark.parametrize("axis", list(study.SWEEPS))
def test_sweep_members_are_registry_models_that_run(axis):
    members = study.sweep(axis)
    registered = set(models.list_models())
    x = torch.randn(2, 1, 28, 28)
    for label, name in members:
        assert name in registered, name
        torch.manual_seed(0)
        out = models.create(name, 1, 10, (28, 28))(x)
        assert out.shape == (2, 10) and torch.isfinite(out).all(), name
        assert elf.unavailable(name, data.synthetic(n_train=1, n_test=1)) == "", f"ELF can evaluate {name}"
    # exactly one member is the distillation ConvNet (W128, D3, ReLU, avg pooling, instancenorm); no duplicates
    assert sum(study.same_architecture(n, "ConvNet", *FMNIST) for _, n in members) == 1
    assert len({study.signature(n, *FMNIST) for _, n in members}) == len(members)


def test_unknown_axis_raises():
    with pytest.raises(ElfkitError, match="width"):
        study.sweep("kernel")


@pytest.mark.parametrize("name", ["smoke", "cpu", "paper"])
def test_profile_study_fields_resolve(name):
    p = profiles.get(name)
    assert p.study_method in ek.distill.METHODS
    assert set(p.study_axes) <= set(study.SWEEPS)
    for arch in (*p.study_matrix_archs, *p.ablation_archs, *(f"ConvNetW{w}" for w in p.ablation_feature_widths)):
        models.create(arch, 1, 10, (28, 28))
    m = profiles.override(p, **profiles.assignments(p.study_matrix_overrides))   # validated like notebook overrides
    assert m.name == name
    epochs = grid.feature_spec(p.ablation_feature)[1] if p.ablation_feature else p.feature_epochs   # the training
    assert set(p.ablation_feature_epochs) <= set(range(epochs + 1))                                 # 04 reads
    assert ab.default_epoch(p) in p.ablation_feature_epochs
    assert 1.0 in p.ablation_lam_front and 1.0 in p.ablation_lam_rear


def test_matrix_overrides_parse_and_validate():
    assert profiles.assignments(["dm_iterations=100", "dm_lr_img = 0.5", "distill_arch=VGG11"]) == {
        "dm_iterations": 100, "dm_lr_img": 0.5, "distill_arch": "VGG11"}
    with pytest.raises(ElfkitError, match="field=value"):
        profiles.assignments(["dm_iterations"])
    with pytest.raises(ElfkitError, match="must be an int"):
        profiles.override(profiles.SMOKE, **profiles.assignments(["dm_iterations=1.5"]))
    with pytest.raises(ElfkitError, match="unknown profile override"):
        profiles.override(profiles.SMOKE, **profiles.assignments(["dm_iteration=2"]))


def test_unavailable_reports_instead_of_raising():
    d = data.synthetic(n_train=1, n_test=1)
    assert elf.unavailable("AlexNet", d) == ""                               # ConvNetW192 fits
    assert "adapter" in elf.unavailable("AlexNet", d, source="distill")       # 192×4×4 split vs 128×4×4 features
    assert elf.unavailable("ConvNetBN", d, source="distill") == ""
    assert "split point" in elf.unavailable("MLP", d)


def test_lambda_and_augmented_knobs_change_the_loss_on_tiny_tensors():
    torch.manual_seed(0)
    net, fm = models.create("ConvNetW32", 1, 10, (28, 28)), models.create("ConvNetW32", 1, 10, (28, 28))
    x, y, idx = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,)), torch.arange(4)
    feats = elf.compute_features(fm, x)
    x_aug = augment.dsa(x, augment.strategy_for("fashion_mnist"), torch.Generator().manual_seed(1))
    val = {lam: elf.ElfLoss(feats, lam_front=lam)(net, x_aug, y, idx) for lam in (0.0, 1.0)}
    assert not torch.allclose(val[0.0], val[1.0])
    assert not torch.allclose(elf.ElfLoss(feats, lam_rear=0.0)(net, x_aug, y, idx), val[1.0])
    # on_augmented: the feature model sees the augmented batch the front sees, not the stored un-augmented features
    got = elf.ElfLoss(feats, feature_model=fm)(net, x_aug, y, idx)
    front, rear = models.split(net)
    s, f = front(x_aug), elf.compute_features(fm, x_aug)
    want = elf.feature_loss("CE", s, f) + F.cross_entropy(rear(f), y) + F.cross_entropy(rear(s), y)
    assert torch.allclose(got, want) and not torch.allclose(got, val[1.0])


def test_every_ablation_knob_changes_the_loss_that_is_trained(monkeypatch, tmp_path):
    """The loss each evaluation cell of the 04 plan hands to evaluate_synset (the real path: cell_kinds.evaluate ->
    elf.evaluate), on one tiny batch: the variants of an ablation must all differ."""
    from elfkit import cell_kinds, cells, executors

    p = profiles.get("smoke", ablation_lam_front=[0.0, 1.0], ablation_lam_rear=[0.0, 1.0])   # λ = 0 vs 1
    plan, _ = grid.plan_of(ab, p)
    env = cell_kinds.Env(device=torch.device("cpu"), store=cells.CellStore(tmp_path / "cells"), runs_dir=tmp_path)
    inputs = cells.Plan(extra=[c for c in plan.cells() if c.kind != "evaluate"])
    executors.execute(inputs, env)                  # the set and the feature models the cells read
    d = data.synthetic()
    x_aug = augment.dsa(random_real(d, 2, 0).images, augment.strategy_for(d.name), torch.Generator().manual_seed(1))

    def loss_of_the_cell(synset, data_, archs, *, loss_for=None, **kw):
        (arch,) = archs
        loss = loss_for(arch) if loss_for else None
        with torch.random.fork_rng():
            torch.manual_seed(0)
            net = models.create(arch, 1, 10, (28, 28))
        x, y = x_aug[: len(synset.labels)], synset.labels
        idx = torch.arange(len(y))
        v = loss(net, x, y, idx) if loss else F.cross_entropy(net(x), y)
        return [{"eval_arch": arch, "model_seed": 0, "metric": "test_acc", "value": float(v.detach())}]

    monkeypatch.setattr(elf, "evaluate_synset", loss_of_the_cell)
    monkeypatch.setattr(ek.evaluate, "evaluate_synset", loss_of_the_cell)
    seen, done = {}, {}
    for labels, cell, _ in plan.rows:
        values = seen.setdefault((labels["ablation"], labels["ablation_arch"]), {})
        if isinstance(cell, list) or cell.args["model_seed"] != 0:
            continue
        if cell.key not in done:
            done[cell.key] = cell_kinds.evaluate(cell, env)["records"][0]["value"]
        values[(labels["variant"], labels["eval_mode"])] = done[cell.key]
    other = p.ablation_archs[1]
    assert {a for a, _ in seen} == set(ab.ABLATIONS)
    assert list(seen[("feature_source", other)]) == [("wide", "elf")]     # distill: reported unavailable
    for (ablation, group), values in seen.items():
        assert len(values) >= 2 or (ablation, group) == ("feature_source", other), (ablation, group)
        assert len(set(round(x, 6) for x in values.values())) == len(values), (ablation, group, values)


def test_identical_variants_share_evaluation_cells():
    """ConvNetW128 is ConvNet and the baseline ignores every feature knob: the plan evaluates each once."""
    plan, _ = grid.plan_of(ab, profiles.SMOKE)
    evals = [c for _, c, _ in plan.rows if not isinstance(c, list)]
    assert len({c.key for c in evals}) < len(evals)
    base = {c.key for (lab, c, _) in plan.rows if not isinstance(c, list) and lab["eval_mode"] == "baseline"
            and lab["ablation_arch"] == "ConvNet"}
    assert len(base) == profiles.SMOKE.n_eval_models      # one baseline per model seed for all ConvNet ablations


def test_feature_epoch_getters_share_one_trajectory(tmp_path):
    train = data.synthetic(n_train=4, n_test=1)
    get = {e: elf.feature_models(train, tmp_path, epoch=e, epochs=2, snapshots=(0, 1, 2), train_missing=True)
           for e in (0, 1)}
    a, b = get[0]("ConvNet"), get[1]("ConvNet")
    assert len(list(tmp_path.iterdir())) == 1                               # one trajectory, two snapshots
    assert not torch.equal(a.stages[0].weight, b.stages[0].weight)


def _smoke(slug, run):
    ctx = ek.start(slug, "smoke", progress="off", quiet=True)
    return ctx.profile, ek.results.cached(ctx, run, recompute=True).frame()


def test_ablations_smoke_records_are_complete():
    p, df = _smoke("04_elf_ablations", ab.run)
    acc = df[df["metric"] == "test_acc"]
    assert set(acc["ablation"]) == set(ab.ABLATIONS)
    assert (acc.groupby(["ablation", "variant", "ablation_arch", "eval_mode"]).size() == p.n_eval_models).all()
    bad = df[df["metric"] == "elf_unavailable"]
    other = p.ablation_archs[1]   # its split differs from the distillation ConvNet's: no distill-side features
    assert list(zip(bad["eval_arch"], bad["feature_source"])) == [(other, "distill")]
    t = ek.tables.ablation_table(df)
    assert t.loc[("feature_source", "distill"), other] == "n/a"


def test_inductive_bias_smoke_records_are_complete():
    p, df = _smoke("05_inductive_bias", ib.run)
    m = df[df["study"] == "matrix"]
    assert len(m) == len(p.study_matrix_archs) ** 2 * p.n_eval_models
    assert m["is_distill_arch"].sum() == len(p.study_matrix_archs) * p.n_eval_models
    s = df[df["study"] == "sweep"]
    assert set(s["axis"]) == set(p.study_axes) and set(s["eval_mode"]) == {"baseline", "elf"}
    for axis in p.study_axes:   # every member, both modes, n models; the distillation net marked once per axis
        a = s[s["axis"] == axis]
        assert len(a) == 2 * p.n_eval_models * len(study.sweep(axis))
        assert a[a["is_distill_arch"]]["variant"].nunique() == 1
    assert ek.tables.sweep_table(df)["distillation net"].eq("★").sum() == len(p.study_axes)
