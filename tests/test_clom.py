"""CLoM: each distance equals its formula on random tensors; one (architecture, checkpoint) draw per call; PTMs stay
frozen; alpha 0 reproduces every method's unguided result; label-space/shape mismatches fail clearly."""
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import elfkit as ek
from elfkit import clom, data, experts, models
from elfkit.distill import dc, dm, dsa, mtt
from elfkit.errors import ElfkitError


@pytest.fixture(scope="module")
def toy():
    return data.synthetic(n_train=20, n_test=4)


def test_ce_code_is_the_mean_cross_entropy():
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    assert torch.allclose(clom.ce_code(logits, y), F.cross_entropy(logits, y))


def test_ce_ratio_equals_the_readme_ratio_with_explicit_real_labels():
    torch.manual_seed(0)
    C = 4
    logits, y_s = torch.randn(6, C), torch.tensor([0, 0, 1, 2, 3, 3])
    y_t = torch.tensor([0, 1, 1, 3, 3, 3, 2, 0, 1])
    logp = F.log_softmax(logits, 1)
    D = -(F.one_hot(y_t, C).float() @ logp.T)                   # D[i, j] = -O(y_T,i)^T log p*(x_S,j)
    M = F.one_hot(y_t, C).float() @ F.one_hot(y_s, C).float().T
    ref = (D * M).sum() / D.sum()
    got = clom.ce_ratio(logits, y_s, torch.bincount(y_t, minlength=C))
    assert torch.allclose(got, ref, rtol=1e-6)


def test_cos_contrastive_equals_the_pairwise_formula():
    torch.manual_seed(1)
    es, er = torch.randn(5, 7), torch.randn(9, 7)
    ys, yr = torch.tensor([0, 1, 1, 2, 0]), torch.randint(0, 3, (9,))
    num = den = 0.0
    for j in range(5):
        for i in range(9):
            d = 1 - float(es[j] @ er[i]) / float(es[j].norm() * er[i].norm())
            den += d
            num += d * float(ys[j] == yr[i])
    assert clom.cos_contrastive(es, ys, er, yr).item() == pytest.approx(num / den, rel=1e-5)


def _pool(n=2, classes=10, arch="ConvNetW32", channel=1):
    nets = []
    for k in range(n):
        torch.manual_seed(k)
        nets.append(models.create(arch, channel, classes, (28, 28)))
    return {arch: nets}


def test_one_draw_per_call_and_alpha_scales_only_the_loss(toy):
    pool = {**_pool(2), **_pool(1, arch="ConvNetW64")}
    g1 = clom.Guidance(pool, [1.0, 3.0], seed=5)
    g2 = clom.Guidance(pool, [1.0, 3.0], seed=5)
    x, y = toy.x_train[:10], toy.y_train[:10]
    draws = [g1._draw() for _ in range(200)]
    assert {a for a, _ in draws} == {"ConvNetW32", "ConvNetW64"} and {k for a, k in draws if a == "ConvNetW32"} == {0, 1}
    a, k = g2._draw()
    g2.g = clom.seeding.generator(clom.seeding.derive(5, "clom"))     # replay the same draw inside the call
    expected = g2.alphas[a] * F.cross_entropy(pool[a][k](x), y)
    assert torch.allclose(g2(x, y), expected)


def test_ptms_are_frozen_eval_mode_and_not_updated(toy):
    pool = _pool(1, arch="ConvNetBN")
    before = [p.clone() for p in pool["ConvNetBN"][0].parameters()]
    buffers = {k: v.clone() for k, v in pool["ConvNetBN"][0].named_buffers()}
    g = clom.Guidance(pool, 100.0, seed=0)
    assert all(not m.training for m in pool["ConvNetBN"][0].modules())
    dm.distill(toy, ipc=1, arch="ConvNetW32", iterations=3, batch_real=4, guidance=g)
    after = list(pool["ConvNetBN"][0].parameters())
    assert all(torch.equal(b, a) and not a.requires_grad for b, a in zip(before, after))
    assert all(torch.equal(buffers[k], v) for k, v in pool["ConvNetBN"][0].named_buffers())   # BN stats untouched


@pytest.mark.parametrize("method", ["DC", "DSA", "DM", "MTT"])
def test_alpha_zero_reproduces_the_unguided_result(toy, method, tmp_path):
    kw = dict(ipc=1, arch="ConvNetW32", iterations=3, seed=2)
    if method in ("DC", "DSA"):
        kw.update(batch_real=4, loops=(2, 1))
    elif method == "DM":
        kw.update(batch_real=4)
    else:
        kw.update(experts=experts.pool(toy, "ConvNetW32", 1, recipe="mtt_expert", epochs=2, root=tmp_path),
                  syn_steps=2, expert_epochs=1, max_start_epoch=1, lr_lr=1e-7)
    fn = {"DC": dc.distill, "DSA": dsa.distill, "DM": dm.distill, "MTT": mtt.distill}[method]
    plain = fn(toy, **kw)
    zero = fn(toy, guidance=clom.Guidance(_pool(2), 0.0, seed=9), **kw)
    guided = fn(toy, guidance=clom.Guidance(_pool(2), 1e3, seed=9), **kw)
    assert torch.equal(plain.images, zero.images)
    assert not torch.equal(plain.images, guided.images)
    assert guided.meta["clom"]["alphas"] == {"ConvNetW32": 1000.0} and "clom" not in plain.meta


def test_ce_with_another_label_space_or_input_shape_fails_clearly(toy):
    g = clom.Guidance(_pool(1, classes=7), 1.0)
    with pytest.raises(ElfkitError, match="predicts 7 classes but the target has 10"):
        g.check(toy.x_train[:2], 10)
    clom.Guidance(_pool(1, classes=7), 1.0, distance="cos", real=toy).check(toy.x_train[:2], 10)   # cos is fine
    with pytest.raises(ElfkitError, match="needs the target's real data"):
        clom.Guidance(_pool(1), 1.0, distance="cos")
    with pytest.raises(ElfkitError, match="one alpha, or one per pool architecture"):
        clom.Guidance(_pool(1), [1.0, 2.0, 3.0])
    with pytest.raises(ElfkitError, match="unknown CLoM distance"):
        clom.Guidance(_pool(1), 1.0, distance="l2")


def test_cos_and_ratio_guidance_give_image_gradients(toy):
    for distance in ("cos", "ce_ratio"):
        g = clom.Guidance(_pool(2), 1.0, distance=distance, real=toy, batch=32, seed=0, num_classes=10)
        x = toy.x_train[:10].clone().requires_grad_(True)
        loss = g(x, toy.y_train[:10])
        loss.backward()
        assert torch.isfinite(loss) and x.grad.abs().sum() > 0


def test_pool_members_have_distinct_initialisations(toy, tmp_path):
    ts = experts.pool(toy, "ConvNetW32", 2, recipe="ptm", epochs=1, root=tmp_path)
    a, b = ts[0].state(0), ts[1].state(0)
    assert ts[0].config["seed"] != ts[1].config["seed"]
    assert not torch.equal(a["classifier.weight"], b["classifier.weight"])


def test_ptm_guidance_checks_domain_shape_and_epoch(toy, tmp_path):
    from dataclasses import replace

    from elfkit import ptm

    pools = ptm.train_pools(toy, ["ConvNetW32"], 2, root=tmp_path, epochs=2)
    g = ptm.guidance(pools, source=toy, target=toy, epoch=1, alphas=10.0, model_num=1)
    assert g.config()["ptm_epoch"] == 1 and g.config()["pool"] == {"ConvNetW32": 1}
    other = replace(toy, name="other_domain")
    with pytest.raises(ElfkitError, match="use distance='cos'"):
        ptm.guidance(pools, source=other, target=toy, epoch=1, alphas=1.0)
    big = replace(toy, spec=replace(toy.spec, im_size=(32, 32), channel=3))
    with pytest.raises(ElfkitError, match="cannot take"):
        ptm.guidance(pools, source=big, target=toy, epoch=1, alphas=1.0, distance="cos")
    with pytest.raises(ElfkitError, match="no ConvNetW32 PTM snapshot at epoch 5"):
        ptm.guidance(pools, source=toy, target=toy, epoch=5, alphas=1.0)
    with pytest.raises(ElfkitError, match="model_num=3"):
        ptm.guidance(pools, source=toy, target=toy, epoch=1, alphas=1.0, model_num=3)
    assert [t.test_acc for t in pools["ConvNetW32"]][0].keys() == {1, 2}     # every epoch's accuracy is logged


def test_gradient_norm_and_the_calibration_rule():
    from elfkit import clom_calibration as cc

    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert abs(cc.grad_norm(lambda v, k: (v ** 2).sum() * (k + 1), x, 2) - 1.5 * 2 * float(x.norm())) < 1e-3
    ref = {"base_norm": 5.0, "clom_norm": 2.0}
    same = cc.calibrated_alpha(100.0, ref, {"base_norm": 5.0, "clom_norm": 0.5}, same_method=True)
    assert same == 400.0                                        # same method: α_ref · G_ref / G_d
    # another method (MTT vs DM's published setting): the same share α·G_d / G_base = 100·2/5 = 40
    alpha = cc.calibrated_alpha(100.0, ref, {"base_norm": 0.01, "clom_norm": 0.5}, same_method=False)
    assert abs(alpha * 0.5 / 0.01 - 40.0) < 1e-9 and abs(alpha - 0.8) < 1e-12
    for bad in ({"base_norm": 5.0, "clom_norm": 0.0}, {"base_norm": 0.0, "clom_norm": 0.5}):
        with pytest.raises(ek.ElfkitError, match="cannot be calibrated"):
            cc.calibrated_alpha(100.0, ref, bad, same_method=False)


def test_calibrated_arms_pull_the_images_as_hard_as_the_reference(tmp_path, monkeypatch):
    """06 with ptm_alpha_rule='calibrated': every arm's α·G equals the reference CE arm's α·G (the rule), the
    measured norms are recorded, and the α study scales the reference arm's α."""
    monkeypatch.setenv("ELFKIT_RESULTS_DIR", str(tmp_path))
    ctx = ek.start("06_ptm_options", "smoke", progress="off", quiet=True, overrides={
        "ptm_alpha_rule": "calibrated", "ptm_alpha_scales": [10.0], "ptm_calibration_draws": 1,
        "ptm_model_nums": [1], "ptm_arch_pools": ["ConvNet"], "ptm_epoch_grid": [2], "ptm_sources": ["ood_cos"]})
    df = ek.results.cached(ctx, ek.experiments.ptm_options.run, recompute=True).frame()
    g = df[df["metric"] == "grad_norm_clom"].set_index(["option", "calibration"])["value"]
    acc = df[(df["metric"] == "test_acc") & df["clom"]].groupby("option")["alpha"].first()
    ref = g[("1", "reference")]
    assert acc["1"] == 100.0 and abs(acc["ood_cos"] * g[("ood_cos", "calibration")] - 100.0 * ref) < 1e-6 * ref
    assert acc["ood_cos"] > 100.0 and acc["x10"] == 1000.0


def test_mtt_alpha_takes_the_share_of_dms_published_setting_and_07_uses_it(tmp_path, monkeypatch):
    """MTT has no published α: calibrated, its CE arm gets the share of its own image gradient that DM's published
    CE arm has of DM's (α·G_clom / G_base equal); 07 built from 06 with MTT records and uses that α."""
    from elfkit.experiments import ptm_cross_arch

    monkeypatch.setenv("ELFKIT_RESULTS_DIR", str(tmp_path))
    over = {"ptm_methods": ["DM", "MTT"], "ptm_alpha_rule": "calibrated", "ptm_calibration_draws": 1,
            "ptm_model_nums": [1], "ptm_arch_pools": ["ConvNet"], "ptm_epoch_grid": [2], "ptm_sources": ["target_ce"]}
    ctx = ek.start("06_ptm_options", "smoke", progress="off", quiet=True, overrides=over)
    df = ek.results.cached(ctx, ek.experiments.ptm_options.run, recompute=True).frame()
    norms = df[df["metric"].str.startswith("grad_norm")].pivot_table(
        index=["method", "calibration"], columns="metric", values="value", aggfunc="first")
    mtt = df[(df["method"] == "MTT") & (df["metric"] == "test_acc") & df["clom"]]
    alpha = mtt["alpha"].dropna().unique()
    assert len(alpha) == 1 and np.isfinite(alpha[0]) and alpha[0] > 0 and mtt["value"].notna().all()
    dm_share = 100.0 * norms.loc[("DM", "reference"), "grad_norm_clom"] / norms.loc[("DM", "reference"), "grad_norm_base"]
    mtt_share = alpha[0] * norms.loc[("MTT", "calibration"), "grad_norm_clom"] / norms.loc[
        ("MTT", "calibration"), "grad_norm_base"]
    assert abs(mtt_share - dm_share) < 1e-6 * dm_share
    ctx7 = ek.start("07_ptm_cross_arch", "smoke", progress="off", quiet=True,
                    overrides={**over, "ptm_pool_from": "06", "ptm_cross_methods": ["DM", "MTT"],
                               "ptm_cross_alpha_rule": "calibrated",
                               "ptm_cross_feature": "0:2:2"})
    rows = pd.DataFrame(ptm_cross_arch.run(ctx7).records)
    clom_mtt = rows[(rows["method"] == "MTT") & (rows["distill"] == "CLoM")]
    assert not clom_mtt.empty and abs(clom_mtt["alpha"].iloc[0] - alpha[0]) < 1e-9 * alpha[0]
    acc = rows.groupby("eval_mode")["feature_acc"]                      # 07's own feature model, its accuracy beside
    assert acc.count()["elf"] == (rows["eval_mode"] == "elf").sum() and acc.count()["baseline"] == 0
    assert rows.loc[rows["eval_mode"] == "elf", "feature_acc"].between(0, 1).all()


def test_ptm_table_spread_is_over_distillation_seeds_with_models_nested():
    import pandas as pd

    rows = [{"method": "DM", "study": "source", "option": o, "eval_arch": "ConvNet", "distill_seed": d,
             "model_seed": m, "metric": "test_acc", "value": v}
            for o, base in (("no CLoM", 0.70), ("target_ce", 0.72)) for d, shift in ((0, 0.0), (1, 0.02))
            for m, noise in ((0, -0.01), (1, 0.01)) for v in [base + shift + noise]]
    t = ek.ptm_tables.ptm_options(pd.DataFrame(rows))
    assert t.loc[("DM", "source", "target_ce"), "accuracy (%)"] == "73.0 ± 1.0"   # per-set means 72, 74
    assert t.loc[("DM", "source", "target_ce"), "n"] == 2 and t.loc[("DM", "source", "target_ce"), "Δ vs no CLoM"] == "+2.0"


def test_07_builds_its_pool_from_06s_best_options(tmp_path, monkeypatch):
    """ptm_pool_from='06': 07's CLoM set uses 06's best option per study (computed from 06's records), and its rows
    name the records they were chosen from (their sha256, a label: only a changed choice re-keys 07's cells)."""
    from elfkit.experiments import grid, ptm_cross_arch

    monkeypatch.setenv("ELFKIT_RESULTS_DIR", str(tmp_path))
    ctx = ek.start("06_ptm_options", "smoke", progress="off", quiet=True)
    res = ek.results.cached(ctx, ek.experiments.ptm_options.run, recompute=True)
    best, sha = ptm_cross_arch.best_options(res.path, "DM", "ConvNet")
    df = res.frame()
    acc = df[(df["metric"] == "test_acc") & df["clom"]].groupby(["study", "option"], sort=False)["value"].mean()
    for study, row in best.items():
        assert acc[(study, row["option"])] == acc[study].max()
    plan, _ = grid.plan_of(ptm_cross_arch, ek.profiles.get("smoke", ptm_pool_from="06"))
    guided = [c for c in plan.cells() if c.kind == "synset" and c.args.get("guidance")]
    assert guided and all(lab["chosen_from"] == sha for lab, _, _ in plan.rows)
    assert any("(06's best)" in lab.get("pool", "") for lab, _, _ in plan.rows)


def test_second_offline_ood_source_is_a_real_dataset_and_an_e5_arm():
    """animal_mnist: 10,000 animal silhouettes read from the animal-mnist wheel with a numpy-only unpickler; an E5
    option ood_cos@animal_mnist trains its PTM there (ptm_ood_source's own arm is unchanged)."""
    from elfkit.experiments import grid, ptm_options

    d = data.load("animal_mnist")
    assert d.x_train.shape == (9000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert d.y_train.bincount().tolist() == [900] * 10 and abs(float(d.x_train.mean())) < 0.01
    p = ek.profiles.get("cpu", ptm_sources=("ood_cos", "ood_cos@animal_mnist"))
    opts = {o["option"]: o for o in ptm_options.options(p) if o["study"] == "source"}
    assert opts["ood_cos@animal_mnist"]["domain"] == "ood@animal_mnist"
    assert grid.ptm_source(p, 0, "ood@animal_mnist")["dataset"] == "animal_mnist"
    assert grid.ptm_source(p, 0, "ood")["dataset"] == "mnist_5k"
    with pytest.raises(ValueError, match="ood_cos@<dataset>"):
        ptm_options.source_of("target_ce@animal_mnist")


def test_numpy_only_unpickler_refuses_anything_else(tmp_path):
    import gzip
    import pickle

    from elfkit import data as datasets

    f = tmp_path / "evil.gz"
    with gzip.open(f, "wb") as fh:
        pickle.dump(print, fh)           # a callable: what a malicious file would smuggle in
    with pytest.raises(pickle.UnpicklingError, match="not a numpy array part"):
        datasets.NumpyOnly(gzip.open(f, "rb")).load()


def test_ptm_studies_take_their_own_evaluation_length():
    from elfkit.experiments import grid, ptm_cross_arch, ptm_options

    for mod, field in ((ptm_options, "ptm_eval_epochs"), (ptm_cross_arch, "ptm_cross_eval_epochs")):
        plan, reads = grid.plan_of(mod, ek.profiles.get("smoke", **{field: 5}))
        assert {c.args["protocol"]["epochs"] for c in plan.cells() if c.kind == "evaluate"} == {5}
        assert field in reads and "eval_epochs" not in reads
