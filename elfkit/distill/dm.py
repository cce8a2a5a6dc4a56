"""DM — distribution matching (Zhao & Bilen, WACV 2023), faithful to docs/base-methods.md §4, resumable."""
from __future__ import annotations

from pathlib import Path

import torch

from .. import augment, models, seeding
from ..data import Data, class_indices
from ..errors import ElfkitError
from ..synset import SynSet
from . import loop, state
from .state import init_real  # noqa: F401  (public: elfkit.distill.dm.init_real)

REAL_CHUNK_CPU = 32   # the real-side forward runs in chunks on CPU: activations stay in cache (exact: no grad)


def _embed_real(net, x, cpu: bool):
    with torch.no_grad():
        if not cpu:
            return net.embed(x)
        return torch.cat([net.embed(c) for c in x.split(REAL_CHUNK_CPU)])


def layout(x, cpu: bool):
    """The synthetic and real batches in channels_last on CPU (the layout of the channels_last network)."""
    return x.contiguous(memory_format=torch.channels_last) if cpu else x


def dm_loss(net, x_real, y_real, x_syn, y_syn, num_classes: int, bn: bool, cpu: bool = False) -> torch.Tensor:
    """Σ_c ‖mean e(real_c) − mean e(syn_c)‖². BN nets see all classes in one forward (mixed batch statistics);
    per-sample-normalised nets give the same features per sample either way, so they are batched too."""
    if bn:
        with torch.no_grad():
            e_real = net.embed(x_real)
    else:
        e_real = _embed_real(net, x_real, cpu)
    e_syn = net.embed(x_syn)
    mu_real = torch.zeros(num_classes, e_real.shape[1], device=e_real.device).index_add_(0, y_real, e_real)
    mu_real = mu_real / torch.bincount(y_real, minlength=num_classes).clamp_min(1)[:, None]
    mu_syn = torch.zeros(num_classes, e_syn.shape[1], device=e_syn.device, dtype=e_syn.dtype).index_add(0, y_syn, e_syn)
    mu_syn = mu_syn / torch.bincount(y_syn, minlength=num_classes).clamp_min(1)[:, None]
    return ((mu_real - mu_syn) ** 2).sum()


def distill(
    data: Data, *, ipc: int, arch: str = "ConvNet", iterations: int = 20000, batch_real: int = 256,
    lr_img: float = 1.0, momentum: float = 0.5, dsa_strategy: str | None = None, seed: int = 0,
    device: str | torch.device = "cpu", checkpoint: str | Path | None = None, checkpoint_every: int = 0,
    resume: bool = False, progress: str = "off", curve_every: int = 10, guidance=None,
) -> SynSet:
    """Distribution matching. Real init; SGD(lr_img, momentum 0.5) on the pixels; each iteration draws a fresh
    frozen network (train mode), batch_real real images per class, ONE Siamese DSA draw per class shared by the
    real and synthetic images of that class, and takes one step on Σ_c ‖mean e(R_c) − mean e(S_c)‖².
    Deterministic from `seed`; with `checkpoint`, state is saved every `checkpoint_every` iterations and
    `resume=True` continues to the same final tensor as an uninterrupted run. `guidance(images, labels)`
    (clom.Guidance) is added once per iteration on the whole un-augmented set (docs/ptm.md §3.2)."""
    device = torch.device(device)
    cpu = device.type == "cpu"
    strategy = dsa_strategy if dsa_strategy is not None else augment.strategy_for(data.name)
    C = data.num_classes
    cfg = dict(method="DM", dataset=data.name, ipc=ipc, arch=arch, iterations=iterations, batch_real=batch_real,
               lr_img=lr_img, momentum=momentum, dsa_strategy=strategy, seed=seed)
    if guidance is not None:
        cfg["clom"] = guidance.config()
    fp = state.fingerprint(cfg)
    g = seeding.generator(seeding.derive(seed, "dm"))
    x_all, y_all = data.x_train.to(device), data.y_train.to(device)
    cls = class_indices(data.y_train.cpu(), C)
    if min(len(c) for c in cls) == 0:
        raise ElfkitError(f"{data.name}: some class has no training images; DM needs real images of every class")
    images = init_real(data, ipc, g).to(device).requires_grad_(True)
    y_syn = state.hard_labels(C, ipc, device)
    opt = torch.optim.SGD([images], lr=lr_img, momentum=momentum)
    probe = models.create(arch, channel=data.spec.channel, num_classes=C, im_size=data.spec.im_size)
    bn = models.has_batchnorm(probe)

    def step(it: int) -> torch.Tensor:
        with seeding.forked(seeding.derive(seed, "dm-net", it), device):
            net = models.create(arch, channel=data.spec.channel, num_classes=C, im_size=data.spec.im_size)
        net = net.to(device).train().requires_grad_(False)
        if cpu:
            net = net.to(memory_format=torch.channels_last)
        ridx = torch.cat([c[torch.randperm(len(c), generator=g)[:batch_real]] for c in cls]).to(device)
        x_real, y_real = x_all[ridx], y_all[ridx]
        if strategy:
            x_real, x_syn = augment.siamese_by_class(x_real, y_real, images, y_syn, C, strategy, g)
        else:
            x_syn = images
        loss = dm_loss(net, layout(x_real, cpu), y_real, layout(x_syn, cpu), y_syn, C, bn, cpu)
        if guidance is not None:
            loss = loss + guidance(images, y_syn)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        return loss.detach()

    curve = loop.run("DM", iterations=iterations, step=step, slots={"images": (images, opt, "momentum")}, g=g,
                     fp=fp, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                     progress=progress, desc=f"DM ipc{ipc} {arch}", curve_every=curve_every,
                     hint=f"lower lr_img (now {lr_img})", guidance=guidance)
    return loop.finish(cfg, curve, data, images, y_syn)


def profile_kwargs(p, iterations: int = 0) -> dict:
    """The DM settings of a Profile (experiments call every method through the same shape)."""
    return dict(iterations=iterations or p.dm_iterations, batch_real=p.dm_batch_real, lr_img=p.dm_lr_img)
