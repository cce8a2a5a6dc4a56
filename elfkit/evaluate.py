"""Evaluate a synthetic set: N fresh models per architecture under the standard protocol, one record per model."""
from __future__ import annotations

from typing import Callable

import torch

from . import augment, models, seeding
from .data import Data, class_indices
from .synset import SynSet
from .train import train_and_eval


def evaluate_synset(
    synset: SynSet, data: Data, archs: list[str] | tuple[str, ...], *, n_models: int = 3, seed: int = 0,
    epochs: int = 300, lr: float = 0.01, batch_size: int = 256, dsa: bool = True, dsa_strategy: str | None = None,
    test_batch: int = 256, device: str | torch.device = "cpu", progress: str = "off",
    loss_for: Callable[[str], Callable | None] | None = None, label: str = "eval", use_syn_lr: bool = True,
    protocol=None,
) -> list[dict]:
    """Train `n_models` fresh networks per architecture on the set; model i is initialised under seed + i, and
    its minibatch order and augmentation come from a generator derived from the same seed. Returns tidy records
    (eval_arch, model_seed, metric 'test_acc', value) — average them yourself (tables.mean_std).
    `loss_for(arch)` may return a training loss that replaces CE (ELF); everything else stays identical.
    A set that carries a learned step size (MTT's `syn_lr` in its meta) is trained with it, as MTT evaluates;
    `use_syn_lr=False` keeps `lr`. `protocol` (elfkit.protocol.EvalProtocol) sets n_models, epochs, lr, batch and
    DSA at once (the keywords are for calls without one)."""
    if protocol is not None:
        n_models, epochs, lr, batch_size, dsa = (protocol.n_models, protocol.epochs, protocol.lr, protocol.batch,
                                                 protocol.dsa)
    device = torch.device(device)
    if use_syn_lr and "syn_lr" in synset.meta:
        lr = float(synset.meta["syn_lr"])
    x, y = synset.images.to(device), synset.labels.to(device)
    xt, yt = data.x_test.to(device), data.y_test.to(device)
    strategy = (dsa_strategy or augment.strategy_for(data.name)) if dsa else None
    out = []
    for arch in archs:
        loss = loss_for(arch) if loss_for else None
        for i in range(n_models):
            s = seed + i
            with seeding.forked(s, device):
                net = models.create(arch, channel=data.spec.channel, num_classes=data.num_classes,
                                    im_size=data.spec.im_size).to(device)
            m = train_and_eval(net, x, y, xt, yt, epochs=epochs, g=seeding.generator(seeding.derive(s, "eval")),
                               lr=lr, batch_size=batch_size, dsa_strategy=strategy, loss_fn=loss,
                               test_batch=test_batch, progress=progress, desc=f"{label} {arch} #{i}")
            # timings stay out of records (two runs must give identical records); provenance has the wall time
            out.append({"eval_arch": arch, "model_seed": s, "metric": "test_acc", "value": m["test_acc"]})
            if progress == "rows":
                print(f"  {label:<4} {arch:<12} seed {s:<4} test_acc {m['test_acc']:.4f}  "
                      f"train {m['train_s']:.1f}s test {m['test_s']:.1f}s", flush=True)
    return out


def random_real(data: Data, ipc: int, seed: int) -> SynSet:
    """The baseline: ipc random real training images per class (class-major), from an explicit generator."""
    g = seeding.generator(seeding.derive(seed, "random_real"))
    idx = torch.cat([c[torch.randperm(len(c), generator=g)[:ipc]] for c in class_indices(data.y_train.cpu(),
                                                                                            data.num_classes)])
    return SynSet(data.x_train[idx.to(data.x_train.device)].clone().cpu(), data.y_train.cpu()[idx].clone(),
                  {"method": "random_real", "dataset": data.name, "ipc": ipc, "seed": seed})
