"""The one outer loop every distiller runs: each method supplies `step(it) -> loss` (it has taken its optimiser
steps); the loop owns the progress bar, the loss curve, the NaN/explosion stop, checkpoint and resume, and the
finished set's metadata. A resumed run continues to the same final tensor as an uninterrupted one."""
from __future__ import annotations

from typing import Callable

import torch

from .. import log
from ..synset import SynSet
from . import state


def run(method: str, *, iterations: int, step: Callable[[int], torch.Tensor], slots: dict, g: torch.Generator,
        fp: str, checkpoint, checkpoint_every: int, resume: bool, progress: str, desc: str, curve_every: int,
        hint: str, guidance=None, scale: float = 1.0, check_every_step: bool = False,
        check: Callable[[int, object], None] | None = None, curve_extra: Callable[[], list] | None = None) -> list:
    """Run iterations [start, iterations) and return the loss curve [[it, loss, *curve_extra()], ...].
    slots: name -> (tensor, its optimiser, momentum key): restored on resume, saved in every checkpoint with `g`'s
    state (and the guidance's generator). The curve logs float(loss) / scale every `curve_every` iterations and at
    the last; the finite check runs then (every iteration with `check_every_step`), `check(it, ckpt)` after it.
    One host sync per checked iteration; none on the others."""
    ckpt, start, curve = state.restore(checkpoint, resume, fp, method, g, slots, guidance=guidance)
    images = slots["images"][0]
    with log.Progress(iterations, desc, progress) as bar:
        bar.update(start)
        for it in range(start, iterations):
            loss = step(it)
            logged = it % curve_every == 0 or it == iterations - 1
            if logged or check_every_step:
                val = float(loss) / scale if scale != 1.0 else float(loss)
                state.check_finite(method, it, val, images, hint, ckpt, first_loss=curve[0][1] if curve else None)
                if check is not None:
                    check(it, ckpt)
            if logged:
                curve.append([it, val, *(curve_extra() if curve_extra else [])])
                bar.update(it + 1 - bar.n, loss=val)
            if ckpt is not None and checkpoint_every and (it + 1) % checkpoint_every == 0:
                state.check_finite(method, it, 0.0, images, hint, ckpt)
                tensors = {"rng": g.get_state()}
                for name, (tensor, opt, mom_key) in slots.items():
                    tensors[name] = tensor.detach().reshape(tensor.shape)
                    tensors[mom_key] = state.momentum_of(opt, tensor)
                state.save(ckpt, it + 1, tensors, fp, curve, guidance=guidance)
        bar.update(iterations - bar.n)
    return curve


def finish(cfg: dict, curve: list, data, images: torch.Tensor, labels: torch.Tensor, **extra) -> SynSet:
    """The set with its metadata: the configuration, the loss curve, the data's normalisation and class names.
    No wall time: the saved file must be byte-identical across runs of the same configuration."""
    meta = {**cfg, "loss_curve": curve, **extra, "mean": data.spec.mean, "std": data.spec.std,
            "class_names": list(data.class_names)}
    return SynSet(images.detach().cpu().clone(), labels.cpu(), meta)
