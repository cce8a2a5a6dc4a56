"""What every distiller shares: the initial synthetic set, and checkpoints that make `resume=True` continue to the
same final tensor as an uninterrupted run (safetensors, atomic replace, fingerprinted by the configuration)."""
from __future__ import annotations

import json
import os
import tempfile
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


def save(path: Path, it: int, tensors: dict[str, torch.Tensor], fp: str, curve: list, extra: dict | None = None) -> None:
    """Atomic: a crash mid-write leaves the previous checkpoint intact."""
    from safetensors.torch import save_file

    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    meta = {"iteration": str(it), "fingerprint": fp, "curve": json.dumps(curve), "extra": json.dumps(extra or {})}
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items() if v is not None}, tmp, metadata=meta)
    os.replace(tmp, path)


def load(path: Path, fp: str, method: str):
    """(iteration, tensors, curve, extra) of a checkpoint written by `save` for the same configuration."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            t = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise ElfkitError(f"checkpoint {path} is unreadable ({e}); delete it to start over") from None
    if meta.get("fingerprint") != fp:
        raise ElfkitError(f"checkpoint {path} belongs to a different {method} configuration; delete it or pass "
                          "another checkpoint path")
    return int(meta["iteration"]), t, json.loads(meta.get("curve", "[]")), json.loads(meta.get("extra", "{}"))


def restore(checkpoint, resume: bool, fp: str, method: str, g: torch.Generator, slots: dict):
    """(checkpoint path or None, start iteration, loss curve). With `resume` and an existing checkpoint, copies
    each slot back — slots: name -> (tensor, its optimiser, momentum key) — and the generator state."""
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is None:
        return None, 0, []
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    if not (resume and ckpt.is_file()):
        return ckpt, 0, []
    start, t, curve, _ = load(ckpt, fp, method)
    for name, (tensor, opt, mom_key) in slots.items():
        with torch.no_grad():
            tensor.copy_(t[name].to(tensor.device))
        if mom_key in t:
            opt.state[tensor]["momentum_buffer"] = t[mom_key].to(tensor.device)
    g.set_state(t["rng"])
    return ckpt, start, curve


def check_finite(method: str, it: int, loss: float, images: torch.Tensor, hint: str, ckpt: Path | None) -> None:
    """NaN/inf loss or pixels stop the run; the last good checkpoint (written only after this check) is kept."""
    bad = loss != loss or loss in (float("inf"), float("-inf"))
    if bad or not torch.isfinite(images).all():
        what = f"loss became {loss}" if bad else "synthetic images became non-finite"
        kept = f" The last good checkpoint is kept at {ckpt} (resume=True continues from it)." if ckpt else ""
        raise DivergenceError(f"{method}: {what} at iteration {it}; {hint}.{kept}")
