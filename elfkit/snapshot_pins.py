"""Small training snapshots that travel with the cell store. A trajectory's weights live in runs/, which is not
committed, so a fresh machine retrains every training that a pending cell still reads — and on another CPU the
retraining need not reproduce the recorded bits (other kernels: a retrained VGG-11 PTM ended 1.25 points apart), so
the cells of one grid would read different weights depending on the session that computed them. Every snapshot a
pending cell reads that is at most PIN_MAX_BYTES (a ConvNet or AlexNet PTM, a feature model up to ConvNetW512; not
VGG-11 or ResNet-18) is therefore copied beside its training's record as soon as the training is on this machine
(cells/trajectory/<key>.epoch_NNNN.safetensors, byte for byte, checksum inside), and a machine without the training
restores those files into runs/ instead of retraining it (docs/decisions.md §7)."""
from __future__ import annotations

import shutil
from pathlib import Path

from .cells import Cell, CellStore

PIN_MAX_BYTES = 24 * 2**20     # ConvNetW512 on 1x28x28 is 19 MB a snapshot, VGG-11 37 MB, ResNet-18 45 MB


def reads(cell: Cell) -> list[tuple[Cell, int]]:
    """The (trajectory cell, epoch) snapshots `cell` loads from runs/: a CLoM set's or calibration's PTM pools, a
    features cell's network, an ELF evaluation on augmented batches' feature model. (MTT reads its experts' whole
    buffers; those are not pinned.)"""
    a = cell.args
    if cell.kind == "features":
        return [(a["trajectory"], a["epoch"])]
    if cell.kind == "evaluate":
        e = a.get("elf")
        return [(e["model"], e["epoch"])] if isinstance(e, dict) and e.get("on_augmented") else []
    if cell.kind in ("synset", "calibration") and a.get("guidance"):
        g = a["guidance"]
        return [(ref, g["epoch"]) for refs in g["pools"].values() for ref in refs]
    return []


def pinned(store: CellStore, trajectory: Cell, epoch: int) -> Path:
    return store.artefact(trajectory, f".epoch_{epoch:04d}.safetensors")


def wanted(cells: list[Cell]) -> list[tuple[Cell, int]]:
    """Every snapshot the cells read, once, plus each such training's last one (what marks it as present)."""
    seen: dict[tuple[str, int], tuple[Cell, int]] = {}
    for c in cells:
        for traj, epoch in reads(c):
            for ep in (epoch, traj.args["epochs"]):
                seen.setdefault((traj.key, ep), (traj, ep))
    return list(seen.values())


def pin(cells: list[Cell], store: CellStore, runs_dir: Path) -> int:
    """Copy each small snapshot that `cells` read, whose training is recorded and on this machine, beside the
    training's record (unless it is there already); returns how many were copied."""
    from .safefile import atomic

    n = 0
    for traj, epoch in wanted(cells):
        dst = pinned(store, traj, epoch)
        doc = None if dst.is_file() else store.get(traj)
        if doc is None:
            continue
        src = Path(runs_dir) / doc["output"]["folder"] / f"epoch_{epoch:04d}.safetensors"
        if not src.is_file() or src.stat().st_size > PIN_MAX_BYTES:
            continue
        with atomic(dst) as tmp:
            shutil.copyfile(src, tmp)
        n += 1
    return n


def restore(trajectory: Cell, doc: dict, store: CellStore, runs_dir: Path, epochs=()) -> bool:
    """Are the training's last snapshot and `epochs` in runs/ — after copying the missing ones there from their pins
    when every one of them is pinned? False (the training must be retrained) when one is neither here nor pinned."""
    from .safefile import atomic

    folder = Path(runs_dir) / doc["output"]["folder"]
    names = {f"epoch_{e:04d}.safetensors": e for e in {trajectory.args["epochs"], *epochs}}
    missing = [n for n in sorted(names) if not (folder / n).is_file()]
    if any(not pinned(store, trajectory, names[n]).is_file() for n in missing):
        return False
    for n in missing:
        with atomic(folder / n) as tmp:
            shutil.copyfile(pinned(store, trajectory, names[n]), tmp)
    return True
