"""Figures drawn only from records and saved artefacts: one function per figure, byte-stable PNG/PDF files."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

if "ipykernel" not in __import__("sys").modules:
    matplotlib.use("Agg")  # non-interactive runs (CLI, tests); notebooks keep their inline backend
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

RC = {"figure.dpi": 110, "savefig.dpi": 150, "font.size": 10, "axes.titlesize": 11, "axes.spines.top": False,
      "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "legend.frameon": False,
      "svg.hashsalt": "elfkit"}
PALETTE = {"DM": "#1f77b4", "random_real": "#9e9e9e", "DC": "#2ca02c", "DSA": "#ff7f0e", "MTT": "#d62728"}


def style() -> None:
    import seaborn as sns

    sns.set_theme(style="whitegrid", rc=RC)


def save(fig, name: str, profile: str, git_sha: str = "") -> list[Path]:
    """figures/<profile>/<name>.png and .pdf; no creation date, the producing run's git sha in the PNG metadata."""
    from .paths import figures_dir

    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")
    out = []
    for ext, meta in (("png", {"Software": f"elfkit (results git {git_sha[:12]})"}),
                      ("pdf", {"CreationDate": None, "ModDate": None, "Producer": "elfkit"})):
        p = figures_dir(profile) / f"{name}.{ext}"
        fig.savefig(p, metadata=meta, bbox_inches="tight")
        out.append(p)
    return out


def synset_grid(synset, title: str = ""):
    """One row per class, de-normalised with the dataset's statistics (from the SynSet's metadata), clamped to [0, 1]."""
    from .torchvision_compat import torchvision

    images, labels, meta = synset.images, synset.labels, synset.meta
    mean, std = meta.get("mean", (0.0,)), meta.get("std", (1.0,))
    class_names = meta.get("class_names") or [str(c) for c in range(int(labels.max()) + 1)]

    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    order = torch.argsort(labels, stable=True)
    x = (images[order].float() * s + m).clamp(0, 1)
    ipc = int(torch.bincount(labels).max())
    grid = torchvision().utils.make_grid(x, nrow=ipc, padding=2, pad_value=1.0)
    fig, ax = plt.subplots(figsize=(max(3.0, 0.55 * ipc + 1.6), 0.55 * len(class_names) + 0.6))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    h = grid.shape[1] / len(class_names)
    ax.set_yticks([h * (i + 0.5) for i in range(len(class_names))], list(class_names))
    ax.set_xticks([])
    ax.grid(False)
    ax.set_title(title)
    return fig


def accuracy_bars(summary: pd.DataFrame, x: str = "eval_arch", hue: str = "method", title: str = "",
                  reference: dict | None = None):
    """Grouped bars of mean test accuracy (%) with ±std error bars and n in the legend."""
    fig, ax = plt.subplots(figsize=(1.8 + 1.3 * summary[x].nunique(), 3.4))
    xs = list(dict.fromkeys(summary[x]))
    hues = list(dict.fromkeys(summary[hue]))
    w = 0.8 / len(hues)
    for j, h in enumerate(hues):
        d = summary[summary[hue] == h].set_index(x).reindex(xs)
        pos = [i - 0.4 + w * (j + 0.5) for i in range(len(xs))]
        n = int(d["n"].max())
        ax.bar(pos, d["mean"], w, yerr=d["std"], capsize=3, color=PALETTE.get(h), label=f"{h} (n={n})")
        for p, mval, sval in zip(pos, d["mean"], d["std"]):
            ax.text(p, mval + sval + 0.4, f"{mval:.1f}", ha="center", va="bottom", fontsize=8)
    for name, val in (reference or {}).items():
        ax.axhline(val, ls="--", lw=1, color="k", alpha=0.5)
        ax.text(len(xs) - 0.5, val, f" {name}", va="bottom", ha="right", fontsize=8)
    lo = max(0.0, float((summary["mean"] - summary["std"]).min()) - 10)
    ax.set_ylim(lo, min(100.0, float((summary["mean"] + summary["std"]).max()) + 4))
    ax.set_xticks(range(len(xs)), xs)
    ax.set_ylabel("test accuracy (%)")
    ax.set_xlabel("evaluation architecture")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=len(hues))
    ax.set_title(title)
    return fig


def loss_curve(df: pd.DataFrame, title: str = "DM matching loss"):
    """The distillation objective against iterations (records with metric 'dm_loss')."""
    d = df[df["metric"] == "dm_loss"]
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    ax.plot(d["iteration"], d["value"], lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("Σ_c ‖Δ mean embedding‖²")
    ax.set_title(title)
    return fig


def delta_heatmap(delta: pd.DataFrame, title: str = "ELF − baseline (accuracy points)"):
    """Rows (method, IPC), columns evaluation architecture; diverging colours centred on 0."""
    import seaborn as sns

    d = delta.copy()
    d.index = [f"{m} IPC {i}" for m, i in d.index]
    lim = max(1.0, float(abs(d.values).max()))
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * d.shape[1], 1.0 + 0.5 * d.shape[0]))
    sns.heatmap(d, annot=True, fmt="+.1f", cmap="RdBu", vmin=-lim, vmax=lim, center=0, cbar_kws={"label": "Δ points"},
                ax=ax)
    ax.set_xlabel("evaluation architecture")
    ax.set_ylabel("")
    ax.set_title(title)
    return fig


def elf_bars(df: pd.DataFrame, title: str = ""):
    """One panel per IPC: mean ± std test accuracy per architecture, baseline vs ELF for each method."""
    from .tables import mean_std

    s = mean_std(df, ["ipc", "method", "eval_mode", "eval_arch"])
    ipcs = list(dict.fromkeys(s["ipc"]))
    archs = list(dict.fromkeys(s["eval_arch"]))
    groups = list(dict.fromkeys(zip(s["method"], s["eval_mode"])))
    fig, axes = plt.subplots(1, len(ipcs), figsize=(2 + 2.6 * len(archs) * len(ipcs) / 2, 3.6), squeeze=False)
    w = 0.8 / len(groups)
    for ax, ipc in zip(axes[0], ipcs):
        for j, (m, mode) in enumerate(groups):
            d = s[(s["ipc"] == ipc) & (s["method"] == m) & (s["eval_mode"] == mode)].set_index("eval_arch")
            d = d.reindex(archs)
            pos = [i - 0.4 + w * (j + 0.5) for i in range(len(archs))]
            ax.bar(pos, d["mean"], w, yerr=d["std"], capsize=2, color=PALETTE.get(m, "#777"),
                   alpha=1.0 if mode == "elf" else 0.45, hatch="" if mode == "elf" else "//", label=f"{m} {mode}")
        ax.set_xticks(range(len(archs)), archs)
        ax.set_title(f"IPC {ipc}")
        ax.set_ylabel("test accuracy (%)")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.suptitle(title)
    return fig


def feature_models_bars(df: pd.DataFrame, title: str = "ELF feature models (test accuracy)"):
    fig, ax = plt.subplots(figsize=(1.5 + 1.3 * len(df), 3.0))
    ax.bar(df["model"], df["value"] * 100, color="#4c72b0")
    for i, v in enumerate(df["value"] * 100):
        ax.text(i, v + 0.5, f"{v:.1f}", ha="center", fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    return fig
