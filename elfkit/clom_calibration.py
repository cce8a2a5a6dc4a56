"""Calibrating CLoM's α per distance (docs/ptm.md §4): a distance's α only scales its gradient, and the distances'
raw gradients differ by orders of magnitude (at the DM initial set, ‖∇ cos‖ is ~45x smaller than ‖∇ ce_code‖), so
one α for all of them switches some off. The rule elfkit records:

    α_d = α_ref · G_ref / G_d

where G is the mean image-gradient norm of the unit-weight (α = 1) CLoM term over `draws` calls at the method's
initial synthetic set, and ref is the published setting (ce_code at the profile's α): every distance then pulls
the images as hard, relative to the base method, as the published CE term does. G_base (the base method's own
mean image-gradient norm at the same set) is recorded beside it, so the share G·α / G_base of every arm is known."""
from __future__ import annotations

import torch

from . import augment, models, seeding
from .data import Data, class_indices
from .errors import ElfkitError


def grad_norm(loss_fn, images: torch.Tensor, draws: int) -> float:
    """Mean over `draws` calls of ‖∂ loss_fn(x) / ∂ x‖ at x = images (each call may draw its own network/batch)."""
    total = 0.0
    for k in range(draws):
        x = images.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_fn(x, k), x)
        total += float(g.norm())
    return total / draws


def base_loss(method: str, data: Data, labels: torch.Tensor, arch: str, seed: int, settings: dict):
    """loss(x, k): the base method's loss of one iteration at images x (draw k: its own network and real batch).
    DM: the class-mean embedding distance with one Siamese DSA draw per class; DC/DSA: the gradient distance of one
    outer step on a fresh network (DSA with its Siamese draws)."""
    C = data.num_classes
    ipc = len(labels) // C
    cls = class_indices(data.y_train.cpu(), C)
    dev = labels.device
    x_all, y_all = data.x_train.to(dev), data.y_train.to(dev)

    def net_of(k):
        with seeding.forked(seeding.derive(seed, "calibrate-net", k), dev):
            return models.create(arch, channel=data.spec.channel, num_classes=C, im_size=data.spec.im_size).to(dev)

    if method == "DM":
        from .distill.dm import dm_loss

        strategy = augment.strategy_for(data.name)

        def loss(x, k):
            g = seeding.generator(seeding.derive(seed, "calibrate", k))
            net = net_of(k).train().requires_grad_(False)
            ridx = torch.cat([c[torch.randperm(len(c), generator=g)[:settings["batch_real"]]] for c in cls]).to(dev)
            xr, yr = x_all[ridx], y_all[ridx]
            xr, xs = augment.siamese_by_class(xr, yr, x, labels, C, strategy, g)
            return dm_loss(net, xr, yr, xs, labels, C, models.has_batchnorm(net))
        return loss
    if method in ("DC", "DSA"):
        from .distill.dc import gm_loss

        strategy = augment.strategy_for(data.name) if method == "DSA" else None

        def loss(x, k):
            g = seeding.generator(seeding.derive(seed, "calibrate", k))
            net = net_of(k).train()
            reals = [x_all[c[torch.randperm(len(c), generator=g)[:settings["batch_real"]]].to(dev)] for c in cls]
            return gm_loss(net, list(net.parameters()), reals, list(x.split(ipc)), settings.get("metric", "ours"),
                           strategy, g)
        return loss
    raise ElfkitError(f"α calibration is implemented for DM, DC and DSA, not {method!r}")


def calibrated_alpha(reference_alpha: float, reference_norm: float, norm: float) -> float:
    """α_d = α_ref · G_ref / G_d (the module's rule); a distance whose gradient vanishes cannot be calibrated."""
    if not norm > 0:
        raise ElfkitError(f"the CLoM term's image gradient is {norm} at the initial set; it cannot be calibrated")
    return reference_alpha * reference_norm / norm
