"""Synthetic sets shared by experiments: distilled once per (method, data, IPC, settings, seed), cached by hash."""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..synset import SynSet


def distilled(ctx, data, method: str, ipc: int, *, guidance=None, iterations: int = 0) -> SynSet:
    """The `method` set at `ipc` for ctx's profile and seed, from results/<profile>/runs/synsets or distilled now
    (checkpointed, so an interrupted notebook resumes). MTT takes the profile's expert trajectories (01_experts).
    `guidance` (clom.Guidance) and `iterations` (> 0 replaces the profile's count) enter the cache key."""
    from ..distill import METHODS
    from ..synset import load

    mod = METHODS[method]
    kw = mod.profile_kwargs(ctx.profile)
    if iterations:
        kw["iterations"] = iterations
    cfg = {"method": method, "dataset": data.name, "n_train": len(data.y_train), "ipc": ipc,
           "arch": ctx.profile.distill_arch, "seed": ctx.seed, **kw}
    if guidance is not None:
        cfg["clom"] = guidance.config()
        kw["guidance"] = guidance
    if method == "MTT":
        from .experts import mtt_experts

        kw["experts"] = mtt_experts(ctx, data)
        cfg["experts"] = [t.folder.name for t in kw["experts"]]
    h = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
    folder = ctx.runs_dir / "synsets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{method}{'_clom' if guidance is not None else ''}_{data.name}_ipc{ipc}_{h}.safetensors"
    if path.is_file():
        return load(path)
    syn = mod.distill(data, ipc=ipc, arch=ctx.profile.distill_arch, seed=ctx.seed, device=ctx.device,
                      checkpoint=path.with_suffix(".ckpt"), checkpoint_every=ctx.profile.checkpoint_every,
                      resume=True, progress=ctx.progress, **kw)
    syn.save(path)
    return syn
