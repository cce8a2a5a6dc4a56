"""08's figures: the ELF gain against the feature model's test accuracy (one line per architecture × evaluation
length, error bars = spread over distillation seeds), and the loss terms over training (figure_style theme)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .figure_style import label

COLORS = plt.get_cmap("tab10").colors


def gain_vs_quality(gain: pd.DataFrame, title: str = "ELF gain vs feature-model quality"):
    """`gain`: tables.regime_gain. One panel per evaluation length (each on its own y scale: AlexNet's 50-epoch
    rescue would flatten the rest), one line per architecture: x = feature model test accuracy (%), y = ELF −
    baseline (points), error bars = the spread over distillation seeds."""
    archs = list(dict.fromkeys(gain["eval_arch"]))
    lengths = sorted(set(gain["eval_epochs"]))
    fig, axes = plt.subplots(1, len(lengths), figsize=(4.2 * len(lengths), 3.8), squeeze=False)
    for ax, e in zip(axes[0], lengths):
        for i, arch in enumerate(archs):
            g = gain[(gain["eval_arch"] == arch) & (gain["eval_epochs"] == e)].sort_values("feature acc %")
            if not g.empty:
                ax.errorbar(g["feature acc %"], g["gain"], yerr=g["gain std"], color=COLORS[i % len(COLORS)],
                            marker="o", capsize=3, label=label(arch))
        ax.axhline(0, color="0.3", linewidth=0.8)
        ax.set_title(f"{e} evaluation epochs", fontsize=10)
        ax.set_xlabel("feature model test accuracy (%)")
    axes[0][0].set_ylabel("ELF − baseline (points)")
    handles = {h.get_label(): h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]}
    fig.legend(handles.values(), handles.keys(), loc="upper right", fontsize=8, frameon=False, ncol=len(handles))
    fig.suptitle(title, fontsize=11, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def terms_over_training(df: pd.DataFrame, title: str = "ELF loss terms over training (one run per regime)"):
    """Front term, its reducible part, rear and task terms per epoch (log scale) at the axis' last feature model, one
    panel per (architecture: row, evaluation length: column): first distillation set, first model."""
    t = df[df["metric"].str.startswith("elf_term_")].copy()
    t = t[(t["distill_seed"] == t["distill_seed"].min())]
    spec = ["feature_per_class", "feature_train_epochs", "feature_epoch"]
    last = list(dict.fromkeys(map(tuple, t[spec].to_numpy().tolist())))[-1]     # the last feature model of the axis
    t = t[(t[spec] == pd.Series(last, index=spec)).all(axis=1)]
    archs = list(dict.fromkeys(t["eval_arch"]))
    lengths = sorted(set(t["eval_epochs"]))
    fig, axes = plt.subplots(len(archs), len(lengths), figsize=(3.2 * len(lengths), 2.4 * len(archs)),
                             squeeze=False, sharey=True)
    for r, arch in enumerate(archs):
        for c, e in enumerate(lengths):
            ax = axes[r][c]
            p = t[(t["eval_arch"] == arch) & (t["eval_epochs"] == e)]
            if p.empty:
                ax.set_axis_off()
                continue
            p = p.pivot(index="epoch", columns="metric", values="value")
            red = (p["elf_term_front"] - p["elf_term_front_irreducible"]).clip(lower=1e-6)
            for k, (series, name) in enumerate([(p["elf_term_front"], "front"), (red, "front, reducible"),
                                                (p["elf_term_rear"], "rear"), (p["elf_term_task"], "task")]):
                ax.plot(series.index, series.to_numpy(), color=COLORS[k], label=name, linewidth=1.2)
            ax.set_yscale("log")
            ax.set_title(f"{label(arch)}, {e} ep.", fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
        axes[r][0].set_ylabel("loss (batch mean)")
    handles, names = next((ax.get_legend_handles_labels() for row in axes for ax in row if ax.lines), ([], []))
    fig.legend(handles, names, loc="upper right", fontsize=8, frameon=False, ncol=4)
    fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig
