"""What every distiller shares: the initial synthetic set, and checkpoints that make `resume=True` continue to the
same final tensor as an uninterrupted run (safetensors, atomic replace, fingerprinted by the configuration)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..data import Data, class_indices
from ..errors import DivergenceError, ElfkitError

INITS = ("real", "noise")


def init_real(data: Data, ipc: int, g: torch.Generator) -> torch.Tensor:
    """ipc random real training images per class, class-major."""
    cls = class_indices(data.y_train.cpu(), data.num_classes)
    if min(len(c) for c in cls) < ipc:
        raise ElfkitError(f"{data.name}: some class has fewer than ipc={ipc} training images; use init='noise' "
                          "or a smaller IPC")
    idx = torch.cat([c[torch.randperm(len(c), generator=g)[:ipc]] for c in cls])
    return data.x_train[idx.to(data.x_train.device)].detach().clone()


def init_images(data: Data, ipc: int, init: str, g: torch.Generator) -> torch.Tensor:
    """`real` (ipc real images per class) or `noise` (N(0,1) in normalised space), class-major."""
    if init == "real":
        return init_real(data, ipc, g)
    if init == "noise":
        shape = (data.num_classes * ipc, data.spec.channel, *data.spec.im_size)
        return torch.randn(shape, generator=g).to(data.x_train.device)
    raise ElfkitError(f"unknown init {init!r}; choose one of {INITS}")


def hard_labels(num_classes: int, ipc: int, device) -> torch.Tensor:
    return torch.arange(num_classes, device=device).repeat_interleave(ipc)


def fingerprint(cfg: dict) -> str:
    return json.dumps(cfg, sort_keys=True, default=str)


def momentum_of(opt: torch.optim.Optimizer, param: torch.Tensor) -> torch.Tensor | None:
    return opt.state.get(param, {}).get("momentum_buffer")


def save(path: Path, it: int, tensors: dict[str, torch.Tensor], fp: str, curve: list, extra: dict | None = None,
         guidance=None) -> None:
    """Atomic and checksummed (elfkit.safefile): a crash mid-write leaves the previous checkpoint intact. The
    guidance's generator (its pool-member and real-batch draws) is saved too, so a guided run resumes exactly."""
    from ..safefile import save_tensors

    tensors = dict(tensors)
    if guidance is not None:
        tensors["clom_rng"] = guidance.g.get_state()
    meta = {"iteration": str(it), "fingerprint": fp, "curve": json.dumps(curve), "extra": json.dumps(extra or {})}
    save_tensors(path, tensors, meta)


def load(path: Path, fp: str, method: str):
    """(iteration, tensors, curve, extra) of a checkpoint written by `save` for the same configuration."""
    from ..safefile import load_tensors

    t, meta = load_tensors(path, f"{method} checkpoint", "delete it to start over")
    if meta.get("fingerprint") != fp:
        raise ElfkitError(f"checkpoint {path} belongs to a different {method} configuration; delete it or pass "
                          "another checkpoint path")
    return int(meta["iteration"]), t, json.loads(meta.get("curve", "[]")), json.loads(meta.get("extra", "{}"))


def restore(checkpoint, resume: bool, fp: str, method: str, g: torch.Generator, slots: dict, guidance=None):
    """(checkpoint path or None, start iteration, loss curve). With `resume` and an existing checkpoint, copies
    each slot back — slots: name -> (tensor, its optimiser, momentum key) — and the generator states. Without
    `resume`, an existing checkpoint is never overwritten silently: the run stops and says what to do."""
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is None:
        return None, 0, []
    if ckpt.is_dir():
        raise ElfkitError(f"checkpoint path {ckpt} is a folder; give a file name such as {ckpt / 'run.ckpt'}")
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    if not ckpt.is_file():
        return ckpt, 0, []
    if not resume:
        raise ElfkitError(f"checkpoint {ckpt} already exists; pass resume=True (CLI: --resume) to continue it, or "
                          "delete it / choose another path to start over")
    start, t, curve, _ = load(ckpt, fp, method)
    for name, (tensor, opt, mom_key) in slots.items():
        with torch.no_grad():
            tensor.copy_(t[name].to(tensor.device))
        if mom_key in t:
            opt.state[tensor]["momentum_buffer"] = t[mom_key].to(tensor.device)
    g.set_state(t["rng"])
    if guidance is not None:
        if "clom_rng" not in t:
            raise ElfkitError(f"checkpoint {ckpt} has no CLoM generator state (written by an older elfkit); delete "
                              "it to start over")
        guidance.g.set_state(t["clom_rng"])
    return ckpt, start, curve


EXPLODE = 1e3       # a loss this many times its first value, or |pixel| above PIXEL_LIMIT, counts as divergence
PIXEL_LIMIT = 1e4   # normalised pixels; real images lie within about ±5


def check_finite(method: str, it: int, loss: float, images: torch.Tensor, hint: str, ckpt: Path | None,
                 first_loss: float | None = None) -> None:
    """NaN/inf or exploding loss or pixels stop the run; the last good checkpoint (written only after this check)
    is kept. One host sync per call (the distillers call it once per iteration or per checkpoint)."""
    bad = loss != loss or loss in (float("inf"), float("-inf"))
    big = float(images.detach().abs().max()) if images.numel() else 0.0
    what = None
    if bad or big != big:
        what = f"loss became {loss}" if bad else "synthetic images became non-finite"
    elif big > PIXEL_LIMIT:
        what = f"synthetic pixels exploded (max |value| {big:.3g} > {PIXEL_LIMIT:g})"
    elif first_loss is not None and first_loss > 0 and loss > EXPLODE * first_loss:
        what = f"loss exploded ({loss:.4g}, over {EXPLODE:g}x its first value {first_loss:.4g})"
    if what:
        kept = (f" The last good checkpoint is kept at {ckpt} (resume=True continues from it)."
                if ckpt is not None and ckpt.is_file() else " No checkpoint was written yet.")
        raise DivergenceError(f"{method}: {what} at iteration {it}; {hint}.{kept}")
