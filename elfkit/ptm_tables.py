"""CLoM's tables (06_ptm_options, 07_ptm_cross_arch): options against no CLoM and the study's reference, paired
over distillation seeds, with a difference called only beyond its spread; E4's PTM curve and plateau."""
from __future__ import annotations

import pandas as pd

from .tables import NOT_REPORTED, called, mean_std, nested_mean_std, pivot_pm, pm


# 06: the option each study's others are compared with — its published / simplest setting, and for E4 the PTM
# trained longest (the question is whether a sub-optimal PTM beats a well-trained one)
PTM_REFERENCE = {"initialisations": "first", "architectures": "first", "ptm_epoch": "longest", "source": "first",
                 "alpha": "x1"}


def paired_deltas(df: pd.DataFrame, unit: str = "distill_seed") -> pd.DataFrame:
    """06: per (method, study, option, eval_arch) the paired differences in points against no CLoM and against the
    study's reference option (PTM_REFERENCE): per `unit` (a distillation seed; with one set, an evaluation model
    seed) the difference of the means over what is nested in it, then mean, std (ddof=0) and n over units, and the
    per-unit differences themselves (per_unit, in unit order)."""
    d = df[df["metric"] == "test_acc"]
    per_unit = d.groupby(["method", "study", "option", "eval_arch", unit], sort=False)["value"].mean().mul(100)
    rows = []
    for (method, study, eval_arch), g in per_unit.groupby(level=["method", "study", "eval_arch"], sort=False):
        acc = g.droplevel(["method", "study", "eval_arch"])      # (option, unit) -> accuracy
        names = list(dict.fromkeys(acc.index.get_level_values("option")))
        options = [o for o in names if o != "no CLoM"]
        rule = PTM_REFERENCE.get(study, "first")
        if not options:
            continue
        ref = options[0] if rule == "first" else max(options, key=int) if rule == "longest" else rule
        for option in options:
            for against in dict.fromkeys(("no CLoM", ref)):
                if against == option or against not in names:
                    continue
                diff = (acc[option] - acc[against]).dropna()
                rows.append({"method": method, "study": study, "option": option, "eval_arch": eval_arch,
                             "against": against, "mean": float(diff.mean()), "std": float(diff.std(ddof=0)),
                             "n": len(diff), "per_unit": tuple(float(v) for v in diff)})
    return pd.DataFrame(rows, columns=["method", "study", "option", "eval_arch", "against", "mean", "std", "n",
                                       "per_unit"])


def ptm_contrasts(df: pd.DataFrame) -> pd.DataFrame:
    """06 with several distillation seeds: paired_deltas over distillation seeds, formatted, each seed's own difference
    beside it (so a reader sees whether the sign agrees), with `called` only when |mean| > std with ≥ 2 seeds;
    otherwise 'within'."""
    if "distill_seed" not in df or df["distill_seed"].isna().all():
        df = df.assign(distill_seed=0)        # one distilled set per arm: nothing can be called
    s = paired_deltas(df, "distill_seed")
    out = s[["method", "study", "option", "eval_arch", "against"]].assign(
        **{"Δ (points)": [pm(m, sd) for m, sd in zip(s["mean"], s["std"])], "seeds": s["n"],
           "per seed": [" / ".join(f"{v:+.2f}" for v in u) for u in s["per_unit"]],
           "called": called(s["mean"], s["std"], s["n"], "higher", "lower")})
    return out.set_index(["method", "study", "option", "eval_arch", "against"])


def ptm_options(df: pd.DataFrame) -> pd.DataFrame:
    """06: rows (method, study, option) with accuracy (mean ± std) and Δ against the same study's no-CLoM row.
    With several distillation seeds (ptm_seeds) the spread is over them (and member windows), models nested;
    ptm_contrasts gives the paired differences and which of them exceed their spread."""
    by = ["method", "study", "option", "eval_arch"]
    if "distill_seed" in df and df["distill_seed"].notna().any():
        s = nested_mean_std(df, by, ["distill_seed", "member_window"])
    else:
        s = mean_std(df, by)
    studies = list(dict.fromkeys(s["study"]))
    s = s.assign(_k=[(studies.index(st), o != "no CLoM", i) for i, (st, o) in enumerate(zip(s["study"], s["option"]))])
    s = s.sort_values("_k", kind="stable").drop(columns="_k").reset_index(drop=True)   # each study: no CLoM first
    base = s[s["option"] == "no CLoM"].set_index(["method", "study", "eval_arch"])["mean"]
    delta = [m - base.get((me, st, a), float("nan")) for me, st, a, m in
             zip(s["method"], s["study"], s["eval_arch"], s["mean"])]
    out = pd.DataFrame({"method": s["method"], "study": s["study"], "option": s["option"], "eval_arch": s["eval_arch"],
                        "accuracy (%)": [pm(m, d) for m, d in zip(s["mean"], s["std"])],
                        "Δ vs no CLoM": [f"{d:+.1f}" if o != "no CLoM" else "" for d, o in zip(delta, s["option"])],
                        "n": s["n"], "paper": NOT_REPORTED})
    if out["eval_arch"].nunique() > 1:      # ptm_eval_archs: one row per evaluation architecture
        return out.set_index(["method", "study", "option", "eval_arch"])
    return out.drop(columns="eval_arch").set_index(["method", "study", "option"])


def ptm_plateau(df: pd.DataFrame, window: int = 5, tolerance: float = 0.5) -> pd.DataFrame:
    """06 E4: its PTM's test accuracy at each E4 snapshot, and where the run plateaus — the first epoch of the first
    `window` consecutive epochs whose mean is within `tolerance` points of the best such mean (the curve's own noise
    is about that size, so a later epoch is not 'better trained' in any sense the study can use)."""
    d = df[df["metric"] == "ptm_test_acc"]
    if d.empty:
        return pd.DataFrame({"E4 PTM curve": ["not in these records (they predate it): recompute 06 to add it"]})
    e4 = df[(df["study"] == "ptm_epoch") & (df["metric"] == "test_acc")]
    options = e4[e4["option"] != "no CLoM"]["option"].dropna().unique()
    rows = []
    for (method, arch, member), g in d.groupby(["method", "model", "member"], sort=False):
        curve = g.assign(epoch=g["epoch"].astype(int)).set_index("epoch")["value"].sort_index() * 100
        smooth = curve.rolling(window).mean().shift(1 - window).dropna()   # indexed by each window's first epoch
        if smooth.empty:
            smooth = curve.expanding().mean().iloc[-1:]      # a run shorter than one window: no plateau to find
        plateau = int(smooth.index[(smooth >= smooth.max() - tolerance).to_numpy().argmax()])
        rows.append({"method": method, "ptm": f"{arch} #{int(member)}", "epochs trained": int(curve.index.max()),
                     "plateau epoch": plateau, "best %": round(float(curve.max()), 2),
                     **{f"@{int(o)} %": round(float(curve.get(int(o), float("nan"))), 2)
                        for o in sorted(options, key=int)}})
    return pd.DataFrame(rows)


def ptm_cross_arch(df: pd.DataFrame) -> pd.DataFrame:
    """07: rows (method, distillation, evaluation), columns evaluation architecture, cells mean ± std in % (with
    several distillation seeds: over them, models nested)."""
    by = ["method", "distill", "eval_mode", "eval_arch"]
    seeds = "distill_seed" in df and df["distill_seed"].notna().any()
    s = nested_mean_std(df, by, ["distill_seed"]) if seeds else mean_std(df, by)
    s = s.assign(row=[f"{m} | {d} | {'ELF' if e == 'elf' else 'standard'}" for m, d, e in
                      zip(s["method"], s["distill"], s["eval_mode"])])
    t = pivot_pm(s, "row", "eval_arch")
    t.index.name = "method | distillation | evaluation"
    t["paper"] = NOT_REPORTED
    return t


def ptm_cross_gains(df: pd.DataFrame) -> pd.DataFrame:
    """07: per (method, evaluation architecture) the gains in points over the plain set under the standard protocol —
    CLoM alone, ELF alone, CLoM + ELF — paired: per distillation seed the difference of the means over its evaluation
    models, then mean ± std over seeds; `called` only when |mean| > std with ≥ 2 seeds."""
    d = df[df["metric"] == "test_acc"]
    if "distill_seed" not in d or d["distill_seed"].isna().all():
        d = d.assign(distill_seed=0)          # one distilled set per arm: nothing can be called
    acc = d.groupby(["method", "eval_arch", "distill_seed", "distill", "eval_mode"], sort=False)["value"].mean() * 100
    base = ("no CLoM", "baseline")
    acc = acc.unstack(["distill", "eval_mode"]).reindex(columns=pd.MultiIndex.from_tuples(
        [base, ("CLoM", "baseline"), ("no CLoM", "elf"), ("CLoM", "elf")]))   # an absent arm: NaN, n = 0
    arms = {"CLoM": ("CLoM", "baseline"), "ELF": ("no CLoM", "elf"), "CLoM + ELF": ("CLoM", "elf")}
    rows = []
    for (method, arch), g in acc.groupby(level=["method", "eval_arch"], sort=False):
        for name, col in arms.items():
            diff = (g[col] - g[base]).dropna()
            m, sd = float(diff.mean()), float(diff.std(ddof=0))
            rows.append({"method": method, "eval_arch": arch, "arm": name, "gain (points)": pm(m, sd),
                         "seeds": len(diff), "called": called([m], [sd], [len(diff)], "higher", "lower")[0]})
    return pd.DataFrame(rows).set_index(["method", "eval_arch", "arm"])
