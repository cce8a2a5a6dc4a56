"""DC — gradient matching (Zhao, Mopuri & Bilen, ICLR 2021), and DSA when `dsa=True` (Zhao & Bilen, ICML 2021):
docs/base-methods.md §2–3, with explicit seeds, any IPC (a documented loop rule) and checkpoint/resume."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import augment, models, seeding
from ..data import Data, class_indices
from ..errors import ElfkitError
from ..synset import SynSet
from ..train import channels_last_on_cpu, minibatches, to_layout
from . import loop, state

METRICS = ("ours", "mse", "cos")

# get_loops of the reference code: ipc -> (outer_loop, inner_loop)
LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def loops_for(ipc: int, loops: tuple[int, int] | None = None, cap: tuple[int, ...] = ()) -> tuple[int, int]:
    """(outer, inner) for `ipc`: the user's pair, else the published table. The reference code exits for any other
    IPC; elfkit's rule takes the row of the nearest tabulated IPC (ties to the smaller; above 50 the IPC-50 row)
    and says so. `cap` = (max outer, max inner) bounds both (the cpu profile's budget)."""
    if loops is not None:
        outer, inner = (int(v) for v in loops)
        if outer < 1 or inner < 0:
            raise ElfkitError(f"loops must be (outer >= 1, inner >= 0), got {loops}")
    elif ipc in LOOPS:
        outer, inner = LOOPS[ipc]
    else:
        near = min(LOOPS, key=lambda k: (abs(k - ipc), k))
        outer, inner = LOOPS[near]
        warnings.warn(f"DC/DSA: IPC {ipc} is not in the published loop table {sorted(LOOPS)}; using IPC {near}'s "
                 f"(outer {outer}, inner {inner}). Pass loops=(outer, inner) to choose.", stacklevel=3)
    if cap:
        outer, inner = min(outer, cap[0]), min(inner, cap[1])
    return outer, inner


def _rows(g: torch.Tensor) -> torch.Tensor | None:
    """conv [out, in·kh·kw], LayerNorm weight [C, H·W], linear unchanged; 1-D tensors (bias, norm scale/shift)
    contribute 0."""
    return g.reshape(g.shape[0], -1) if g.ndim >= 2 else None


def match_loss(g_syn, g_real, metric: str = "ours") -> torch.Tensor:
    """Gradient distance D(g_syn, g_real) over lists of per-parameter gradients (`dis_metric`, §2).
    ours: Σ_tensors Σ_rows (1 − cos(row_real, row_syn)) with eps 1e-6 on the norm product, 1-D tensors ignored;
    mse: Σ (g_syn − g_real)² over the concatenation (a sum); cos: 1 − cos over the concatenation."""
    if metric == "ours":
        total = None
        for gs, gr in zip(g_syn, g_real):
            rs, rr = _rows(gs), _rows(gr)
            if rs is None:
                continue
            d = (1 - (rr * rs).sum(-1) / (rr.norm(dim=-1) * rs.norm(dim=-1) + 1e-6)).sum()
            total = d if total is None else total + d
        return total if total is not None else torch.zeros((), device=g_syn[0].device)
    vs = torch.cat([g.reshape(-1) for g in g_syn])
    vr = torch.cat([g.reshape(-1) for g in g_real])
    if metric == "mse":
        return ((vs - vr) ** 2).sum()
    if metric == "cos":
        return 1 - (vr * vs).sum() / (vr.norm() * vs.norm() + 1e-6)
    raise ElfkitError(f"unknown gradient distance {metric!r}; choose one of {METRICS}")


def _freeze_bn(net, x_all, cls, g, per_class: int = 16) -> None:
    """BN nets: 16 real images per class (one batch, all classes) set the running statistics in train mode, then
    every BN layer goes to eval mode, so matching sees fixed statistics (as the reference code)."""
    idx = torch.cat([c[torch.randperm(len(c), generator=g)[:per_class]] for c in cls]).to(x_all.device)
    net.train()
    with torch.no_grad():
        net(x_all[idx])
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def gm_loss(net, params, x_real_by_class, x_syn_by_class, metric: str, strategy: str | None, g,
            channels_last: bool = False) -> torch.Tensor:
    """Σ_c D(∇θ CE(net(S_c), c), ∇θ CE(net(R_c), c)); DSA: one Siamese draw per class shared by R_c and S_c.
    `channels_last` (CPU, a channels_last net): inputs in that layout — oneDNN is ~1.5x faster, same values."""
    loss = None
    for c, (xr, xs) in enumerate(zip(x_real_by_class, x_syn_by_class)):
        if strategy:
            xr, xs = augment.siamese([xr, xs], strategy, g)
        if channels_last:
            xr, xs = to_layout(xr), to_layout(xs)
        yr = torch.full((len(xr),), c, device=xr.device)
        g_real = [t.detach() for t in torch.autograd.grad(F.cross_entropy(net(xr), yr), params)]
        g_syn = torch.autograd.grad(F.cross_entropy(net(xs), yr[: len(xs)]), params, create_graph=True)
        d = match_loss(g_syn, g_real, metric)
        loss = d if loss is None else loss + d
    return loss


def distill(
    data: Data, *, ipc: int, arch: str = "ConvNet", dsa: bool = False, iterations: int = 1000,
    batch_real: int = 256, lr_img: float = 0.1, lr_net: float = 0.01, momentum: float = 0.5, metric: str = "ours",
    init: str = "noise", loops: tuple[int, int] | None = None, loop_cap: tuple[int, ...] = (),
    dsa_strategy: str | None = None, seed: int = 0, device: str | torch.device = "cpu",
    checkpoint: str | Path | None = None, checkpoint_every: int = 0, resume: bool = False, progress: str = "off",
    curve_every: int = 1, guidance=None,
) -> SynSet:
    """Gradient matching. Each iteration draws a fresh network (seeded), then `outer` times: (BN nets: freeze BN
    statistics on 16 real images/class) one SGD step on the images for Σ_c D(g_syn_c, g_real_c), and — except after
    the last — `inner` epochs of training the network on the detached set (DSA: with DSA, independent draws).
    `dsa=True` is DSA: Siamese augmentation inside matching. Deterministic from `seed`; resumable.
    `guidance(images, labels)` (clom.Guidance) is added to the loss of every outer step, on the whole
    un-augmented set (docs/ptm.md §3.1)."""
    device = torch.device(device)
    method = "DSA" if dsa else "DC"
    if metric not in METRICS:
        raise ElfkitError(f"unknown gradient distance {metric!r}; choose one of {METRICS}")
    outer, inner = loops_for(ipc, loops, loop_cap)
    strategy = (dsa_strategy if dsa_strategy is not None else augment.strategy_for(data.name)) if dsa else None
    C = data.num_classes
    cfg = dict(method=method, dataset=data.name, ipc=ipc, arch=arch, iterations=iterations, batch_real=batch_real,
               lr_img=lr_img, lr_net=lr_net, momentum=momentum, metric=metric, init=init, outer_loop=outer,
               inner_loop=inner, dsa_strategy=strategy, seed=seed)
    if guidance is not None:
        cfg["clom"] = guidance.config()
    fp = state.fingerprint(cfg)
    g = seeding.generator(seeding.derive(seed, method.lower()))
    x_all = data.x_train.to(device)
    cls = class_indices(data.y_train.cpu(), C)
    if min(len(c) for c in cls) == 0:
        raise ElfkitError(f"{data.name}: some class has no training images; {method} needs real images of every class")
    images = state.init_images(data, ipc, init, g).to(device).requires_grad_(True)
    y_syn = state.hard_labels(C, ipc, device)
    opt = torch.optim.SGD([images], lr=lr_img, momentum=momentum)
    probe = models.create(arch, channel=data.spec.channel, num_classes=C, im_size=data.spec.im_size)
    bn = models.has_batchnorm(probe)

    def step(it: int) -> torch.Tensor:
        """One outer iteration: a fresh network, `outer` image steps with `inner` network epochs between them;
        returns the summed matching loss (summed on the device: one host sync per logged iteration)."""
        with seeding.forked(seeding.derive(seed, f"{method.lower()}-net", it), device):
            net = models.create(arch, channel=data.spec.channel, num_classes=C, im_size=data.spec.im_size)
        net = net.to(device).train()
        cl = device.type == "cpu" and channels_last_on_cpu(net)
        if cl:
            net = net.to(memory_format=torch.channels_last)
        params = list(net.parameters())
        opt_net = torch.optim.SGD(params, lr=lr_net)
        total = torch.zeros((), device=device)
        for ol in range(outer):
            if bn:
                _freeze_bn(net, x_all, cls, g)
            reals = [x_all[c[torch.randperm(len(c), generator=g)[:batch_real]].to(device)] for c in cls]
            syns = list(images.split(ipc))
            loss = gm_loss(net, params, reals, syns, metric, strategy, g, cl)
            if guidance is not None:
                loss = loss + guidance(images, y_syn)
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            total += loss.detach()
            if ol == outer - 1:
                break
            net.train()
            x_det = images.detach().clone()
            for _ in range(inner):
                for _idx, xb, yb in minibatches(x_det, y_syn, g, 256, strategy, cl):
                    opt_net.zero_grad(set_to_none=True)
                    F.cross_entropy(net(xb), yb).backward()
                    opt_net.step()
        return total

    curve = loop.run(method, iterations=iterations, step=step, slots={"images": (images, opt, "momentum")}, g=g,
                     fp=fp, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                     progress=progress, desc=f"{method} ipc{ipc} {arch}", curve_every=curve_every,
                     hint=f"lower lr_img (now {lr_img})", guidance=guidance, scale=outer)
    return loop.finish(cfg, curve, data, images, y_syn)


def profile_kwargs(p, iterations: int = 0, with_init: bool = True) -> dict:
    """The DC settings of a Profile (experiments call every method through the same shape)."""
    kw = dict(iterations=iterations or p.dc_iterations, batch_real=p.dc_batch_real, lr_img=p.dc_lr_img,
              metric=p.dc_metric, loop_cap=tuple(p.dc_loop_cap))
    if with_init:     # DSA always starts from real images: it does not read dc_init
        kw["init"] = p.dc_init
    return kw
