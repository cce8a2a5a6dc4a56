"""08's figures: the ELF gain against the feature model's test accuracy (one line per architecture × evaluation
length, error bars = spread over distillation seeds), and the loss terms over training (figure_style theme)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .figure_style import label

COLORS = plt.get_cmap("tab10").colors


def gain_vs_quality(gain: pd.DataFrame, title: str = "ELF gain vs feature-model quality"):
    """`gain`: tables.regime_gain. x = feature model test accuracy (%), y = ELF − baseline (points)."""
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    archs = list(dict.fromkeys(gain["eval_arch"]))
    lengths = sorted(set(gain["eval_epochs"]))
    styles = ["-", "--", ":", "-."]
    for i, arch in enumerate(archs):
        for j, e in enumerate(lengths):
            g = gain[(gain["eval_arch"] == arch) & (gain["eval_epochs"] == e)].sort_values("feature acc %")
            if g.empty:
                continue
            ax.errorbar(g["feature acc %"], g["gain"], yerr=g["gain std"], color=COLORS[i % len(COLORS)],
                        linestyle=styles[j % len(styles)], marker="o", capsize=3, label=f"{label(arch)}, {e} ep.")
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.set_xlabel("feature model test accuracy (%)")
    ax.set_ylabel("ELF − baseline (points)")
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def terms_over_training(df: pd.DataFrame, title: str = "ELF loss terms over training (one run per regime)"):
    """Front term, its reducible part, rear and task terms per epoch (log scale) at the axis' last feature model, one panel
    per (architecture, evaluation length): first distillation set, first model."""
    t = df[df["metric"].str.startswith("elf_term_")].copy()
    t = t[(t["distill_seed"] == t["distill_seed"].min())]
    spec = ["feature_per_class", "feature_train_epochs", "feature_epoch"]
    last = list(dict.fromkeys(map(tuple, t[spec].to_numpy().tolist())))[-1]     # the last feature model of the axis
    t = t[(t[spec] == pd.Series(last, index=spec)).all(axis=1)]
    panels = list(dict.fromkeys(zip(t["eval_arch"], t["eval_epochs"])))
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(2.9 * max(1, len(panels)), 3.2), squeeze=False,
                             sharey=True)
    for ax, (arch, e) in zip(axes[0], panels):
        p = t[(t["eval_arch"] == arch) & (t["eval_epochs"] == e)].pivot(index="epoch", columns="metric", values="value")
        red = (p["elf_term_front"] - p["elf_term_front_irreducible"]).clip(lower=1e-6)
        for k, (series, name) in enumerate([(p["elf_term_front"], "front"), (red, "front, reducible"),
                                            (p["elf_term_rear"], "rear"), (p["elf_term_task"], "task")]):
            ax.plot(series.index, series.to_numpy(), color=COLORS[k], label=name)
        ax.set_yscale("log")
        ax.set_title(f"{label(arch)}, {e} ep.", fontsize=9)
        ax.set_xlabel("epoch")
    axes[0][0].set_ylabel("loss (batch mean)")
    axes[0][0].legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
