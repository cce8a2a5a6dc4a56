"""Train one network on a (small) tensor dataset with the standard DD protocol, then test it once."""
from __future__ import annotations

import time
from typing import Callable

import torch
import torch.nn.functional as F

from . import augment, log
from .errors import DivergenceError

# CPU only: gradients of per-sample-normalised nets are accumulated over micro-batches of this size (exact up to
# float summation order; a ~1.5x speed-up from cache locality). Never with BatchNorm or a non-decomposable loss.
CPU_MICRO_BATCH = 25
CPU_TEST_CHUNK = 50


def _ce(model, x, y, idx):
    return F.cross_entropy(model(x), y)


def _sgd(model, lr, momentum, weight_decay):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    """Top-1 accuracy in eval mode over the whole tensor set, batched, one host sync at the end."""
    was_training = model.training
    model.eval()
    chunk = CPU_TEST_CHUNK if x.device.type == "cpu" else batch
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    cl = channels_last_on_cpu(model)
    for xb, yb in zip(x.split(chunk), y.split(chunk)):
        correct += (model(to_layout(xb, cl)).argmax(1) == yb).sum()
    model.train(was_training)
    return correct.item() / len(y)


def channels_last_on_cpu(model: torch.nn.Module) -> bool:
    """oneDNN is 1.2-1.5x faster in channels_last for ConvNet, AlexNet and BN nets on CPU, but 15-30% slower for
    the GroupNorm ResNet-18 (measured on the 2-core CI machine; README, performance)."""
    from .networks import ResNet

    return not (isinstance(model, ResNet) and any(isinstance(m, torch.nn.GroupNorm) for m in model.modules()))


def to_layout(x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """channels_last on CPU for 4-D batches (oneDNN's fast path); elsewhere unchanged."""
    if channels_last and x.device.type == "cpu" and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def minibatches(x: torch.Tensor, y: torch.Tensor, g: torch.Generator, batch_size: int, dsa_strategy: str | None,
                channels_last: bool):
    """One epoch of shuffled minibatches (idx, x_aug, y) by tensor indexing; DSA with independent per-sample
    parameters per batch. Shuffling and augmentation draw from `g` in a fixed order (reproducible, resumable)."""
    for idx in torch.randperm(len(x), generator=g).split(batch_size):
        idx = idx.to(x.device)
        xb = x[idx]
        if dsa_strategy:
            xb = augment.dsa(xb, dsa_strategy, g)
        yield idx, to_layout(xb, channels_last), y[idx]


def train_and_eval(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, *,
    epochs: int, g: torch.Generator, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4,
    batch_size: int = 256, dsa_strategy: str | None = None, loss_fn: Callable | None = None,
    test_batch: int = 256, progress: str = "off", desc: str = "train",
) -> dict:
    """The evaluation protocol of docs/base-methods.md §8: SGD(lr, momentum 0.9, wd 5e-4), E+1 epochs (0..E) over
    shuffled minibatches, lr x0.1 after epoch E//2+1 with a rebuilt optimiser, DSA per batch (independent
    per-sample parameters), then one test pass. `loss_fn(model, x_aug, y, idx)` (a batch mean) replaces CE (ELF);
    on CPU a loss marked `decomposable` is accumulated over micro-batches. `g` drives shuffling and augmentation."""
    from .models import has_batchnorm

    device = x.device
    cl = device.type == "cpu" and channels_last_on_cpu(model)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    decomposable = loss_fn is None or getattr(loss_fn, "decomposable", False)
    micro = CPU_MICRO_BATCH if (device.type == "cpu" and decomposable and not has_batchnorm(model)) else None
    loss_fn = loss_fn or _ce
    model.train()
    opt = _sgd(model, lr, momentum, weight_decay)
    decay_at = epochs // 2 + 1
    t0 = time.perf_counter()
    last = torch.zeros((), device=device)
    with log.Progress(epochs + 1, desc, progress, leave=False) as bar:
        for ep in range(epochs + 1):
            for idx, xb, yb in minibatches(x, y, g, batch_size, dsa_strategy, cl):
                opt.zero_grad(set_to_none=True)
                if micro and len(idx) > micro:
                    loss = torch.zeros((), device=device)
                    for start in range(0, len(idx), micro):
                        sl = slice(start, start + micro)   # views: no copy, memory format kept
                        if loss_fn is _ce:   # CE summed over the micro-batch / batch size: the batch mean
                            part = F.cross_entropy(model(xb[sl]), yb[sl], reduction="sum") / len(idx)
                        else:                # a decomposable batch-mean loss, weighted by the micro-batch's share
                            part = loss_fn(model, xb[sl], yb[sl], idx[sl]) * (len(yb[sl]) / len(idx))
                        part.backward()
                        loss += part.detach()
                else:
                    loss = loss_fn(model, xb, yb, idx)
                    loss.backward()
                opt.step()
                last = loss.detach()
            if ep == decay_at:
                lr *= 0.1
                opt = _sgd(model, lr, momentum, weight_decay)
            if ep % 50 == 0 or ep == epochs:
                val = float(last)
                if val != val or val in (float("inf"), float("-inf")):
                    raise DivergenceError(f"{desc}: training loss became {val} at epoch {ep}; lower the learning "
                                          "rate or check the synthetic set for extreme values")
            if progress != "off" and (ep % bar.every == 0 or ep == epochs):
                bar.update(ep + 1 - bar.n, loss=float(last))
    train_s = time.perf_counter() - t0
    acc = accuracy(model, x_test, y_test, test_batch)
    return {"test_acc": acc, "final_loss": float(last), "train_s": train_s,
            "test_s": time.perf_counter() - t0 - train_s}
