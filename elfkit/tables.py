"""Records → pandas tables: mean ± std over seeds (population std, as the papers), paper / ours / Δ."""
from __future__ import annotations

import json
from functools import lru_cache

import pandas as pd

from .paths import PACKAGE_DIR


def mean_std(df: pd.DataFrame, by: list[str], metric: str = "test_acc", scale: float = 100.0) -> pd.DataFrame:
    """One row per group: mean, std (ddof=0, the papers' population std) and n, in percent by default."""
    d = df[df["metric"] == metric]
    g = d.groupby(by, sort=False)["value"]
    out = pd.DataFrame({"mean": g.mean() * scale, "std": g.std(ddof=0) * scale, "n": g.size()})
    return out.reset_index()


def pm(mean: float, std: float, digits: int = 1) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def pivot_pm(summary: pd.DataFrame, index: str | list[str], columns: str) -> pd.DataFrame:
    """A wide table of 'mean ± std' strings (rows = index, columns = e.g. eval_arch), original order kept."""
    s = summary.assign(cell=[pm(m, s) for m, s in zip(summary["mean"], summary["std"])])
    t = s.pivot(index=index, columns=columns, values="cell")
    cols = list(dict.fromkeys(summary[columns]))
    rows = list(dict.fromkeys(summary[index] if isinstance(index, str) else map(tuple, summary[index].values)))
    t = t.reindex(columns=cols)
    t = t.reindex(index=rows) if isinstance(index, str) else t
    t.columns.name = None
    return t


@lru_cache(maxsize=None)
def reference(paper: str = "base_methods") -> pd.DataFrame:
    """Published numbers with source and status (elfkit/reference/<paper>.json)."""
    doc = json.loads((PACKAGE_DIR / "reference" / f"{paper}.json").read_text())
    return pd.DataFrame(doc["entries"])


def published_points(dataset: str, x: str = "ipc", hue: str = "method") -> dict:
    """{(x value, hue value): published mean} of the base-method table, for figure markers."""
    ref = reference()
    ref = ref[ref["dataset"] == dataset]
    return {(a, b): float(m) for a, b, m in zip(ref[x], ref[hue], ref["mean"])}


# ELF and CLoM report no number for the datasets elfkit runs (docs/reference-numbers.md §1): the tables say so.
NOT_REPORTED = "not reported (docs/reference-numbers.md §1)"


def versus_paper(summary: pd.DataFrame, dataset: str, arch: str = "ConvNet") -> pd.DataFrame:
    """paper / ours / Δ for the rows of `summary` (columns method, ipc, eval_arch, mean, std) evaluated on `arch`."""
    ref = reference()
    ref = ref[ref["dataset"] == dataset]
    ours = summary[summary["eval_arch"] == arch]
    m = ours.merge(ref, on=["method", "ipc"], how="left", suffixes=("", "_paper"))
    return pd.DataFrame({
        "method": m["method"], "ipc": m["ipc"],
        "paper": [pm(a, b) if a == a else "—" for a, b in zip(m["mean_paper"], m["std_paper"])],
        "ours": [pm(a, b) for a, b in zip(m["mean"], m["std"])],
        "Δ": [f"{a - b:+.1f}" if b == b else "—" for a, b in zip(m["mean"], m["mean_paper"])],
        "paper status": m["status"].fillna("—"), "paper source": m["source"].fillna("—"),
    })


def distill_table(df: pd.DataFrame, dataset: str, arch: str = "ConvNet") -> pd.DataFrame:
    """02_distill: rows (method, IPC) with the published number, elfkit's (mean ± std over the evaluation models)
    and Δ = elfkit − published, plus the evaluation protocol and the published number's source and status."""
    s = mean_std(df, ["method", "ipc", "eval_arch", "eval_protocol", "eval_epochs"])
    t = versus_paper(s, dataset, arch)
    t = t.rename(columns={"paper": "published", "ours": "elfkit", "paper status": "status", "paper source": "source"})
    t.insert(4, "evaluation", [f"{'DSA' if p == 'dsa' else 'no aug.'}, {int(e)} ep" for p, e in
                               zip(s[s["eval_arch"] == arch]["eval_protocol"], s[s["eval_arch"] == arch]["eval_epochs"])])
    return t.set_index(["method", "ipc"])


def spread(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Accuracy mean ± std per group: over distillation seeds (models nested) when the records hold several, else
    over evaluation models — the spread a table's difference must exceed."""
    seeds = df["distill_seed"].nunique() if "distill_seed" in df else 0
    return nested_mean_std(df, by, ["distill_seed"]) if seeds > 1 else mean_std(df, by)


def elf_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows (method, IPC), columns evaluation architecture, cells 'baseline → ELF (Δ)' in %, mean ± std — over
    distillation seeds (models nested) when the records hold several (cross_seeds), else over evaluation models."""
    s = spread(df, ["method", "ipc", "eval_arch", "eval_mode"])
    b = s[s["eval_mode"] == "baseline"].set_index(["method", "ipc", "eval_arch"])
    e = s[s["eval_mode"] == "elf"].set_index(["method", "ipc", "eval_arch"])
    cells = {k: f"{pm(b.loc[k, 'mean'], b.loc[k, 'std'])} → {pm(e.loc[k, 'mean'], e.loc[k, 'std'])} "
                f"({e.loc[k, 'mean'] - b.loc[k, 'mean']:+.1f})" for k in b.index if k in e.index}
    t = pd.Series(cells).unstack(level=2)
    t = t.reindex(columns=list(dict.fromkeys(s["eval_arch"])))
    t.index.names, t.columns.name = ["method", "IPC"], None
    t["paper"] = NOT_REPORTED
    return t


def elf_delta(df: pd.DataFrame) -> pd.DataFrame:
    """ELF − baseline mean accuracy (points) per (method, IPC) × architecture, from paired seeds."""
    s = mean_std(df, ["method", "ipc", "eval_arch", "eval_mode"])
    w = s.pivot_table(index=["method", "ipc", "eval_arch"], columns="eval_mode", values="mean", sort=False)
    d = (w["elf"] - w["baseline"]).unstack(level=2)
    return d.reindex(columns=list(dict.fromkeys(s["eval_arch"])))


# --- the ELF study (04_elf_ablations, 05_inductive_bias) ---------------------------------------------------------
def matrix_table(df: pd.DataFrame) -> pd.DataFrame:
    """05: rows = distillation architecture A, columns = evaluation architecture B, 'mean ± std' in % (over
    distillation sets, models nested, when the records hold several: spread)."""
    t = pivot_pm(spread(df[df["study"] == "matrix"], ["distill_arch", "eval_arch"]), "distill_arch", "eval_arch")
    t.index.name = "distilled with ↓ / evaluated with →"
    return t


def diagonal_summary(df: pd.DataFrame) -> pd.DataFrame:
    """05: per architecture X, its own set on X (the diagonal) against the other sets on X (column mean, off the
    diagonal: same evaluation model, so capacity cancels) and X's set on the other models (row mean); last row =
    means over the pool. Mean accuracy in %."""
    s = mean_std(df[df["study"] == "matrix"], ["distill_arch", "eval_arch"])
    m = s.pivot(index="distill_arch", columns="eval_arch", values="mean")
    archs = [a for a in dict.fromkeys(s["distill_arch"]) if a in m.columns]
    rows = {a: {"own set (diagonal)": m.loc[a, a], "other sets on it (column)": m[a].drop(a).mean(),
                "its set on other models (row)": m.loc[a].drop(a).mean()} for a in archs}
    t = pd.DataFrame.from_dict(rows, orient="index")
    t["diagonal − column"] = t["own set (diagonal)"] - t["other sets on it (column)"]
    t.loc["mean"] = t.mean()
    t.index.name = "architecture"
    return t.round(1)


def diagonal_gaps(df: pd.DataFrame) -> pd.DataFrame:
    """05: per architecture X, its own set on X minus the other sets on X (diagonal_summary's last column) per
    distillation set, then mean ± std over sets; `called` only when |gap| > its spread over ≥ 2 sets ('own set
    best' / 'others better'), else 'within'."""
    d = df[(df["study"] == "matrix") & (df["metric"] == "test_acc")].copy()
    d["distill_seed"] = d["distill_seed"].fillna(-1) if "distill_seed" in d else -1
    acc = d.groupby(["distill_seed", "distill_arch", "eval_arch"], sort=False)["value"].mean() * 100
    archs = list(dict.fromkeys(d["distill_arch"]))
    gaps = {}
    for s, g in acc.groupby(level="distill_seed", sort=False):
        m = g.droplevel("distill_seed").unstack("eval_arch")
        gaps[s] = {a: m.loc[a, a] - m[a].drop(a).mean() for a in archs if a in m.index and a in m.columns}
    t = pd.DataFrame(gaps)                                     # rows architecture, columns distillation set
    out = pd.DataFrame({"gap (points)": t.mean(axis=1), "gap std": t.std(axis=1, ddof=0),
                        "sets": t.notna().sum(axis=1)})
    out["called"] = called(out["gap (points)"], out["gap std"], out["sets"], "own set best", "others better")
    out.index.name = "architecture"
    return out.round(2)


def sweep_table(df: pd.DataFrame) -> pd.DataFrame:
    """05: rows (axis, variant) of the ConvNet sweeps; baseline, ELF and Δ = ELF − baseline (points), mean ± std in
    % (spread: over sets when there are several); ★ marks the distillation network; 'n/a' where no feature model
    fits the split. sweep_gains gives Δ paired, with its spread over sets."""
    d = df[df["study"] == "sweep"]
    s = spread(d, ["axis", "variant", "eval_arch", "is_distill_arch", "eval_mode"])
    keys = list(dict.fromkeys(zip(d["axis"], d["variant"])))
    rows = []
    for axis, variant in keys:
        g = s[(s["axis"] == axis) & (s["variant"] == variant)].set_index("eval_mode")
        b, e = g.loc["baseline"], (g.loc["elf"] if "elf" in g.index else None)
        rows.append({"axis": axis, "variant": variant, "eval_arch": b["eval_arch"],
                     "distillation net": "★" if b["is_distill_arch"] else "", "baseline": pm(b["mean"], b["std"]),
                     "ELF": pm(e["mean"], e["std"]) if e is not None else "n/a",
                     "Δ": f"{e['mean'] - b['mean']:+.1f}" if e is not None else "n/a"})
    return pd.DataFrame(rows).set_index(["axis", "variant"])


def ablation_table(df: pd.DataFrame) -> pd.DataFrame:
    """04: rows (ablation, variant), columns the ablation's evaluation model; cells 'ELF mean ± std (Δ vs the
    baseline of the same evaluation model)' in %, '… (baseline)' for the `task` rows, 'n/a' where ELF cannot run.
    With several distillation sets (distill_seed) the spread is over sets, models nested inside (spread)."""
    by = ["ablation", "variant", "ablation_arch", "eval_arch", "eval_mode"]
    s = spread(df, by)
    base = s[s["eval_mode"] == "baseline"].groupby("eval_arch")["mean"].first()
    cells = {}
    for r in s.itertuples():   # ELF rows after baseline rows: a width cell shows ELF with Δ vs its own baseline
        if r.eval_mode == "baseline":
            cells.setdefault((r.ablation, r.variant, r.ablation_arch), f"{pm(r.mean, r.std)} (baseline)")
    for r in s[s["eval_mode"] == "elf"].itertuples():
        delta = f" ({r.mean - base[r.eval_arch]:+.1f})" if r.eval_arch in base.index else ""
        cells[(r.ablation, r.variant, r.ablation_arch)] = pm(r.mean, r.std) + delta
    for r in df[df["metric"] == "elf_unavailable"].itertuples():
        cells.setdefault((r.ablation, r.variant, r.ablation_arch), "n/a")
    t = pd.Series(cells).unstack(level=2)
    t = t.reindex(index=list(dict.fromkeys(zip(df["ablation"], df["variant"]))),
                  columns=list(dict.fromkeys(df["ablation_arch"])))
    t.index.names, t.columns.name = ["ablation", "variant"], None
    return t.fillna("—")


def unavailable(df: pd.DataFrame) -> pd.DataFrame:
    """04/05: the cells where ELF could not run, with the reason (no feature model fits the split)."""
    d = df[df["metric"] == "elf_unavailable"]
    cols = [c for c in ("ablation", "axis", "variant", "eval_arch", "feature_source", "reason") if c in d.columns]
    return d[cols].drop_duplicates().reset_index(drop=True)


def called(means, stds, sets, up: str, down: str) -> list[str]:
    """The house rule (docs/decisions.md §6): `up` / `down` only when |mean| exceeds its spread over ≥ 2 distillation
    sets, else 'within' (a NaN spread or mean calls nothing)."""
    return ["within" if n < 2 or not abs(m) > sd else (up if m > 0 else down) for m, sd, n in zip(means, stds, sets)]


def nested_mean_std(df: pd.DataFrame, by: list[str], units: list[str], metric: str = "test_acc") -> pd.DataFrame:
    """Mean ± std over distillation units (e.g. distillation seed × member window), each unit first averaged over
    its evaluation models: the spread a difference must exceed. n = number of units."""
    d = df[df["metric"] == metric].copy()
    for u in units:
        d[u] = d[u].fillna(-1) if u in d else -1
    per_unit = d.groupby(by + units, sort=False)["value"].mean().reset_index()
    g = per_unit.groupby(by, sort=False)["value"]
    return pd.DataFrame({"mean": g.mean() * 100, "std": g.std(ddof=0) * 100, "n": g.size()}).reset_index()


def paired_gains(df: pd.DataFrame, by: list[str], pair_on: list[str]) -> pd.DataFrame:
    """ELF − baseline in points, paired: each ELF model against the baseline model of the same `pair_on` values and
    model seed; per distillation set (distill_seed; absent: one set) the mean over its models, then mean ± std over
    sets per `by` (rows without a distill_seed count as one set). `called`: |gain| > its spread over ≥ 2 sets
    ('ELF helps' / 'ELF hurts'), else 'within'."""
    acc = df[df["metric"] == "test_acc"].copy()
    if "distill_seed" not in acc:
        acc["distill_seed"] = -1
    acc["distill_seed"] = acc["distill_seed"].fillna(-1)
    key = [*pair_on, "distill_seed", "model_seed"]
    base = acc[acc["eval_mode"] == "baseline"].set_index(key)["value"]
    dup = base.index.duplicated()   # one model under several rows' labels (04: one baseline per arch)
    if dup.any() and base.groupby(level=list(range(base.index.nlevels))).nunique().gt(1).any():
        raise ValueError(f"baselines disagree for one {key} key: records of two different runs mixed?")
    base = base[~dup]
    elf = acc[acc["eval_mode"] == "elf"].copy()
    elf["baseline"] = base.reindex(pd.MultiIndex.from_frame(elf[key])).to_numpy()
    elf["gain"] = (elf["value"] - elf["baseline"]) * 100
    extra = {"feature_acc": ("feature_acc", "first")} if "feature_acc" in elf else {}
    per_set = elf.groupby([*by, "distill_seed"], sort=False).agg(
        gain=("gain", "mean"), elf=("value", "mean"), baseline=("baseline", "mean"), **extra)
    g = per_set.groupby(level=by, sort=False)
    out = pd.DataFrame({"baseline %": g["baseline"].mean() * 100, "ELF %": g["elf"].mean() * 100,
                        "gain": g["gain"].mean(), "gain std": g["gain"].std(ddof=0), "sets": g.size()})
    if extra:
        out.insert(0, "feature acc %", g["feature_acc"].first() * 100)
    out["called"] = called(out["gain"], out["gain std"], out["sets"], "ELF helps", "ELF hurts")
    return out.round(2).reset_index()


def elf_gains(df: pd.DataFrame) -> pd.DataFrame:
    """03: the ELF gain per (method, IPC, architecture), paired, mean ± std over distillation seeds (cross_seeds),
    called only beyond that spread; a table from one distilled set per method calls nothing."""
    return paired_gains(df, ["method", "ipc", "eval_arch"], ["method", "ipc", "eval_arch"])


def ablation_gains(df: pd.DataFrame) -> pd.DataFrame:
    """04: each ablation cell's ELF gain over the baseline of its evaluation model (paired_gains), called only beyond
    its spread over distillation sets (ablation_seeds; one set calls nothing)."""
    return paired_gains(df, ["ablation", "variant", "ablation_arch", "eval_arch"], ["eval_arch"])


ELF_KNOBS = ("loss_mode", "feature_loss", "lam_front", "lam_rear", "feature_epoch", "feature_source", "on_augmented")


def ablation_contrasts(df: pd.DataFrame) -> pd.DataFrame:
    """04: each ELF setting minus the released default (the `front_rear_task` row's knobs) on the same evaluation
    model, paired by distillation set and model seed; per set the mean over models, then mean ± std over sets and
    the per-set values, called only beyond that spread. `default` names the ablation's own default row, which is
    left out; feature_width rows compare different networks and stay in ablation_gains."""
    acc = df[(df["metric"] == "test_acc") & (df["eval_mode"] == "elf") & (df["ablation"] != "feature_width")].copy()
    acc["distill_seed"] = acc["distill_seed"].fillna(-1) if "distill_seed" in acc else -1
    acc["knobs"] = [tuple(r) for r in acc[[k for k in ELF_KNOBS if k in acc]].astype(str).to_numpy()]
    key = ["eval_arch", "distill_seed", "model_seed"]
    ref = acc[(acc["ablation"] == "loss_mode") & (acc["variant"] == "front_rear_task")].drop_duplicates(key)
    if ref.empty:
        raise ValueError("no front_rear_task rows: the released default is the contrasts' reference")
    ref_knobs = ref.groupby("eval_arch")["knobs"].first()
    acc["ref"] = ref.set_index(key)["value"].reindex(pd.MultiIndex.from_frame(acc[key])).to_numpy()
    is_default = acc["knobs"] == acc["eval_arch"].map(ref_knobs)
    defaults = acc[is_default].groupby(["ablation", "eval_arch"])["variant"].first()
    acc = acc[~is_default]
    acc["diff"] = (acc["value"] - acc["ref"]) * 100
    by = ["ablation", "variant", "ablation_arch", "eval_arch"]
    per_set = acc.groupby([*by, "distill_seed"], sort=False)["diff"].mean()
    g = per_set.groupby(level=by, sort=False)
    out = pd.DataFrame({"vs default": g.mean(), "std": g.std(ddof=0), "sets": g.size(),
                        "per set": g.agg(lambda v: " / ".join(f"{x:+.1f}" for x in v))})
    out["called"] = called(out["vs default"], out["std"], out["sets"], "above default", "below default")
    out = out.round(2).reset_index()
    out.insert(2, "default", [defaults.get((a, e), "") for a, e in zip(out["ablation"], out["eval_arch"])])
    return out


def sweep_gains(df: pd.DataFrame) -> pd.DataFrame:
    """05: each sweep member's ELF gain over its own baseline (paired_gains), called only beyond its spread over
    distillation sets (study_seeds; one set calls nothing)."""
    return paired_gains(df[df["study"] == "sweep"], ["axis", "variant", "eval_arch"], ["eval_arch"])


def sweep_drops(df: pd.DataFrame) -> pd.DataFrame:
    """05: does accuracy drop as the evaluation ConvNet departs from the distillation network (★), and does ELF
    close the drop? Per distillation set (models averaged, same model seeds on both sides), each member minus its
    axis's ★ under the standard protocol ('drop') and under ELF, and their difference ('ELF gain, member − ★': ELF's
    gain on the member minus its gain on ★; > 0 narrows a drop below ★); mean ± std over sets, called only beyond
    that spread."""
    d = df[(df["study"] == "sweep") & (df["metric"] == "test_acc")].copy()
    d["distill_seed"] = d["distill_seed"].fillna(-1) if "distill_seed" in d else -1
    acc = d.groupby(["axis", "variant", "eval_arch", "is_distill_arch", "eval_mode", "distill_seed"],
                    sort=False)["value"].mean().mul(100).reset_index()
    star = acc[acc["is_distill_arch"].astype(bool)].set_index(["axis", "eval_mode", "distill_seed"])["value"]
    star = star[~star.index.duplicated()]
    m = acc[~acc["is_distill_arch"].astype(bool)].copy()
    m["diff"] = m["value"].to_numpy() - star.reindex(pd.MultiIndex.from_frame(
        m[["axis", "eval_mode", "distill_seed"]])).to_numpy()
    w = m.pivot_table(index=["axis", "variant", "eval_arch", "distill_seed"], columns="eval_mode", values="diff",
                      sort=False)
    w["relative"] = w["elf"] - w["baseline"] if "elf" in w else float("nan")
    g = w.groupby(level=["axis", "variant", "eval_arch"], sort=False)
    out = pd.DataFrame({"drop": g["baseline"].mean(), "drop std": g["baseline"].std(ddof=0),
                        "drop with ELF": g["elf"].mean() if "elf" in w else float("nan"),
                        "ELF gain, member − ★": g["relative"].mean(), "relative std": g["relative"].std(ddof=0),
                        "sets": g["baseline"].count()})
    out["drop called"] = called(out["drop"], out["drop std"], out["sets"], "above ★", "below ★")
    out["ELF called"] = called(out["ELF gain, member − ★"], out["relative std"], out["sets"], "member gains more",
                               "★ gains more")
    return out.round(2).reset_index()


def regime_gain(df: pd.DataFrame) -> pd.DataFrame:
    """08: per (architecture, evaluation length, feature model) the ELF gain in points (paired_gains) beside the
    feature model's test accuracy and both accuracies."""
    fm = ["feature_model", "feature_per_class", "feature_train_epochs", "feature_epoch"]
    return paired_gains(df, ["eval_arch", "eval_epochs", *fm], ["eval_arch", "eval_epochs"])


def regime_terms(df: pd.DataFrame) -> pd.DataFrame:
    """08: the ELF loss terms at the first and the last logged epoch of one run per regime (first distillation set,
    first model), with the front term's reducible part (front − its irreducible part) and front / task ratios."""
    t = df[df["metric"].str.startswith("elf_term_")].copy()
    t["term"] = t["metric"].str.removeprefix("elf_term_")
    first_set = t["distill_seed"].min()
    t = t[t["distill_seed"] == first_set]
    idx = ["eval_arch", "eval_epochs", "feature_model", "feature_per_class", "feature_train_epochs", "feature_epoch"]
    rows = []
    for k, g in t.groupby(idx, sort=False):
        for where, ep in (("start", g["epoch"].min()), ("end", g["epoch"].max())):
            v = g[g["epoch"] == ep].set_index("term")["value"]
            rows.append({**dict(zip(idx, k)), "at": where, "epoch": int(ep), **v.to_dict(),
                         "front_reducible": v["front"] - v["front_irreducible"], "front/task": v["front"] / v["task"]})
    return pd.DataFrame(rows).round(3)
