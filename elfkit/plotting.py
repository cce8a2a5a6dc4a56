"""Figures drawn only from records and saved artefacts: one function per figure, byte-stable PNG/PDF files
(theme, display names and the scale caption: figure_style)."""
from __future__ import annotations

import matplotlib

if "ipykernel" not in __import__("sys").modules:
    matplotlib.use("Agg")  # non-interactive runs (CLI, tests); notebooks keep their inline backend
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .figure_style import PALETTE, label, save, style  # noqa: E402,F401  (style/save: the notebooks' entry points)


def _grid(images, labels, meta: dict, padding: int = 2) -> tuple[np.ndarray, int]:
    """Images sorted by class, de-normalised with the set's statistics, clamped to [0, 1] (a ZCA-space set: each
    image min-max scaled, since whitened pixels have no per-channel statistics to undo), tiled one row per class
    as torchvision.utils.make_grid tiles them (same layout and values); numpy only, so replay needs no torch."""
    x = np.asarray(images, dtype=np.float32)
    y = np.asarray(labels).astype(np.int64)
    mean = np.asarray(meta.get("mean", (0.0,)), dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(meta.get("std", (1.0,)), dtype=np.float32).reshape(1, -1, 1, 1)
    x = x[np.argsort(y, kind="stable")]
    if str(meta.get("dataset", "")).endswith("+zca"):     # ZCA space has no mean/std: each image min-max scaled
        lo, hi = x.min(axis=(1, 2, 3), keepdims=True), x.max(axis=(1, 2, 3), keepdims=True)
        x = (x - lo) / np.maximum(hi - lo, 1e-8)
    else:
        x = np.clip(x * std + mean, 0, 1)
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    ipc = int(np.bincount(y).max())
    n, c, h, w = x.shape
    rows = -(-n // ipc)
    hp, wp = h + padding, w + padding
    grid = np.ones((c, rows * hp + padding, ipc * wp + padding), dtype=np.float32)
    for k in range(n):
        r, col = divmod(k, ipc)
        grid[:, r * hp + padding:r * hp + padding + h, col * wp + padding:col * wp + padding + w] = x[k]
    return grid.transpose(1, 2, 0), ipc


def synset_grid(synset, title: str = ""):
    """One row per class, de-normalised with the dataset's statistics (from the SynSet's metadata), clamped to [0, 1].
    `synset`: a SynSet or synset.read_arrays(path)."""
    labels, meta = np.asarray(synset.labels), synset.meta
    class_names = meta.get("class_names") or [str(c) for c in range(int(labels.max()) + 1)]
    grid, ipc = _grid(synset.images, labels, meta)
    fig, ax = plt.subplots(figsize=(max(3.0, 0.55 * ipc + 1.6), 0.55 * len(class_names) + 0.6))
    ax.imshow(grid, interpolation="nearest")
    h = grid.shape[0] / len(class_names)
    ax.set_yticks([h * (i + 0.5) for i in range(len(class_names))], list(class_names))
    ax.set_xticks([])
    ax.grid(False)
    ax.set_title(title)
    return fig


def synset_panels(sets: dict, title: str = ""):
    """One panel per method (e.g. {"DC": SynSet, ...}), each one row per class, de-normalised and clamped."""
    fig, axes = plt.subplots(1, len(sets), figsize=(0.5 + 1.9 * len(sets) * max(1.0, _ipc(sets) / 5), 5.2),
                             squeeze=False)
    for ax, (name, s) in zip(axes[0], sets.items()):
        grid, _ = _grid(s.images, s.labels, s.meta)
        ax.imshow(grid, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        ax.set_title(label(name))
    names = next(iter(sets.values())).meta.get("class_names")
    if names:
        h = axes[0][0].get_ylim()[0] / len(names)
        axes[0][0].set_yticks([h * (i + 0.5) for i in range(len(names))], list(names), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _ipc(sets: dict) -> int:
    return max(int(np.bincount(np.asarray(s.labels)).max()) for s in sets.values())


def distill_losses(df: pd.DataFrame, title: str = "Distillation objective"):
    """Each method's own objective against iterations (records with metric 'distill_loss'), one panel per method:
    the scales differ (gradient distance, embedding distance, normalised parameter distance)."""
    d = df[df["metric"] == "distill_loss"]
    methods = list(dict.fromkeys(d["method"]))
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 2.8), squeeze=False)
    for ax, m in zip(axes[0], methods):
        for ipc, g in d[d["method"] == m].groupby("ipc"):
            ax.plot(g["iteration"], g["value"], lw=1.2, label=f"IPC {ipc}")
        ax.set_title(m)
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("loss")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def accuracy_bars(summary: pd.DataFrame, x: str = "eval_arch", hue: str = "method", title: str = "",
                  reference: dict | None = None, xlabel: str = "evaluation architecture",
                  published: dict | None = None):
    """Grouped bars of mean test accuracy (%) with ±std error bars and n in the legend; `published` {(x, hue):
    value} draws the paper's number as a black marker on its bar."""
    fig, ax = plt.subplots(figsize=(1.4 + 0.35 * summary[x].nunique() * summary[hue].nunique() + 0.6, 3.4))
    xs = list(dict.fromkeys(summary[x]))
    hues = list(dict.fromkeys(summary[hue]))
    w = 0.8 / len(hues)
    lo = max(0.0, float((summary["mean"] - summary["std"]).min()) - 10)
    for j, h in enumerate(hues):
        d = summary[summary[hue] == h].set_index(x).reindex(xs)
        pos = [i - 0.4 + w * (j + 0.5) for i in range(len(xs))]
        n = int(d["n"].max())
        ax.bar(pos, d["mean"], w, yerr=d["std"], capsize=3, color=PALETTE.get(h), label=f"{label(h)} (n={n})")
        for p, xv, mval, sval in zip(pos, xs, d["mean"], d["std"]):
            # the value sits at the bar's foot, clear of error bars and published markers
            ax.text(p, lo + 0.8, f"{mval:.1f}", ha="center", va="bottom", fontsize=7, color="white", rotation=90)
            if published and (xv, h) in published:
                ax.plot([p], [published[(xv, h)]], marker="D", ms=4.5, color="k", zorder=5)
    if published:
        ax.plot([], [], "D", ms=4.5, color="k", label="published")
    for name, val in (reference or {}).items():
        ax.axhline(val, ls="--", lw=1, color="k", alpha=0.5)
        ax.text(len(xs) - 0.5, val, f" {name}", va="bottom", ha="right", fontsize=8)
    vals = list(summary["mean"] + summary["std"]) + list((published or {}).values())
    ax.set_ylim(lo, min(100.0, max(vals) + 4))
    ax.set_xticks(range(len(xs)), [label(v) for v in xs])
    ax.set_xlim(-0.55, len(xs) - 0.45)
    ax.set_ylabel("test accuracy (%)")
    ax.set_xlabel(xlabel)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_title(title)
    return fig


def loss_curve(df: pd.DataFrame, title: str = "DM matching loss"):
    """The distillation objective against iterations (records with metric 'dm_loss')."""
    d = df[df["metric"] == "dm_loss"]
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.plot(d["iteration"], d["value"], lw=1.2)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_xlabel("iteration")
    ax.set_ylabel(r"DM loss  $\sum_c \Vert \Delta\,\mu_c \Vert^2$")
    ax.set_title(title)
    return fig


def delta_heatmap(delta: pd.DataFrame, title: str = "ELF − baseline (accuracy points)"):
    """Rows (method, IPC), columns evaluation architecture; diverging colours centred on 0."""
    import seaborn as sns

    d = delta.copy()
    d.index = [f"{label(m)} IPC {i}" for m, i in d.index]
    lim = max(1.0, float(abs(d.values).max()))
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * d.shape[1], 1.0 + 0.5 * d.shape[0]))
    sns.heatmap(d, annot=True, fmt="+.1f", cmap="RdBu", vmin=-lim, vmax=lim, center=0, cbar_kws={"label": "Δ points"},
                ax=ax)
    ax.set_xlabel("evaluation architecture")
    ax.set_ylabel("")
    ax.set_title(title)
    return fig


def elf_bars(df: pd.DataFrame, title: str = ""):
    """One panel per IPC: mean ± std test accuracy per architecture, baseline vs ELF for each method (the spread of
    tables.spread: over distillation seeds when there are several)."""
    from .tables import spread

    s = spread(df, ["ipc", "method", "eval_mode", "eval_arch"])
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
                   alpha=1.0 if mode == "elf" else 0.45, hatch="" if mode == "elf" else "//", label=label(f"{m} {mode}"))
        ax.set_xticks(range(len(archs)), archs)
        ax.set_title(f"IPC {ipc}")
        ax.set_ylabel("test accuracy (%)")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.suptitle(title)
    return fig


def feature_models_bars(df: pd.DataFrame, title: str = "ELF feature models (test accuracy)"):
    if "role" in df:
        df = df[df["role"] == "elf_feature"].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(1.5 + 1.3 * len(df), 3.0))
    ax.bar(df["model"], df["value"] * 100, color="#4c72b0")
    for i, v in enumerate(df["value"] * 100):
        ax.text(i, v + 0.5, f"{v:.1f}", ha="center", fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    return fig


def expert_curves(df: pd.DataFrame, title: str = "MTT expert trajectories (test accuracy)"):
    """Test accuracy along each expert trajectory (records with role 'mtt_expert')."""
    df = df[df["role"] == "mtt_expert"]
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    for i, g in df.groupby("expert"):
        ax.plot(g["epoch"], g["value"] * 100, marker="o", ms=3, lw=1.2, alpha=0.8, label=f"expert {int(i)}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    if df["expert"].nunique() <= 10:
        ax.legend(fontsize=7)
    return fig


# --- the ELF study (04_elf_ablations, 05_inductive_bias) ---------------------------------------------------------
def matrix_heatmap(df: pd.DataFrame, title: str = "Distil with A, evaluate with B"):
    """05: rows = distillation architecture A, columns = evaluation architecture B. Left: mean ± std test accuracy;
    right: each cell minus its column mean (which set suits evaluation model B best, capacity removed). The
    diagonal B = A is outlined."""
    import numpy as np
    import seaborn as sns
    from matplotlib.patches import Rectangle

    from .tables import spread

    s = spread(df[df["study"] == "matrix"], ["distill_arch", "eval_arch"])
    rows, cols = list(dict.fromkeys(s["distill_arch"])), list(dict.fromkeys(s["eval_arch"]))
    m = s.pivot(index="distill_arch", columns="eval_arch", values="mean").reindex(index=rows, columns=cols)
    sd = s.pivot(index="distill_arch", columns="eval_arch", values="std").reindex(index=rows, columns=cols)
    rel = m - m.mean(axis=0)
    annot = np.array([[f"{a:.1f}\n±{b:.1f}" for a, b in zip(ra, rb)] for ra, rb in zip(m.values, sd.values)])
    lim = max(1.0, float(np.nanmax(np.abs(rel.values))))
    fig, axs = plt.subplots(1, 2, figsize=(3.0 + 2.3 * len(cols), 1.6 + 0.75 * len(rows)), layout="constrained")
    sns.heatmap(m, annot=annot, fmt="", cmap="viridis", cbar_kws={"label": "test accuracy (%)"}, ax=axs[0],
                annot_kws={"fontsize": 8})
    sns.heatmap(rel, annot=True, fmt="+.1f", cmap="RdBu", center=0, vmin=-lim, vmax=lim, ax=axs[1],
                cbar_kws={"label": "cell minus column mean (points)"}, annot_kws={"fontsize": 8})
    for ax, sub in zip(axs, ("test accuracy (%)", "relative to the column mean")):
        for i, a in enumerate(rows):
            if a in cols:
                ax.add_patch(Rectangle((cols.index(a), i), 1, 1, fill=False, edgecolor="#e53935", lw=2.5,
                                       clip_on=False))
        ax.set_xlabel("evaluated with (B)")
        ax.set_title(sub)
    axs[0].set_ylabel("distilled with (A)")
    axs[1].set_ylabel("")
    fig.suptitle(title)
    return fig


def sweep_panels(df: pd.DataFrame, title: str = ""):
    """05: one panel per sweep axis, mean ± std test accuracy per member, baseline vs ELF; the member that is the
    distillation network is shaded. Lines join members only along ordered axes (width, depth)."""
    from matplotlib.patches import Patch

    from .tables import spread

    s = spread(df[df["study"] == "sweep"], ["axis", "variant", "is_distill_arch", "eval_mode"])
    axes_ = list(dict.fromkeys(s["axis"]))
    fig, axs = plt.subplots(1, len(axes_), figsize=(1.2 + 2.7 * len(axes_), 3.4), sharey=True, squeeze=False)
    styles = {"baseline": dict(color="#757575", marker="o", ls="--"), "elf": dict(color="#1f77b4", marker="s")}
    for ax, axis in zip(axs[0], axes_):
        a = s[s["axis"] == axis]
        labels = list(dict.fromkeys(a["variant"]))
        for i, lab in enumerate(labels):
            if a[(a["variant"] == lab)]["is_distill_arch"].any():
                ax.axvspan(i - 0.4, i + 0.4, color="#ffd54f", alpha=0.45, lw=0)
        for k, (mode, st) in enumerate(styles.items()):
            m = a[a["eval_mode"] == mode].set_index("variant").reindex(labels)
            st = dict(st, ls=st.get("ls", "-") if axis in ("width", "depth") else "none")
            ax.errorbar([i + (k - 0.5) * 0.12 for i in range(len(labels))], m["mean"], yerr=m["std"], capsize=3,
                        lw=1.4, ms=5, label=label(mode), **st)
        ax.set_xticks(range(len(labels)), labels, rotation=30 if max(map(len, labels)) > 4 else 0,
                      ha="right" if max(map(len, labels)) > 4 else "center", rotation_mode="anchor")
        ax.set_title(label(axis))
    axs[0][0].set_ylabel("test accuracy (%)")
    handles, names = axs[0][-1].get_legend_handles_labels()
    handles.append(Patch(color="#ffd54f", alpha=0.45))
    names.append("= distillation network")
    axs[0][-1].legend(handles, names, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    fig.suptitle(title, y=1.04)   # above the panel titles (saved with bbox_inches="tight")
    return fig

def ablation_panels(df: pd.DataFrame, ablations, title: str = ""):
    """04: one panel per ablation (width by its number of variants), bars of mean ± std test accuracy per variant
    and evaluation model (colour), over sets when there are several (the table's spread); hatched bars are
    baselines; the dotted line is that model's baseline."""
    import seaborn as sns
    from matplotlib.patches import Patch

    from .tables import spread

    s = spread(df, ["ablation", "variant", "ablation_arch", "eval_arch", "eval_mode"])   # the table's spread
    base = s[s["eval_mode"] == "baseline"].groupby("eval_arch")["mean"].first()   # before the panels' filter:
    s = s[s["ablation"].isin(ablations)]                      # the baseline rows sit in loss_mode's panel only
    groups = list(dict.fromkeys(s["ablation_arch"]))
    colors = dict(zip(groups, sns.color_palette("deep", len(groups))))
    panels = [a for a in ablations if a in set(s["ablation"])]
    widths = [max(2, s[s["ablation"] == a]["variant"].nunique()) for a in panels]
    fig, axs = plt.subplots(1, len(panels), figsize=(1.6 + 0.95 * sum(widths), 3.6), sharey=True, squeeze=False,
                            gridspec_kw={"width_ratios": widths, "wspace": 0.12})
    for ax, ab in zip(axs[0], panels):
        a = s[s["ablation"] == ab]
        labels = list(dict.fromkeys(a["variant"]))
        k = a.groupby("variant").size().max()
        w = 0.8 / k
        for i, lab in enumerate(labels):
            bars = a[a["variant"] == lab]
            for j, r in enumerate(bars.itertuples()):
                base_bar = r.eval_mode == "baseline"
                ax.bar(i - 0.4 + w * (j + 0.5) + (k - len(bars)) * w / 2, r.mean, w, yerr=r.std, capsize=2,
                       color=colors[r.ablation_arch], alpha=0.5 if base_bar else 1.0, hatch="//" if base_bar else "")
        for g in dict.fromkeys(a["ablation_arch"]):
            if g in base.index:
                ax.axhline(base[g], color=colors[g], ls=":", lw=1.2)
        names = [label(v) for v in labels]
        long = max(map(len, names)) > 5
        ax.set_xticks(range(len(labels)), names, rotation=35 if long else 0, ha="right" if long else "center",
                      rotation_mode="anchor", fontsize=8)
        ax.set_title(label(ab), fontsize=10)
    axs[0][0].set_ylabel("test accuracy (%)")
    shown = base[base.index.isin(groups)]
    lo = max(0.0, min(float((s["mean"] - s["std"]).min()), float(shown.min()) if len(shown) else 100.0) - 5)
    axs[0][0].set_ylim(lo, min(100.0, float((s["mean"] + s["std"]).max()) + 3))
    handles = [Patch(color=colors[g], label=g) for g in groups] + [Patch(facecolor="white", edgecolor="k",
                                                                         hatch="//", label="baseline")]
    axs[0][-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    fig.suptitle(title, y=1.04)   # above the panel titles (saved with bbox_inches="tight")
    return fig
