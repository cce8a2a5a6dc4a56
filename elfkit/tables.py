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


def elf_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows (method, IPC), columns evaluation architecture, cells 'baseline → ELF (Δ)' in %, mean ± std."""
    s = mean_std(df, ["method", "ipc", "eval_arch", "eval_mode"])
    b = s[s["eval_mode"] == "baseline"].set_index(["method", "ipc", "eval_arch"])
    e = s[s["eval_mode"] == "elf"].set_index(["method", "ipc", "eval_arch"])
    cells = {k: f"{pm(b.loc[k, 'mean'], b.loc[k, 'std'])} → {pm(e.loc[k, 'mean'], e.loc[k, 'std'])} "
                f"({e.loc[k, 'mean'] - b.loc[k, 'mean']:+.1f})" for k in b.index if k in e.index}
    t = pd.Series(cells).unstack(level=2)
    t = t.reindex(columns=list(dict.fromkeys(s["eval_arch"])))
    t.index.names, t.columns.name = ["method", "IPC"], None
    return t


def elf_delta(df: pd.DataFrame) -> pd.DataFrame:
    """ELF − baseline mean accuracy (points) per (method, IPC) × architecture, from paired seeds."""
    s = mean_std(df, ["method", "ipc", "eval_arch", "eval_mode"])
    w = s.pivot_table(index=["method", "ipc", "eval_arch"], columns="eval_mode", values="mean", sort=False)
    d = (w["elf"] - w["baseline"]).unstack(level=2)
    return d.reindex(columns=list(dict.fromkeys(s["eval_arch"])))
