"""The CLoM figures (01's PTM curves, 06's option studies, 07's cross-architecture bars), drawn only from records
(figure_style theme)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .figure_style import label
from .plotting import accuracy_bars

COLORS = plt.get_cmap("tab10").colors


def ptm_curves(df: pd.DataFrame, title: str = "Pre-trained models (CLoM pools): test accuracy per epoch"):
    """One line per PTM (records with role 'ptm'); the source domain in the legend."""
    d = df[df["role"] == "ptm"]
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    for (src, arch, member), g in d.groupby(["source", "model", "member"], sort=False):
        ax.plot(g["epoch"], g["value"] * 100, marker="o", ms=2.5, lw=1.1,
                label=f"{arch} #{int(member)} ({label(src)})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def ptm_options(df: pd.DataFrame, title: str = "CLoM options: gain over the same distillation without CLoM"):
    """06: one panel per study, each option's paired gain over no CLoM in points (ptm_tables.paired_deltas), one colour
    per evaluation architecture; error bars are the spread over distillation seeds (with one distilled set: over
    evaluation models, which says nothing about distillation). E4's ticks carry the PTM's own test accuracy."""
    from .ptm_tables import paired_deltas

    seeds = "distill_seed" in df and df["distill_seed"].notna().any()
    s = paired_deltas(df, "distill_seed" if seeds else "model_seed")
    s = s[s["against"] == "no CLoM"]
    ptm_acc = df[df["metric"] == "ptm_test_acc"].groupby("epoch")["value"].mean() * 100 if "epoch" in df else {}
    studies = list(dict.fromkeys(s["study"]))
    archs = list(dict.fromkeys(s["eval_arch"]))
    widths = [max(2, s[s["study"] == st]["option"].nunique()) for st in studies]
    fig, axes = plt.subplots(1, len(studies), figsize=(1.6 + 1.1 * sum(widths), 4.0), squeeze=False, sharey=True,
                             gridspec_kw={"width_ratios": widths, "wspace": 0.1})
    for ax, st in zip(axes[0], studies):
        d = s[s["study"] == st]
        options = list(dict.fromkeys(d["option"]))
        for j, arch in enumerate(archs):
            a = d[d["eval_arch"] == arch].set_index("option").reindex(options)
            x = [i + 0.18 * (j - (len(archs) - 1) / 2) for i in range(len(options))]
            ax.errorbar(x, a["mean"], yerr=a["std"], fmt="o", ms=5, capsize=3, color=COLORS[j % len(COLORS)],
                        label=label(arch))
        ax.axhline(0, color="k", lw=0.9, ls="--")
        names = [label(o) for o in options]
        if st == "ptm_epoch" and len(ptm_acc):
            names = [f"{n}\n({ptm_acc[int(n)]:.1f} %)" if n.isdigit() and int(n) in ptm_acc.index else n
                     for n in names]
        ax.set_xticks(range(len(options)), [n.replace("+", "+\n").replace(", ", ",\n") for n in names], fontsize=7)
        ax.set_xlim(-0.6, len(options) - 0.4)
        ax.set_title(label(st), fontsize=10)
    axes[0][0].set_ylabel("Δ vs no CLoM (points)")
    spread = "distillation seeds" if seeds else "evaluation models of one distilled set"
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="evaluated on")
    fig.suptitle(f"{title}\n(mean ± std over {spread}; paired)", y=1.04, fontsize=10)
    return fig


def ptm_cross_arch(df: pd.DataFrame, title: str = "Cross-architecture: no CLoM / CLoM, standard / ELF evaluation"):
    """07: grouped bars per evaluation architecture for the four (distillation, evaluation) combinations; error bars
    over distillation seeds (models nested) when there are several, else over evaluation models."""
    from .tables import mean_std, nested_mean_std

    d = df.assign(combo=[f"{a} + {'ELF' if e == 'elf' else 'std'}" for a, e in zip(df["distill"], df["eval_mode"])])
    seeds = "distill_seed" in d and d["distill_seed"].notna().any()
    s = nested_mean_std(d, ["eval_arch", "combo"], ["distill_seed"]) if seeds else mean_std(d, ["eval_arch", "combo"])
    return accuracy_bars(s, x="eval_arch", hue="combo", title=title)
