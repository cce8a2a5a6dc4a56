"""04's redo (issue 14 part 2): its own schedule (distillation seeds, epochs, models), 08's full-data feature models
with their trajectory cells shared, and a paired gain table that calls a difference only beyond the spread over
distillation seeds."""
import pandas as pd
import pytest

import elfkit as ek
from elfkit import profile_next, profiles
from elfkit.experiments import elf_ablations as ab, elf_regime, grid

REDO = {"ablation_seeds": (3, 4), "ablation_epochs": 3, "ablation_models": 1, "ablation_feature": "0:2:2",
        "ablation_feature_epochs": (1, 2), "ablation_distill_epochs": 1}   # smoke regime_features: 8:1:1, 0:2:1, 0:2:2


def test_the_redo_schedule_sets_seeds_epochs_models_and_08s_feature_models():
    p = profiles.get("smoke", **REDO)
    plan, reads = grid.plan_of(ab, p)
    plan8, _ = grid.plan_of(elf_regime, profiles.get("smoke"))
    assert {c.args["seed"] for c in plan.cells() if c.kind == "synset"} == {3, 4}
    ev = [c for c in plan.cells() if c.kind == "evaluate"]
    assert {c.args["protocol"]["epochs"] for c in ev} == {3} and {c.args["model_seed"] for c in ev} == {0}
    assert {lab["distill_seed"] for lab, _, _ in plan.rows} == {3, 4}
    wide = [c.args["elf"]["features"].args["trajectory"] for c in ev
            if c.args["elf"] and c.args["elf"]["features"].args["trajectory"].args["recipe"] == "elf_feature"]
    assert {t.args["epochs"] for t in wide} == {2} and {t.args["data"]["train_per_class"] for t in wide} == {0}
    convnet = {c.args["elf"]["features"].args["trajectory"].key for lab, c, _ in plan.rows
               if lab["ablation_arch"] == "ConvNet" and c.args["elf"] and lab["feature_source"] == "wide"}
    assert len(convnet) == 1 and convnet <= set(plan8.keys())      # every ConvNet snapshot: 08's one training
    epochs = {lab["variant"]: c.args["elf"]["epoch"] for lab, c, _ in plan.rows
              if lab["ablation"] == "feature_epoch" and c.args["elf"]}
    assert epochs == {"1": 1, "2": 2}
    assert {lab["feature_epoch"] for lab, c, _ in plan.rows if lab["ablation"] == "loss_mode" and c.args["elf"]} == {2}
    distill = {c.args["elf"]["features"].args["trajectory"] for c in ev if c.args["elf"]
               and c.args["elf"]["features"].args["trajectory"].args["recipe"] == "mtt_expert"}
    assert distill and all(t.args["data"]["train_per_class"] == 0 and t.args["epochs"] == 1 for t in distill)
    trained = {(lab["feature_source"], lab["feature_per_class"], lab["feature_train_epochs"]) for lab, c, _ in plan.rows
               if lab["eval_mode"] == "elf" and "feature_model" in lab}
    assert trained == {("wide", 0, 2), ("distill", 0, 1)}          # each row names the training it read
    assert {"ablation_seeds", "ablation_epochs", "ablation_models", "ablation_feature"} <= set(reads)
    plain, _ = grid.plan_of(ab, profiles.get("smoke"))              # the committed records' shape, as before
    assert all("distill_seed" not in lab for lab, _, _ in plain.rows)
    assert not {c.key for c in plain.cells() if c.kind == "trajectory"} & set(plan8.keys())


def test_the_redo_refuses_snapshots_its_training_lacks_and_repeated_seeds():
    with pytest.raises(ek.ElfkitError, match=r"must lie in 0\.\.2"):
        grid.plan_of(ab, profiles.get("smoke", **{**REDO, "ablation_feature_epochs": (1, 5)}))
    with pytest.raises(ek.ElfkitError, match="repeats a seed"):
        grid.plan_of(ab, profiles.get("smoke", **{**REDO, "ablation_seeds": (3, 3)}))


def test_the_cpu_redo_reuses_08s_cells_and_evaluates_300_epochs():
    assert not profile_next.overrides_for("cpu", "04_elf_ablations")     # landed: the cpu profile holds them
    plan4, _ = grid.plan_of(ab, profiles.get("cpu"))
    plan8, _ = grid.plan_of(elf_regime, profiles.get("cpu"))
    ev = [c for c in plan4.cells() if c.kind == "evaluate"]
    assert {c.args["protocol"]["epochs"] for c in ev} == {300}
    snaps = {lab["variant"]: c.key for lab, c, _ in plan4.rows if lab["ablation"] == "feature_epoch"}
    assert set(snaps) == {"1", "2", "3"}
    shared = {c.key for c in ev} & set(plan8.keys())
    rows = [(lab, c) for lab, c, _ in plan4.rows if lab["ablation"] in ("feature_epoch", "loss_mode")
            and lab.get("variant") in ("1", "2", "3", "task")]
    assert rows and all(c.key in shared for _, c in rows)         # baselines and snapshot cells: 08's


def test_04s_landing_left_the_other_redos_cells_as_they_were():
    """Only 04 reads the ablation fields: the cpu profile's landed values against the ones before them move 04's cell
    keys and no cell key of 03's or 07's pending redo (07 plans from 06's committed records, copied in)."""
    import shutil
    from pathlib import Path

    from elfkit import paths
    from elfkit.experiments import cross_arch, ptm_cross_arch

    landed = profiles.get("cpu")
    records = paths.results_dir(profiles.label(landed), "06_ptm_options") / "records.json"
    records.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).resolve().parents[1] / "results/cpu/06_ptm_options/records.json", records)
    before = profiles.override(landed, ablation_seeds=(), ablation_epochs=0, ablation_models=0, ablation_feature="",
                               ablation_feature_epochs=(0, 1, 2), ablation_distill_epochs=2)
    assert set(grid.plan_of(ab, before)[0].keys()) != set(grid.plan_of(ab, landed)[0].keys())
    for module, slug in ((cross_arch, "03_cross_arch"), (ptm_cross_arch, "07_ptm_cross_arch")):
        pending = profile_next.overrides_for("cpu", slug)
        now, then = (profiles.override(p, **pending) for p in (landed, before))
        assert set(grid.plan_of(module, now)[0].keys()) == set(grid.plan_of(module, then)[0].keys())


def test_ablation_gains_pair_each_cell_with_its_architectures_baseline():
    rows = []
    for d, shift in ((0, 0.02), (1, 0.04)):
        for m in (0, 1):
            lab = {"ablation_arch": "AlexNet", "eval_arch": "AlexNet", "distill_seed": d, "model_seed": m,
                   "metric": "test_acc"}
            rows.append({**lab, "ablation": "loss_mode", "variant": "task", "eval_mode": "baseline", "value": 0.5})
            rows.append({**lab, "ablation": "feature_width", "variant": "W32", "eval_mode": "baseline",
                         "value": 0.5})                          # the same model under a second row's labels
            rows.append({**lab, "ablation": "lam_rear", "variant": "10", "eval_mode": "elf", "value": 0.5 + shift})
            rows.append({**lab, "ablation": "lam_rear", "variant": "0.1", "eval_mode": "elf",
                         "value": 0.5 - shift + 0.03})
    t = ek.tables.ablation_gains(pd.DataFrame(rows)).set_index("variant")
    assert t.loc["10", "gain"] == pytest.approx(3.0) and t.loc["10", "gain std"] == pytest.approx(1.0)
    assert t.loc["10", "called"] == "ELF helps" and t.loc["0.1", "called"] == "within"   # +0.0 ± 1.0
    nested = ek.tables.ablation_table(pd.DataFrame(rows))
    assert nested.loc[("lam_rear", "10"), "AlexNet"].startswith("53.0 ± 1.0")            # spread over the 2 sets
    one = [dict(r, value=0.54) if r["variant"] == "10" and r["model_seed"] == 1 else r
           for r in rows if r["distill_seed"] == 0]
    one_set = ek.tables.ablation_table(pd.DataFrame(one))
    assert one_set.loc[("lam_rear", "10"), "AlexNet"].startswith("53.0 ± 1.0")           # one set: over models
    mixed = [dict(r, value=0.6) if r["variant"] == "W32" and r["model_seed"] == 1 else r for r in rows]
    with pytest.raises(ValueError, match="baselines disagree"):
        ek.tables.ablation_gains(pd.DataFrame(mixed))


def test_ablation_contrasts_pair_each_setting_with_the_released_default():
    """Default (front_rear_task, CE, λ 1) at 80 %; L2 sits 1.0 then 2.0 points below it on the two sets (−1.5 ± 0.5,
    called); λ_rear 10 sits +0.5 then −0.5 (0.0 ± 0.5, within). The defaults themselves are no rows."""
    knobs = {"loss_mode": "front_rear_task", "feature_loss": "CE", "lam_front": 1.0, "lam_rear": 1.0,
             "feature_epoch": 3, "feature_source": "wide", "on_augmented": False}
    rows = []
    for d, (l2, lam) in enumerate(((-0.01, 0.005), (-0.02, -0.005))):
        for m in (0, 1):
            lab = {"ablation_arch": "AlexNet", "eval_arch": "AlexNet", "distill_seed": d, "model_seed": m,
                   "metric": "test_acc", "eval_mode": "elf"}
            noise = 0.004 if m else -0.004                           # models average out within a set
            for ablation, variant, change, shift in (("loss_mode", "front_rear_task", {}, 0.0),
                                                     ("feature_loss", "CE", {}, 0.0),
                                                     ("feature_loss", "L2", {"feature_loss": "L2"}, l2),
                                                     ("lam_rear", "1", {}, 0.0),
                                                     ("lam_rear", "10", {"lam_rear": 10.0}, lam)):
                rows.append({**lab, **knobs, **change, "ablation": ablation, "variant": variant,
                             "value": 0.8 + noise + shift})
            rows.append({**lab, "ablation": "loss_mode", "variant": "task", "eval_mode": "baseline", "value": 0.7})
    t = ek.tables.ablation_contrasts(pd.DataFrame(rows)).set_index(["ablation", "variant"])
    assert list(t.index) == [("feature_loss", "L2"), ("lam_rear", "10")]
    assert t.loc[("feature_loss", "L2"), "vs default"] == pytest.approx(-1.5)
    assert t.loc[("feature_loss", "L2"), "std"] == pytest.approx(0.5)
    assert t.loc[("feature_loss", "L2"), "per set"] == "-1.0 / -2.0"
    assert t.loc[("feature_loss", "L2"), "called"] == "below default"
    assert t.loc[("feature_loss", "L2"), "default"] == "CE" and t.loc[("lam_rear", "10"), "default"] == "1"
    assert t.loc[("lam_rear", "10"), "vs default"] == pytest.approx(0.0, abs=1e-9)
    assert t.loc[("lam_rear", "10"), "called"] == "within"


def test_the_redo_smoke_run_records_feature_accuracy_per_elf_row():
    ctx = ek.start("04_elf_ablations", "smoke", progress="off", quiet=True, overrides=REDO)
    df = ek.results.cached(ctx, ab.run, recompute=True).frame()
    acc = df[df["metric"] == "test_acc"]
    assert set(acc["distill_seed"]) == {3, 4}
    wide = acc[(acc["eval_mode"] == "elf") & (acc["feature_source"] == "wide")]
    assert len(wide) and wide["feature_acc"].between(0, 1).all()
    assert acc[acc["eval_mode"] == "baseline"]["feature_acc"].isna().all()
    gains = ek.tables.ablation_gains(df)
    assert (gains["sets"] == 2).all() and set(gains["ablation"]) == set(ab.ABLATIONS)
    contrasts = ek.tables.ablation_contrasts(df)
    assert (contrasts["sets"] == 2).all() and "feature_width" not in set(contrasts["ablation"])
