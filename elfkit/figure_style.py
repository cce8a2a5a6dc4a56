"""How every elfkit figure looks and is saved: the theme, method colours, display names for the identifiers that
records use (fashion_mnist → Fashion-MNIST, lam_front → λ_front), and a caption stating the profile's scale."""
from __future__ import annotations

import os
from pathlib import Path

RC = {"figure.dpi": 110, "savefig.dpi": 150, "font.size": 10, "axes.titlesize": 11, "axes.spines.top": False,
      "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "legend.frameon": False,
      "svg.hashsalt": "elfkit"}
PALETTE = {"DM": "#1f77b4", "random_real": "#9e9e9e", "DC": "#2ca02c", "DSA": "#ff7f0e", "MTT": "#d62728"}

NAMES = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST", "mnist_5k": "MNIST 5k", "animal_mnist": "animal-MNIST",
         "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "svhn": "SVHN", "tinyimagenet": "TinyImageNet", "synthetic": "synthetic",
         "random_real": "random real", "baseline": "baseline", "elf": "ELF",
         "loss_mode": "loss composition", "feature_loss": "feature loss", "features": "features",
         "feature_source": "feature model", "feature_epoch": "feature-model epoch", "feature_width": "feature width",
         "lam_front": "λ_front", "lam_rear": "λ_rear", "task": "task", "front_task": "front + task",
         "rear_task": "rear + task", "front_rear": "front + rear", "front_rear_task": "front + rear + task",
         "wide": "wide", "distill": "distillation net", "initialisations": "initialisations",
         "architectures": "architecture pool", "ptm_epoch": "PTM epoch", "source": "source domain",
         "target_ce": "target, CE", "target_cos": "target, cos", "ood_cos": "other domain, cos",
         "normalisation": "normalisation", "activation": "activation", "pooling": "pooling", "width": "width",
         "depth": "depth"}

# What a reader must know before comparing a figure with a paper's.
SCALE_NOTES = {
    "cpu": "cpu profile: a scaled-down schedule on 2 CPU cores (README, Profiles) — not the papers' settings",
    "smoke": "smoke profile: synthetic data, tiny nets — a plumbing check, not a result",
    "paper": "paper profile: the published hyperparameters",
}


def label(name) -> str:
    """The display name of a record identifier (unknown names pass through; 'DM elf' → 'DM ELF')."""
    text = str(name)
    if text in NAMES:
        return NAMES[text]
    if text.startswith("ood_cos@"):             # an E5 arm with a named out-of-domain source
        return f"{label(text.partition('@')[2])}, cos"
    return " ".join(NAMES.get(w, w) if w in ("elf", "baseline", "random_real") else w for w in text.split(" "))


def style() -> None:
    import seaborn as sns

    sns.set_theme(style="whitegrid", rc=RC)


def save(fig, name: str, profile: str, git_sha: str = "") -> list[Path]:
    """figures/<profile>/<name>.png and .pdf with the profile's scale as a caption; no creation date, the producing
    run's git sha in the PNG metadata."""
    from .paths import figures_dir

    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")
    scale, _, variant = profile.partition("-")     # a label: 'paper-cifar10' is the paper profile on CIFAR-10
    note = SCALE_NOTES.get(scale, f"{scale} profile") + (f" · {variant}" if variant else "")
    box = fig.get_tightbbox(fig.canvas.get_renderer())   # inches: the caption goes below everything drawn
    w, h = fig.get_size_inches()
    fig.text((box.x0 + box.x1) / 2 / w, (box.y0 - 0.06) / h, note + (f" · results git {git_sha[:10]}" if git_sha
             else ""), ha="center", va="top", fontsize=7, color="#616161")
    out = []
    for ext, meta in (("png", {"Software": f"elfkit (results git {git_sha[:12]})"}),
                      ("pdf", {"CreationDate": None, "ModDate": None, "Producer": "elfkit"})):
        p = figures_dir(profile) / f"{name}.{ext}"
        fig.savefig(p, metadata=meta, bbox_inches="tight", pad_inches=0.12)
        out.append(p)
    return out
