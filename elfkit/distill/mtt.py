"""MTT — matching training trajectories (Cazenavette et al., CVPR 2022), docs/base-methods.md §6, memory-bounded.

The published code keeps the whole unrolled inner loop (syn_steps × batch_syn activations and their double-backward
graphs). elfkit computes the same gradient by reverse-mode through the recursion θ_{k+1} = θ_k − η∇ℓ(θ_k; X_k):
a forward pass keeps only the parameter vectors θ_k (kilobytes to megabytes), and the backward pass rebuilds one
step's graph at a time (the same indices and the same DSA draw) and carries the adjoint a_k = ∂L/∂θ_k:
  ∂L/∂X_k = −η ∂(a_{k+1}·g_k)/∂X_k,  ∂L/∂η −= a_{k+1}·g_k,  a_k = a_{k+1} − η H_k a_{k+1}.
Peak memory is one step's graph plus syn_steps parameter vectors; `unroll="full"` is the published structure."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call

from .. import augment, models, seeding
from ..data import Data
from ..errors import DivergenceError, ElfkitError
from ..synset import SynSet
from . import loop, state


def plan_steps(n: int, syn_steps: int, batch_syn: int, strategy: str | None, im_size, g: torch.Generator):
    """The minibatch indices (chunks of a random permutation, taken from the end as the reference's .pop(), with a
    new permutation when exhausted) and the DSA draw (independent per-sample parameters) of every unrolled step."""
    steps, chunks = [], []
    for _ in range(syn_steps):
        if not chunks:
            chunks = list(torch.randperm(n, generator=g).split(batch_syn))
        idx = chunks.pop()
        draw = augment.sample(strategy, len(idx), g=g, im_size=im_size, shared_family=True) if strategy else None
        steps.append((idx, draw))
    return steps


def _batch(images, labels, step):
    idx, draw = step
    idx = idx.to(images.device)
    x = images[idx]
    return (augment.apply(x, draw) if draw is not None else x), labels[idx]


def _step_grad(net, names, theta, x, y, create_graph: bool):
    out = functional_call(net, dict(zip(names, theta)), (x,))
    return torch.autograd.grad(F.cross_entropy(out, y), theta, create_graph=create_graph)


def _distance(theta, target) -> torch.Tensor:
    return sum(((a - b) ** 2).sum() for a, b in zip(theta, target))


def unrolled_loss(net, names, start, target, images, labels, syn_lr, steps) -> torch.Tensor:
    """‖θ_N − θ*‖² / ‖θ_0 − θ*‖² with the whole unrolled graph kept (the published structure): differentiable in
    `images` and `syn_lr` by plain autograd (what trajectory_loss's `full` mode and α calibration use)."""
    theta = [t.detach().clone().requires_grad_(True) for t in start]
    for step in steps:
        x, y = _batch(images, labels, step)
        grads = _step_grad(net, names, theta, x, y, create_graph=True)
        theta = [t - syn_lr * gi for t, gi in zip(theta, grads)]
    return _distance(theta, target) / _distance([t.detach() for t in start], target)


def trajectory_loss(net, names, start, target, images, labels, syn_lr, steps, unroll: str = "bounded"):
    """L = ‖θ_N − θ*‖² / ‖θ_0 − θ*‖² after len(steps) student steps from θ_0 = start. Returns (L, ∂L/∂images,
    ∂L/∂η) — `bounded` (adjoint, one step's graph at a time) and `full` (the published full unroll) agree."""
    start = [t.detach() for t in start]
    denom = _distance(start, target)
    if unroll == "full":
        imgs = images.detach().requires_grad_(True)
        lr = syn_lr.detach().requires_grad_(True)
        loss = unrolled_loss(net, names, start, target, imgs, labels, lr, steps)
        gi, gl = torch.autograd.grad(loss, [imgs, lr])
        return loss.detach(), gi, gl
    if unroll != "bounded":
        raise ElfkitError(f"unroll must be 'bounded' or 'full', got {unroll!r}")
    lr = syn_lr.detach()
    thetas, theta = [], start
    for step in steps:                        # forward: no graph kept, only the parameter vectors
        thetas.append(theta)
        x, y = _batch(images.detach(), labels, step)
        th = [t.requires_grad_(True) for t in (t.detach().clone() for t in theta)]
        grads = _step_grad(net, names, th, x, y, create_graph=False)
        theta = [t.detach() - lr * gi for t, gi in zip(th, grads)]
    loss = _distance(theta, target) / denom
    adj = [2 * (a - b) / denom for a, b in zip(theta, target)]
    g_img = torch.zeros_like(images)
    g_lr = torch.zeros((), device=images.device)
    for step, theta_k in zip(reversed(steps), reversed(thetas)):
        th = [t.detach().clone().requires_grad_(True) for t in theta_k]
        imgs = images.detach().requires_grad_(True)
        x, y = _batch(imgs, labels, step)
        grads = _step_grad(net, names, th, x, y, create_graph=True)
        q = sum((a * gk).sum() for a, gk in zip(adj, grads))
        *hv, dq_dimg = torch.autograd.grad(q, th + [imgs], allow_unused=True)
        g_lr -= q.detach()
        if dq_dimg is not None:
            g_img -= lr * dq_dimg
        adj = [a - lr * h if h is not None else a for a, h in zip(adj, hv)]
    return loss.detach(), g_img, g_lr


def params_of(traj, epoch: int, shapes: dict, device):
    """The parameters (no buffers) of an expert snapshot, in the distillation network's order."""
    sd = traj.state(epoch)
    bad = [n for n, shape in shapes.items() if n not in sd or tuple(sd[n].shape) != shape]
    if bad:
        raise ElfkitError(f"expert {getattr(traj, 'folder', traj)} was trained with a different architecture than "
                          f"the distillation network (missing or mis-shaped: {', '.join(bad[:3])}); train experts "
                          "of the same architecture")
    return [sd[n].to(device) for n in shapes]


def _kept(ckpt) -> str:
    if ckpt is not None and ckpt.is_file():
        return f" The last good checkpoint is kept at {ckpt} (resume=True continues from it)."
    return " No checkpoint was written yet."


def distill(
    data: Data, *, ipc: int, experts, arch: str = "ConvNet", iterations: int = 5000, syn_steps: int = 20,
    expert_epochs: int = 2, max_start_epoch: int = 20, lr_img: float = 1000.0, lr_lr: float = 1e-5,
    lr_teacher: float = 0.01, batch_syn: int = 0, momentum: float = 0.5, dsa: bool = True,
    dsa_strategy: str | None = None, unroll: str = "bounded", seed: int = 0, device: str | torch.device = "cpu",
    checkpoint: str | Path | None = None, checkpoint_every: int = 0, resume: bool = False, progress: str = "off",
    curve_every: int = 1, guidance=None,
) -> SynSet:
    """MTT from real initialisation. `experts`: trajectories (experts.Trajectory, or anything with
    `.state(epoch)` and `.epochs()`) of `arch` on the same data. Each iteration: a random expert and start epoch
    t ∈ [0, max_start_epoch); `syn_steps` student steps of SGD with the learnable step size η from θ_t; one step of
    SGD(momentum 0.5) on the images (lr_img) and on η (lr_lr) for ‖θ − θ_{t+expert_epochs}‖² / ‖θ_t − θ_{t+E}‖².
    The set's meta carries the learned η (`syn_lr`), which MTT's evaluation uses as its learning rate.
    `guidance(images, labels)` (clom.Guidance) adds its gradient once per iteration (whole un-augmented set)."""
    device = torch.device(device)
    experts = list(experts)
    if not experts:
        raise ElfkitError("MTT needs expert trajectories; train them first (elfkit train-experts, or notebook "
                          "01_experts)")
    have = min(max(t.epochs()) for t in experts)
    if max_start_epoch < 1 or max_start_epoch - 1 + expert_epochs > have:
        raise ElfkitError(f"MTT: max_start_epoch {max_start_epoch} + expert_epochs {expert_epochs} needs trajectories "
                          f"of at least {max_start_epoch - 1 + expert_epochs} epochs; the experts have {have}. Lower "
                          "them or train longer experts")
    strategy = (dsa_strategy if dsa_strategy is not None else augment.strategy_for(data.name)) if dsa else None
    C = data.num_classes
    n = C * ipc
    bs = min(batch_syn or n, n)
    cfg = dict(method="MTT", dataset=data.name, ipc=ipc, arch=arch, iterations=iterations, syn_steps=syn_steps,
               expert_epochs=expert_epochs, max_start_epoch=max_start_epoch, lr_img=lr_img, lr_lr=lr_lr,
               lr_teacher=lr_teacher, batch_syn=bs, momentum=momentum, dsa_strategy=strategy, seed=seed,
               experts=[str(getattr(t, "folder", i)).rsplit("/", 1)[-1] for i, t in enumerate(experts)])
    if guidance is not None:
        cfg["clom"] = guidance.config()
    fp = state.fingerprint(cfg)
    g = seeding.generator(seeding.derive(seed, "mtt"))
    images = state.init_real(data, ipc, g).to(device).requires_grad_(True)
    labels = state.hard_labels(C, ipc, device)
    syn_lr = torch.tensor(float(lr_teacher), device=device, requires_grad=True)
    opt_img = torch.optim.SGD([images], lr=lr_img, momentum=momentum)
    opt_lr = torch.optim.SGD([syn_lr], lr=lr_lr, momentum=momentum)
    net = models.create(arch, channel=data.spec.channel, num_classes=C, im_size=data.spec.im_size).to(device).train()
    shapes = {k: tuple(v.shape) for k, v in net.named_parameters()}
    names = list(shapes)

    def step(it: int) -> torch.Tensor:
        traj = experts[int(torch.randint(len(experts), (1,), generator=g))]
        t0 = int(torch.randint(max_start_epoch, (1,), generator=g))
        theta0 = params_of(traj, t0, shapes, device)
        target = params_of(traj, t0 + expert_epochs, shapes, device)
        steps = plan_steps(n, syn_steps, bs, strategy, data.spec.im_size, g)
        loss, g_img, g_lr = trajectory_loss(net, names, theta0, target, images, labels, syn_lr, steps, unroll)
        if guidance is not None:
            g_img = g_img + torch.autograd.grad(guidance(images, labels), images)[0]
        images.grad, syn_lr.grad = g_img, g_lr.reshape(())
        opt_img.step()
        opt_lr.step()
        return loss

    def positive_step_size(it: int, ckpt) -> None:      # a non-positive step size cannot train an evaluation model
        if not float(syn_lr.detach()) > 0:
            raise DivergenceError(f"MTT: the learned step size became {float(syn_lr.detach()):.3g} at iteration "
                                  f"{it}; lower lr_lr (now {lr_lr}).{_kept(ckpt)}")

    curve = loop.run("MTT", iterations=iterations, step=step, g=g, fp=fp,
                     slots={"images": (images, opt_img, "mom_img"), "syn_lr": (syn_lr, opt_lr, "mom_lr")},
                     checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume, progress=progress,
                     desc=f"MTT ipc{ipc} {arch}", curve_every=curve_every, guidance=guidance,
                     hint=f"lower lr_img (now {lr_img}) or syn_steps", check_every_step=True,
                     check=positive_step_size, curve_extra=lambda: [float(syn_lr.detach())])
    return loop.finish(cfg, curve, data, images, labels, syn_lr=float(syn_lr.detach()))


def profile_kwargs(p, iterations: int = 0) -> dict:
    """The MTT settings of a Profile; the experts come from experiments.experts.mtt_experts."""
    return dict(iterations=iterations or p.mtt_iterations, syn_steps=p.mtt_syn_steps, expert_epochs=p.mtt_expert_epochs,
                max_start_epoch=p.mtt_max_start_epoch, lr_img=p.mtt_lr_img, lr_lr=p.mtt_lr_lr,
                lr_teacher=p.mtt_lr_teacher, batch_syn=p.mtt_batch_syn)
