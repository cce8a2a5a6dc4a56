"""06's redo options (issue 15): E4 from one longer PTM run, cross-architecture evaluation of chosen studies, the
models per cell, the paired contrasts and the plateau table, and the pending profile values that drive the redo."""
import shutil
from pathlib import Path

import pandas as pd
import pytest

import elfkit as ek
from elfkit import profile_next, profiles
from elfkit.experiments import BY_SLUG, grid, ptm_options

ROOT = Path(__file__).resolve().parents[1]


def _pools(plan, study):
    """{trajectory epochs} of the PTM members of one study's CLoM sets."""
    out = set()
    for labels, cell, _ in plan.rows:
        g = cell.args["synset"].args.get("guidance")
        if g and labels["study"] == study:
            out |= {(t.args["epochs"], t.key) for members in g["pools"].values() for t in members}
    return out


def test_a_snapshot_past_its_run_stops_at_planning():
    with pytest.raises(ek.ElfkitError, match="past its run"):
        grid.plan_of(ptm_options, profiles.get("smoke", ptm_epoch_grid=(1, 5)))        # pools train 2 epochs
    grid.plan_of(ptm_options, profiles.get("smoke", ptm_epoch_grid=(1, 5), ptm_plateau_epochs=5))


def test_e4_takes_every_snapshot_from_one_longer_ptm_run():
    p = profiles.get("smoke", ptm_plateau_epochs=5, ptm_epoch_grid=(1, 3, 5))
    plan, reads = grid.plan_of(ptm_options, p)
    e4 = _pools(plan, "ptm_epoch")
    assert {e for e, _ in e4} == {5} and len(e4) == 1            # one run, three snapshots
    assert {e for e, _ in _pools(plan, "initialisations")} == {p.ptm_epochs}
    assert "ptm_plateau_epochs" in reads
    plain, _ = grid.plan_of(ptm_options, profiles.get("smoke"))  # default 0: the pools' own runs, as before
    assert {e for e, _ in _pools(plain, "ptm_epoch")} == {profiles.get("smoke").ptm_epochs}


def test_only_the_named_studies_are_evaluated_across_architectures():
    p = profiles.get("smoke", ptm_eval_archs=("ConvNetW32",), ptm_eval_studies=("architectures",), ptm_eval_models=3)
    plan, _ = grid.plan_of(ptm_options, p)
    crossed = {lab["study"] for lab, c, _ in plan.rows if c.args["arch"] == "ConvNetW32"}
    assert crossed == {"architectures"}
    seeds = {c.args["model_seed"] for c in plan.cells() if c.kind == "evaluate"}
    assert seeds == {0, 1, 2}                                        # ptm_eval_models, not n_eval_models (2)
    no_clom = [lab for lab, c, _ in plan.rows if lab["study"] == "architectures" and not lab["clom"]]
    assert {lab.get("option") for lab in no_clom} == {"no CLoM"} and len(no_clom) == 2 * 3
    with pytest.raises(ValueError, match="unknown studies"):
        grid.plan_of(ptm_options, profiles.get("smoke", ptm_eval_studies=("architecture",)))


def test_e4_records_carry_its_ptms_accuracy_curve():
    """assemble adds the E4 PTM's test accuracy after every epoch once (metric ptm_test_acc), and the plateau table
    reads it: the first epoch whose running mean is within tolerance of the best."""
    p = profiles.get("smoke", ptm_plateau_epochs=4, ptm_epoch_grid=(1, 4))
    plan, _ = grid.plan_of(ptm_options, p)
    curve = {"1": 0.50, "2": 0.70, "3": 0.80, "4": 0.801}
    outputs = {}
    for c in plan.cells():
        if c.kind == "trajectory":
            outputs[c.key] = {"test_acc": curve if c.args["epochs"] == 4 else {"1": 0.4, "2": 0.5}}
        elif c.kind == "evaluate":
            outputs[c.key] = {"records": [{"eval_arch": c.args["arch"], "model_seed": c.args["model_seed"],
                                           "metric": "test_acc", "value": 0.6}]}
    df = pd.DataFrame(ptm_options.assemble(plan, outputs, None, None).records)
    ptm = df[df["metric"] == "ptm_test_acc"]
    assert sorted(ptm["epoch"]) == [1, 2, 3, 4] and set(ptm["study"]) == {"ptm_epoch"}
    t = ek.ptm_tables.ptm_plateau(df, window=1, tolerance=0.5)
    assert t.loc[0, "plateau epoch"] == 3 and t.loc[0, "@1 %"] == 50.0 and t.loc[0, "@4 %"] == 80.1


def test_contrasts_are_paired_by_distillation_seed_and_called_only_beyond_their_spread():
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.04), (2, -0.04)):        # the seeds move every arm together
        for option, gain, window_gain in (("no CLoM", 0.0, 0.0), ("1", 0.010, 0.0), ("3", 0.012, 0.002)):
            for w in (0, 1):
                for m in (0, 1):
                    rows.append({"method": "DM", "study": "initialisations", "option": option, "eval_arch": "ConvNet",
                                 "distill_seed": seed, "member_window": w, "model_seed": m, "metric": "test_acc",
                                 "value": 0.7 + shift + gain + (window_gain if w else -window_gain)})
    t = ek.ptm_tables.ptm_contrasts(pd.DataFrame(rows))
    vs_none = t.loc[("DM", "initialisations", "3", "ConvNet", "no CLoM")]
    assert vs_none["Δ (points)"] == "1.2 ± 0.0" and vs_none["called"] == "higher" and vs_none["seeds"] == 3
    vs_one = t.loc[("DM", "initialisations", "3", "ConvNet", "1")]
    assert vs_one["Δ (points)"] == "0.2 ± 0.0" and vs_one["called"] == "higher"
    assert vs_none["per seed"] == "+1.20 / +1.20 / +1.20"
    # the unpaired spread (4 points between seeds) would have hidden both; one seed is never called
    one = ek.ptm_tables.ptm_contrasts(pd.DataFrame([r for r in rows if r["distill_seed"] == 0]))
    assert set(one["called"]) == {"within"}


@pytest.mark.parametrize("profile,slug", [(p, s) for p, d in profile_next.NEXT.items() for s in d])
def test_pending_profile_values_are_valid_overrides_that_change_the_plan(profile, slug):
    from elfkit import paths

    changes = profile_next.overrides_for(profile, slug)
    if changes.get("ptm_pool_from") == "06":     # 07 chooses from 06's committed records: a copy, read only
        here = paths.results_dir(profile, "06_ptm_options")
        here.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "results" / profile / "06_ptm_options" / "records.json", here / "records.json")
    base = profiles.get(profile)
    same = [k for k, v in changes.items() if getattr(base, k) == getattr(profiles.override(base, **{k: v}), k)]
    assert not same, f"pending values {same} are already the profile's: drop them from profile_next"
    new, reads = grid.plan_of(BY_SLUG[slug], profiles.override(base, **changes))
    old, _ = grid.plan_of(BY_SLUG[slug], base)
    assert set(new.keys()) != set(old.keys()) and set(changes) <= set(reads)


def test_the_cpu_06_has_three_distillation_seeds_per_arm_and_300_epochs():
    plan, _ = grid.plan_of(ptm_options, profiles.get("cpu"))
    per_arm: dict = {}
    for lab, c, _ in plan.rows:
        per_arm.setdefault((lab["study"], lab["option"]), set()).add(lab["distill_seed"])
    assert all(s == {0, 1, 2} for s in per_arm.values())
    assert {c.args["protocol"]["epochs"] for c in plan.cells() if c.kind == "evaluate"} == {300}


def test_07_distils_every_arm_from_each_distillation_seed_and_pairs_its_gains():
    from elfkit.experiments import ptm_cross_arch

    plan, _ = grid.plan_of(ptm_cross_arch, profiles.get("smoke", ptm_cross_seeds=(0, 1)))
    sets = {(lab["distill"], lab["distill_seed"]): c.args["synset"].key for lab, c, _ in plan.rows}
    assert len(set(sets.values())) == 4 and {k[1] for k in sets} == {0, 1}
    one, _ = grid.plan_of(ptm_cross_arch, profiles.get("smoke"))
    assert all("distill_seed" not in lab for lab, _, _ in one.rows)     # the default plan is unchanged
    rows = [{"method": "DM", "eval_arch": "VGG11", "distill_seed": s, "model_seed": m, "distill": dist,
             "eval_mode": mode, "metric": "test_acc", "value": 0.70 + 0.05 * s + gain}
            for s in (0, 1, 2) for m in (0, 1)
            for dist, mode, gain in (("no CLoM", "baseline", 0.0), ("CLoM", "baseline", 0.01),
                                     ("no CLoM", "elf", -0.02 + 0.01 * s), ("CLoM", "elf", 0.0))]
    t = ek.ptm_tables.ptm_cross_gains(pd.DataFrame(rows))
    assert t.loc[("DM", "VGG11", "CLoM"), "gain (points)"] == "1.0 ± 0.0"
    assert t.loc[("DM", "VGG11", "CLoM"), "called"] == "higher"
    assert t.loc[("DM", "VGG11", "ELF"), "called"] == "lower"             # -2, -1, 0: mean -1.0 > std 0.8
    assert t.loc[("DM", "VGG11", "CLoM + ELF"), "called"] == "within"


def test_07_takes_dms_choice_for_mtt_and_a_late_epoch_from_the_plateau_run(tmp_path, monkeypatch):
    """ptm_choose_from='DM': MTT's CLoM set uses the options DM's 06 arms chose (06 need not study MTT); a chosen
    PTM epoch past the pools' length is a snapshot of E4's longer run."""
    import json

    from elfkit import paths
    from elfkit.experiments import ptm_cross_arch

    monkeypatch.setenv("ELFKIT_RESULTS_DIR", str(tmp_path))
    p = profiles.get("smoke", ptm_pool_from="06", ptm_cross_methods=("DM", "MTT"), ptm_choose_from="DM",
                     ptm_plateau_epochs=5)
    best = {"initialisations": {"model_num": 2}, "architectures": {"pool": "ConvNet"},
            "ptm_epoch": {"ptm_epoch": 5, "ptm_train_epochs": 5}, "source": {"option": "target_ce"}}
    rows = [{"metric": "test_acc", "clom": True, "method": "DM", "eval_arch": "ConvNet", "study": st,
             "option": "best", "value": 0.9, **extra} for st, extra in best.items()]
    f = paths.results_dir(profiles.label(p), "06_ptm_options") / "records.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps({"records": rows, "sha256": "sha256:x"}))
    plan, reads = grid.plan_of(ptm_cross_arch, p)
    guided = {c.args["method"]: c.args["guidance"] for c in plan.cells() if c.kind == "synset" and
              c.args.get("guidance")}
    assert set(guided) == {"DM", "MTT"} and "ptm_choose_from" in reads
    for g in guided.values():
        (members,) = g["pools"].values()
        assert g["epoch"] == 5 and len(members) == 2 and {t.args["epochs"] for t in members} == {5}
    assert any("chosen by DM" in lab["pool"] for lab, _, _ in plan.rows if lab["method"] == "MTT")
    assert all(lab["chosen_from"] == "sha256:x" for lab, _, _ in plan.rows)   # a label, not part of any key
    keys = {c.key for c in plan.cells()}
    f.write_text(json.dumps({"records": rows, "sha256": "sha256:rewritten"}))
    assert {c.key for c in grid.plan_of(ptm_cross_arch, p)[0].cells()} == keys
    # a chosen epoch within the pools' length: the pools' own run (the same weights up to there), not E4's long one
    early = [{**r, "ptm_epoch": 2} if r["study"] == "ptm_epoch" else r for r in rows]
    f.write_text(json.dumps({"records": early, "sha256": "sha256:z"}))
    for c in grid.plan_of(ptm_cross_arch, p)[0].cells():
        if c.kind == "synset" and c.args.get("guidance"):
            assert {t.args["epochs"] for m in c.args["guidance"]["pools"].values() for t in m} == {p.ptm_epochs}
    # records that do not say which run: the pools' (2 epochs), which has no snapshot 5
    rows = [{k: v for k, v in r.items() if k != "ptm_train_epochs"} for r in rows]
    f.write_text(json.dumps({"records": rows, "sha256": "sha256:y"}))
    with pytest.raises(ek.ElfkitError, match="past its run"):
        grid.plan_of(ptm_cross_arch, p)


def test_plateau_is_the_first_epoch_of_the_first_window_near_the_best():
    """A curve rising 1 point per epoch to epoch 20, then flat at 90 %: the first 5-epoch window whose mean is within
    0.5 points of the best (90.0) starts at epoch 19 (19..23: mean 89.8); a 3-epoch run has no full window."""
    acc = {e: min(70 + e, 90) / 100 for e in range(1, 41)}
    rows = [{"method": "DM", "model": "ConvNet", "member": 0, "epoch": e, "metric": "ptm_test_acc", "value": v,
             "study": "ptm_epoch", "option": "PTM"} for e, v in acc.items()]
    rows += [{"method": "DM", "study": "ptm_epoch", "option": o, "metric": "test_acc", "value": 0.8}
             for o in ("no CLoM", "1", "40")]
    t = ek.ptm_tables.ptm_plateau(pd.DataFrame(rows))
    assert t.loc[0, "plateau epoch"] == 19 and t.loc[0, "@1 %"] == 71.0 and t.loc[0, "@40 %"] == 90.0
    short = ek.ptm_tables.ptm_plateau(pd.DataFrame([r for r in rows if r.get("epoch", 0) <= 3 or "epoch" not in r]))
    assert short.loc[0, "epochs trained"] == 3 and short.loc[0, "plateau epoch"] == 3


def test_each_study_is_compared_with_its_own_reference_option():
    """E4 against its longest-trained PTM whatever the grid's order; the α study against ×1."""
    rows = [{"method": "DM", "study": st, "option": o, "eval_arch": "ConvNet", "distill_seed": s, "model_seed": 0,
             "metric": "test_acc", "value": v + 0.01 * s}
            for st, opts in (("ptm_epoch", {"no CLoM": 0.70, "60": 0.72, "1": 0.69, "10": 0.73}),
                             ("alpha", {"no CLoM": 0.70, "x0.1": 0.71, "x1": 0.72, "x10": 0.60}))
            for o, v in opts.items() for s in (0, 1)]
    t = ek.ptm_tables.ptm_contrasts(pd.DataFrame(rows)).reset_index()
    against = t[t["against"] != "no CLoM"].groupby("study")["against"].unique()
    assert list(against["ptm_epoch"]) == ["60"] and list(against["alpha"]) == ["x1"]
    e4 = t[(t["study"] == "ptm_epoch") & (t["against"] == "60")].set_index("option")["Δ (points)"]
    assert e4["10"] == "1.0 ± 0.0" and e4["1"] == "-3.0 ± 0.0" and "60" not in e4.index


def _redo_plan():
    p = profiles.get("cpu")
    return p, grid.plan_of(ptm_options, p)[0]


def test_alpha_is_calibrated_once_per_domain_and_distance_not_per_arm():
    """Every CE-on-target arm (E2, E3, E4, α study) is calibrated on the reference cell itself (so α is the published
    one, × the α study's scale); the cos arms get one calibration per source and seed, whatever else they vary."""
    p, plan = _redo_plan()
    by_option: dict = {}
    for lab, c, _ in plan.rows:
        g = c.args["synset"].args.get("guidance")
        if g:
            a = g["alpha"]
            by_option.setdefault((lab["study"], lab["option"], lab["distill_seed"]), set()).add(
                (a["reference"].key, a["calibration"].key, a["reference_alpha"]))
    for (study, option, _), found in by_option.items():
        ((ref, cal, alpha),) = found
        if study != "source" or option == "target_ce":
            assert cal == ref and alpha == 100.0 * (float(option[1:]) if study == "alpha" else 1.0)
        else:
            assert cal != ref
    calibrations = {c.key for c in plan.cells() if c.kind == "calibration"}
    assert len(calibrations) == len(p.ptm_seeds) * 4        # reference + target cos + 2 out-of-domain cos sources


def test_balanced_e2_arms_use_the_same_members():
    """ptm_member_balance: the single-PTM arm averages over members 0, 1 and 2 (3 windows), the 3-member arm uses
    the same three at once — neither rests on the weakest member alone; an n that does not divide max n stops."""
    p, plan = _redo_plan()
    used: dict = {}
    for lab, c, _ in plan.rows:
        g = c.args["synset"].args.get("guidance")
        if g and lab["study"] == "initialisations" and lab["distill_seed"] == 0:
            (members,) = g["pools"].values()
            used.setdefault(lab["option"], set()).add(tuple(t.key for t in members))
    assert len(used["1"]) == 3 and len(used["3"]) == 1
    assert {k for w in used["1"] for k in w} == set(next(iter(used["3"])))
    with pytest.raises(ek.ElfkitError, match="divide"):
        grid.plan_of(ptm_options, profiles.override(p, ptm_model_nums=(2, 3)))


def test_06s_redo_landing_left_07s_cells_as_they_were():
    """07 has its own seeds, α rule and schedule: the cpu profile's 06 values (issue 15's redo) against the ones
    before it move no 07 cell key (and 07 still plans: its profile pool keeps a fixed α)."""
    from elfkit.experiments import ptm_cross_arch

    landed = profiles.get("cpu")
    before = profiles.override(landed, ptm_seeds=(), ptm_alpha_rule="fixed", ptm_member_balance=False,
                               ptm_eval_archs=(), ptm_eval_studies=(), ptm_eval_epochs=0, ptm_eval_models=0,
                               ptm_plateau_epochs=0, ptm_epoch_grid=(1, 3, 10),
                               ptm_sources=("target_ce", "target_cos", "ood_cos"), ptm_alpha_scales=())
    assert set(grid.plan_of(ptm_options, before)[0].keys()) != set(grid.plan_of(ptm_options, landed)[0].keys())
    assert set(grid.plan_of(ptm_cross_arch, landed)[0].keys()) == set(grid.plan_of(ptm_cross_arch, before)[0].keys())
