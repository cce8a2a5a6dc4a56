"""05's redo (issue 14 part 2): matrix and sweeps per distillation seed with their own schedule, the sweeps' ELF on
08's full-data feature models (the width members' trainings shared with 04's redo), and gap / gain tables that call a
difference only beyond the spread over distillation seeds."""
import pandas as pd
import pytest

import elfkit as ek
from elfkit import profile_next, profiles
from elfkit.experiments import elf_ablations, elf_regime, grid, inductive_bias as ib

REDO = {"study_seeds": (3, 4), "study_epochs": 3, "study_models": 1, "study_feature": "0:2:2"}


def trajectory(c):
    return c.args["elf"]["features"].args["trajectory"] if c.kind == "evaluate" and c.args["elf"] else None


def test_the_redo_distils_every_set_per_seed_and_reads_08s_feature_models():
    p = profiles.get("smoke", **REDO)
    plan, reads = grid.plan_of(ib, p)
    plan8, _ = grid.plan_of(elf_regime, profiles.get("smoke"))
    sets = [c for c in plan.cells() if c.kind == "synset"]
    assert {c.args["seed"] for c in sets} == {3, 4}
    assert len(sets) == 2 * (len(p.study_matrix_archs) + 1)        # per seed: every A's matrix set + the sweep set
    ev = [c for c in plan.cells() if c.kind == "evaluate"]
    assert {c.args["protocol"]["epochs"] for c in ev} == {3} and {c.args["model_seed"] for c in ev} == {0}
    assert {lab["distill_seed"] for lab, _, _ in plan.rows} == {3, 4}
    trained = {trajectory(c) for c in ev} - {None}
    assert trained and all(t.args["epochs"] == 2 and t.args["data"]["train_per_class"] == 0 for t in trained)
    convnet = {trajectory(c).key for lab, c, _ in plan.rows if lab["study"] == "sweep" and lab["eval_mode"] == "elf"
               and lab["is_distill_arch"] and not isinstance(c, list)}
    assert len(convnet) == 1 and convnet <= set(plan8.keys())      # the distillation ConvNet's: 08's training
    named = [lab for lab, c, _ in plan.rows if lab["eval_mode"] == "elf" and not isinstance(c, list)]
    assert named and all((lab["feature_per_class"], lab["feature_train_epochs"], lab["feature_epoch"]) == (0, 2, 2)
                         for lab in named)
    assert {"study_seeds", "study_epochs", "study_models", "study_feature"} <= set(reads)
    plain, _ = grid.plan_of(ib, profiles.get("smoke"))              # the committed records' shape, as before
    assert all("distill_seed" not in lab and "feature_per_class" not in lab for lab, _, _ in plain.rows)
    assert {c.args["seed"] for c in plain.cells() if c.kind == "synset"} == {0}


def test_the_redo_refuses_a_repeated_seed():
    with pytest.raises(ek.ElfkitError, match="repeats a seed"):
        grid.plan_of(ib, profiles.get("smoke", **{**REDO, "study_seeds": (3, 3)}))


def test_the_cpu_redo_shares_08s_sets_and_04s_width_trainings():
    cpu = profiles.get("cpu")
    assert not profile_next.overrides_for("cpu", "05_inductive_bias")     # landed: the cpu profile holds them
    p5 = cpu
    p4 = cpu                                                             # 04 landed too
    plan5, _ = grid.plan_of(ib, p5)
    plan4, _ = grid.plan_of(elf_ablations, p4)
    plan8, _ = grid.plan_of(elf_regime, cpu)
    ev = [c for c in plan5.cells() if c.kind == "evaluate"]
    assert {c.args["protocol"]["epochs"] for c in ev} == {300} and {c.args["model_seed"] for c in ev} == {0, 1}
    sweep_sets = {c.args["synset"].key for lab, c, _ in plan5.rows if lab["study"] == "sweep"}
    assert len(sweep_sets) == 2 and sweep_sets <= set(plan8.keys())         # 08's DM IPC-10 sets
    widths = {t.args["arch"]: t.key for t in map(trajectory, ev) if t and t.args["arch"].startswith("ConvNetW")}
    assert set(widths) == {"ConvNetW32", "ConvNetW64", "ConvNetW256"} and set(widths.values()) <= set(plan4.keys())


def test_05s_landing_left_the_other_redos_cells_as_they_were():
    """Only 05 reads study_seeds/epochs/models/feature: the cpu profile's landed values against the ones before
    them move 05's cell keys and no cell key of 03's or 04's pending redo."""
    from elfkit.experiments import cross_arch

    landed = profiles.get("cpu")
    before = profiles.override(landed, study_seeds=(), study_epochs=0, study_models=0, study_feature="")
    assert set(grid.plan_of(ib, before)[0].keys()) != set(grid.plan_of(ib, landed)[0].keys())
    for module, slug in ((elf_ablations, "04_elf_ablations"), (cross_arch, "03_cross_arch")):
        pending = profile_next.overrides_for("cpu", slug)
        now, then = (profiles.override(p, **pending) for p in (landed, before))
        assert set(grid.plan_of(module, now)[0].keys()) == set(grid.plan_of(module, then)[0].keys())


def matrix_rows():
    """Two sets; A's own set beats B's on A by 4 ± 2 points, B's own set ties A's on B (0 ± 2)."""
    rows = []
    for d, shift in ((0, 0.02), (1, -0.02)):
        for m in (0, 1):
            for a, b, v in (("A", "A", 0.70 + shift), ("B", "A", 0.66), ("A", "B", 0.60 + shift), ("B", "B", 0.60)):
                rows.append({"study": "matrix", "distill_arch": a, "eval_arch": b, "distill_seed": d,
                             "model_seed": m, "metric": "test_acc", "value": v + (0.01 if m else -0.01),
                             "eval_mode": "baseline"})
    return rows


def test_diagonal_gaps_call_a_gap_only_beyond_its_spread_over_sets():
    t = ek.tables.diagonal_gaps(pd.DataFrame(matrix_rows()))
    assert t.loc["A", "gap (points)"] == pytest.approx(4.0) and t.loc["A", "gap std"] == pytest.approx(2.0)
    assert t.loc["A", "called"] == "own set best" and t.loc["B", "called"] == "within"
    assert (t["sets"] == 2).all()
    one = ek.tables.diagonal_gaps(pd.DataFrame([r for r in matrix_rows() if r["distill_seed"] == 0]))
    assert one.loc["A", "gap (points)"] == pytest.approx(6.0) and one.loc["A", "called"] == "within"
    t = ek.tables.matrix_table(pd.DataFrame(matrix_rows()))
    assert t.loc["A", "A"] == "70.0 ± 2.0"                     # spread over the two sets, models nested (not 2.2)
    part = ek.tables.diagonal_gaps(pd.DataFrame([r for r in matrix_rows()
                                                 if not (r["distill_seed"] == 1 and r["distill_arch"] == "B")]))
    assert part["sets"].tolist() == [1, 1] and part.loc["A", "gap (points)"] == pytest.approx(6.0)   # --peek: set 1
    #                                           has no B set yet, so neither gap exists there (and nothing raises)


def test_sweep_gains_pair_each_member_with_its_own_baseline():
    rows = []
    for d, shift in ((0, 0.01), (1, 0.03)):
        for m in (0, 1):
            lab = {"study": "sweep", "axis": "depth", "distill_seed": d, "model_seed": m, "metric": "test_acc"}
            rows += [{**lab, "variant": "4", "eval_arch": "ConvNetD4", "eval_mode": "baseline", "value": 0.7},
                     {**lab, "variant": "4", "eval_arch": "ConvNetD4", "eval_mode": "elf", "value": 0.7 + shift},
                     {**lab, "variant": "1", "eval_arch": "ConvNetD1", "eval_mode": "baseline", "value": 0.5},
                     {**lab, "variant": "1", "eval_arch": "ConvNetD1", "eval_mode": "elf", "value": 0.5 - shift}]
    rows.append({"study": "matrix", "distill_arch": "ConvNet", "eval_arch": "ConvNetD4", "eval_mode": "baseline",
                 "distill_seed": 0, "model_seed": 0, "metric": "test_acc", "value": 0.1})   # not a sweep row
    t = ek.tables.sweep_gains(pd.DataFrame(rows)).set_index("variant")
    assert t.loc["4", "gain"] == pytest.approx(2.0) and t.loc["4", "called"] == "ELF helps"
    assert t.loc["1", "gain"] == pytest.approx(-2.0) and t.loc["1", "called"] == "ELF hurts"


def test_sweep_drops_pair_each_member_with_its_axis_distillation_network_per_set():
    """★ = 70 % baseline, 72 % ELF on both sets; the member sits 3 ± 1 below ★ under the baseline and ELF lifts it by
    4 ± 1 against ★'s 2: relative to ★, +1 and +3 on the two sets (2 ± 1)."""
    rows = []
    for d, off in ((0, -1.0), (1, 1.0)):
        for m in (0, 1):
            lab = {"study": "sweep", "axis": "depth", "distill_seed": d, "model_seed": m, "metric": "test_acc"}
            noise = 0.005 if m else -0.005                               # models average out within a set
            rows += [{**lab, "variant": "3", "eval_arch": "ConvNetD3", "is_distill_arch": True,
                      "eval_mode": "baseline", "value": 0.70 + noise},
                     {**lab, "variant": "3", "eval_arch": "ConvNetD3", "is_distill_arch": True,
                      "eval_mode": "elf", "value": 0.72 + noise},
                     {**lab, "variant": "4", "eval_arch": "ConvNetD4", "is_distill_arch": False,
                      "eval_mode": "baseline", "value": 0.67 + off / 100 + noise},
                     {**lab, "variant": "4", "eval_arch": "ConvNetD4", "is_distill_arch": False,
                      "eval_mode": "elf", "value": 0.71 + 2 * off / 100 + noise}]
    t = ek.tables.sweep_drops(pd.DataFrame(rows)).set_index("variant")
    assert list(t.index) == ["4"]                                       # ★ is the reference, not a row
    assert t.loc["4", "drop"] == pytest.approx(-3.0) and t.loc["4", "drop std"] == pytest.approx(1.0)
    assert t.loc["4", "drop with ELF"] == pytest.approx(-1.0)
    assert t.loc["4", "ELF gain, member − ★"] == pytest.approx(2.0)
    assert t.loc["4", "relative std"] == pytest.approx(1.0)
    assert t.loc["4", "drop called"] == "below ★" and t.loc["4", "ELF called"] == "member gains more"
    one = ek.tables.sweep_drops(pd.DataFrame([r for r in rows if r["distill_seed"] == 0])).set_index("variant")
    assert one.loc["4", "sets"] == 1 and one.loc["4", "drop called"] == "within"      # one set calls nothing


def test_the_redo_smoke_run_records_both_sets_and_feature_accuracy():
    ctx = ek.start("05_inductive_bias", "smoke", progress="off", quiet=True, overrides=REDO)
    df = ek.results.cached(ctx, ib.run, recompute=True).frame()
    acc = df[df["metric"] == "test_acc"]
    assert set(acc["distill_seed"]) == {3, 4}
    elf = acc[acc["eval_mode"] == "elf"]
    assert len(elf) and elf["feature_acc"].between(0, 1).all()
    assert acc[acc["eval_mode"] == "baseline"]["feature_acc"].isna().all()
    assert (ek.tables.sweep_gains(df)["sets"] == 2).all() and (ek.tables.diagonal_gaps(df)["sets"] == 2).all()
    drops = ek.tables.sweep_drops(df)
    assert len(drops) and (drops["sets"] == 2).all() and drops["ELF gain, member − ★"].notna().all()
