"""Calibrating CLoM's α per distance (docs/ptm.md §11): a distance's α only scales its gradient, and the distances'
raw gradients differ by orders of magnitude (at the DM initial set, ‖∇ cos‖ is ~45x smaller than ‖∇ ce_code‖), so
one α for all of them switches some off. The rule elfkit records is a share rule:

    α_d = s_ref · G_base / G_d,    s_ref = α_ref · G_ref / G_base,ref

where G is the mean image-gradient norm over `draws` calls at a method's initial synthetic set — of the base
method's own loss (G_base) or of the unit-weight (α = 1) CLoM term (G_d) — and ref is the published setting
(ce_code on the target at the profile's α, measured with the reference method): every distance then pulls the
images as hard, relative to the base method, as the published CE term does. For a method with a published α the
reference method is the method itself, G_base cancels and α_d = α_ref · G_ref / G_d; MTT has no published α, so its
reference is DM's published setting, carried over as the same share of MTT's own gradient."""
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


def base_loss(method: str, data: Data, labels: torch.Tensor, arch: str, seed: int, settings: dict, experts=()):
    """loss(x, k): the base method's loss of one iteration at images x (draw k: its own network and real batch).
    DM: the class-mean embedding distance with one Siamese DSA draw per class; DC/DSA: the gradient distance of one
    outer step on a fresh network (DSA with its Siamese draws); MTT: the normalised trajectory distance after
    syn_steps student steps at the initial step size, from a random expert and start epoch (`experts`)."""
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
    if method == "MTT":
        return _mtt_loss(data, labels, arch, seed, settings, list(experts), net_of(0))
    raise ElfkitError(f"α calibration is implemented for DM, DC, DSA and MTT, not {method!r}")


def _mtt_loss(data: Data, labels: torch.Tensor, arch: str, seed: int, settings: dict, experts: list, net):
    from .distill.mtt import params_of, plan_steps, unrolled_loss

    if not experts:
        raise ElfkitError("calibrating α for MTT needs its expert trajectories")
    net = net.train()
    shapes = {k: tuple(v.shape) for k, v in net.named_parameters()}
    names, n = list(shapes), len(labels)
    strategy = augment.strategy_for(data.name)
    lr = torch.tensor(float(settings["lr_teacher"]), device=labels.device)

    def loss(x, k):
        g = seeding.generator(seeding.derive(seed, "calibrate", k))
        traj = experts[int(torch.randint(len(experts), (1,), generator=g))]
        t0 = int(torch.randint(settings["max_start_epoch"], (1,), generator=g))
        start = params_of(traj, t0, shapes, labels.device)
        target = params_of(traj, t0 + settings["expert_epochs"], shapes, labels.device)
        steps = plan_steps(n, settings["syn_steps"], min(settings["batch_syn"] or n, n), strategy, data.spec.im_size,
                           g)
        return unrolled_loss(net, names, start, target, x, labels, lr, steps)
    return loss


def calibrated_alpha(reference_alpha: float, reference: dict, this: dict, same_method: bool) -> float:
    """α_d = α_ref · (G_ref / G_base,ref) · G_base / G_d (the module's rule) from the reference and this option's
    calibration outputs ({"base_norm", "clom_norm"}); with `same_method` (one method, one initial set) G_base
    cancels: α_d = α_ref · G_ref / G_d. A vanishing gradient cannot be calibrated."""
    norms = [("CLoM term's", this["clom_norm"])]
    if not same_method:
        norms += [("reference method's", reference["base_norm"]), ("base method's", this["base_norm"])]
    for what, norm in norms:
        if not norm > 0:
            raise ElfkitError(f"the {what} image gradient is {norm} at the initial set; α cannot be calibrated")
    if same_method:
        return reference_alpha * reference["clom_norm"] / this["clom_norm"]
    return reference_alpha * reference["clom_norm"] / reference["base_norm"] * this["base_norm"] / this["clom_norm"]
