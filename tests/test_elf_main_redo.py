"""03's redo (issue 14 part 2): its own schedule (distillation seeds, epochs, models), a feature model taken from the
08 map with the map's trajectory cells, and the paired gain table that calls a difference only beyond the spread
over distillation seeds."""
import numpy as np
import pandas as pd
import pytest

import elfkit as ek
from elfkit import profile_next, profiles
from elfkit.experiments import cross_arch, elf_regime, grid


def test_cross_feature_takes_an_08_feature_model_with_its_trajectory_cells():
    p = profiles.get("smoke", cross_feature="0:2:2")            # smoke regime_features: 8:1:1, 0:2:1, 0:2:2
    plan3, reads = grid.plan_of(cross_arch, p)
    plan8, _ = grid.plan_of(elf_regime, p)
    traj = {c.key for c in plan3.cells() if c.kind == "trajectory" and c.args["recipe"] == "elf_feature"}
    assert traj and traj <= set(plan8.keys())                   # the same trainings, all snapshots kept
    elf_rows = [lab for lab, c, _ in plan3.rows if c.args["elf"]]
    assert {(r["feature_per_class"], r["feature_train_epochs"], r["feature_epoch"]) for r in elf_rows} == {(0, 2, 2)}
    assert {c.args["elf"]["epoch"] for c in plan3.cells() if c.kind == "evaluate" and c.args["elf"]} == {2}
    for lab, c, _ in plan3.rows:                                # each ELF row names its architecture's feature model
        if c.args["elf"]:
            assert lab["feature_model"] == c.args["elf"]["features"].args["trajectory"].args["arch"]
    assert len({lab["feature_model"] for lab in elf_rows}) > 1
    assert {"cross_feature", "regime_features"} <= set(reads)
    plain, _ = grid.plan_of(cross_arch, profiles.get("smoke"))  # "" = the profile's feature model, as before
    assert not {c.key for c in plain.cells() if c.kind == "trajectory"} & set(plan8.keys())
    with pytest.raises(ek.ElfkitError, match="per_class:epochs:snapshot"):
        grid.plan_of(cross_arch, profiles.get("smoke", cross_feature="0:2"))
    with pytest.raises(ek.ElfkitError, match="must lie in 0..2"):
        grid.plan_of(cross_arch, profiles.get("smoke", cross_feature="0:2:3"))


def test_cross_schedule_sets_distillation_seeds_epochs_and_models():
    p = profiles.get("smoke", cross_seeds=(3, 4), cross_epochs=7, cross_models=3)
    plan, _ = grid.plan_of(cross_arch, p)
    sets = {(c.args["method"], c.args["seed"]) for c in plan.cells() if c.kind == "synset"}
    assert {s for _, s in sets} == {3, 4} and len(sets) == 2 * len({m for m, _ in sets})
    ev = [c for c in plan.cells() if c.kind == "evaluate"]
    assert {c.args["protocol"]["epochs"] for c in ev} == {7} and {c.args["model_seed"] for c in ev} == {0, 1, 2}
    assert {lab["distill_seed"] for lab, _, _ in plan.rows} == {3, 4}
    plain, _ = grid.plan_of(cross_arch, profiles.get("smoke"))
    assert all("distill_seed" not in lab for lab, _, _ in plain.rows)   # the committed records' shape


def _frame(gains: dict, base: float = 0.5) -> pd.DataFrame:
    """Paired records: per (distill seed, model seed) a baseline and an ELF model `gains[seed][model]` higher."""
    rows = []
    rng = np.random.default_rng(0)
    for d, per_model in gains.items():
        for m, g in enumerate(per_model):
            b = base + rng.uniform(-0.05, 0.05)
            lab = {"method": "DM", "ipc": 10, "eval_arch": "VGG11", "distill_seed": d, "model_seed": m,
                   "metric": "test_acc"}
            rows += [{**lab, "eval_mode": "baseline", "value": b}, {**lab, "eval_mode": "elf", "value": b + g}]
    return pd.DataFrame(rows)


def test_paired_gains_nest_models_in_distillation_seeds():
    gains = {0: [0.02, 0.04], 1: [0.05, 0.07], 2: [0.01, 0.03]}
    t = ek.tables.elf_gains(_frame(gains)).iloc[0]
    per_seed = np.array([np.mean(v) for v in gains.values()]) * 100     # 3, 6, 2 points
    assert t["gain"] == pytest.approx(per_seed.mean(), abs=0.01)
    assert t["gain std"] == pytest.approx(per_seed.std(), abs=0.01) and t["sets"] == 3
    assert t["called"] == "ELF helps"
    mixed = ek.tables.elf_gains(_frame({0: [0.02, 0.02], 1: [-0.03, -0.03]})).iloc[0]
    assert mixed["called"] == "within"                                  # |−0.5| ≤ 2.5: inside its spread
    one = ek.tables.elf_gains(_frame({0: [-0.1, -0.1]}).drop(columns="distill_seed")).iloc[0]
    assert one["sets"] == 1 and one["called"] == "within"               # one distilled set calls nothing


def test_elf_table_spread_is_over_distillation_seeds_when_there_are_several():
    df = _frame({0: [0.0, 0.0], 1: [0.0, 0.0]})
    df.loc[df["distill_seed"] == 1, "value"] += 0.10                    # the second set is 10 points better
    cell = ek.tables.elf_table(df).loc[("DM", 10), "VGG11"]
    per_seed = df[df["eval_mode"] == "baseline"].groupby("distill_seed")["value"].mean() * 100
    assert cell.startswith(ek.tables.pm(per_seed.mean(), per_seed.std(ddof=0)))


def test_the_03_redo_shares_08s_cells_and_evaluates_300_epochs():
    p = profiles.override(profiles.get("cpu"), **profile_next.overrides_for("cpu", "03_cross_arch"))
    plan3, _ = grid.plan_of(cross_arch, p)
    plan8, _ = grid.plan_of(elf_regime, profiles.get("cpu"))
    shared = set(plan3.keys()) & set(plan8.keys())
    ev = [c for c in plan3.cells() if c.kind == "evaluate"]
    assert {c.args["protocol"]["epochs"] for c in ev} == {300}
    dm10 = [c for c in ev if c.args["synset"].args["method"] == "DM" and c.args["synset"].args["ipc"] == 10]
    assert dm10 and {c.key for c in dm10} <= shared                     # 08 computed them already


def test_07_keeps_its_own_feature_model_when_03_takes_one_of_08s():
    from elfkit.experiments import ptm_cross_arch

    base, _ = grid.plan_of(ptm_cross_arch, profiles.get("smoke"))
    moved, reads = grid.plan_of(ptm_cross_arch, profiles.get("smoke", cross_feature="0:2:2"))
    assert base.keys() == moved.keys() and "cross_feature" not in reads
    own, reads = grid.plan_of(ptm_cross_arch, profiles.get("smoke", ptm_cross_feature="0:2:2"))   # 07's own field
    plan8, _ = grid.plan_of(elf_regime, profiles.get("smoke"))
    traj = {c.key for c in own.cells() if c.kind == "trajectory" and c.args["recipe"] == "elf_feature"}
    assert traj and traj <= set(plan8.keys()) and "ptm_cross_feature" in reads
    assert {lab["feature_epoch"] for lab, c, _ in own.rows if c.args["elf"]} == {2}
    with pytest.raises(ek.ElfkitError, match="repeats a seed"):
        grid.plan_of(cross_arch, profiles.get("smoke", cross_seeds=(0, 0)))


def test_03_elf_rows_carry_their_feature_models_measured_accuracy():
    p = profiles.get("smoke", cross_feature="0:2:2")
    plan, _ = grid.plan_of(cross_arch, p)
    outputs = {}
    for i, c in enumerate(plan.cells()):            # stand-in outputs: each trajectory scores its snapshots apart
        outputs[c.key] = {"score": {"1": 0.5 + i / 1000, "2": 0.8 + i / 1000},
                          "records": [{"model_seed": 0, "metric": "test_acc", "value": 0.7, "eval_arch": "x",
                                       "eval_mode": "baseline" if c.kind == "evaluate" and not c.args["elf"] else "elf"}]}
    recs = cross_arch.assemble(plan, outputs, None, None).records
    elf = [r for r in recs if r["eval_mode"] == "elf"]
    assert elf and all(r["feature_acc"] > 0.8 for r in elf)             # the snapshot of epoch 2, not epoch 1
    for (lab, cell, _), r in zip(plan.rows, recs):
        if cell.args["elf"]:
            assert r["feature_acc"] == outputs[cell.args["elf"]["features"].args["trajectory"].key]["score"]["2"]
    assert all("feature_acc" not in r for r in recs if r["eval_mode"] == "baseline")
    plain, _ = grid.plan_of(cross_arch, profiles.get("smoke"))          # the committed records' columns, as before
    outs = {c.key: outputs.get(c.key, {"score": {"2": 0.9}, "records": [{"value": 0.7}]}) for c in plain.cells()}
    assert all("feature_acc" not in r for r in cross_arch.assemble(plain, outs, None, None).records)
