"""Augmentation of image tensors: DSA (``DiffAugment``, mode 'S') and the older DC-aug.

Randomness comes only from an explicit CPU ``torch.Generator``. Every parameter tensor is drawn on the CPU and then
moved to ``x.device``; nothing is read back from the device, and the global RNG is never touched, so one seed gives
the same augmentation on CPU and GPU (docs/base-methods.md §5, §8; decisions B1-B2 in docs/decisions.md).

* :func:`sample` draws ``n`` parameter sets ("groups") and :func:`apply` maps sample ``i`` to group ``index[i]``.
* :func:`dsa`: non-Siamese call (one family for the batch, independent parameters per sample).
* :func:`siamese`: one family and one parameter set shared by every sample of every tensor (DC/DSA matching).
* :func:`siamese_by_class`: one Siamese draw per class, shared by real and synthetic samples of that class (DM).
* :func:`dc_augment`: DC-aug used by DC's evaluation (per-sample op among crop/scale/rotate/noise).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ParamDiffAug", "DEFAULT_PARAMS", "FAMILIES", "Draw", "strategy_for", "sample", "apply", "dsa",
           "siamese", "siamese_by_class", "dc_augment"]

FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")
_NONE = "none"
_CODE = {f: i for i, f in enumerate(FAMILIES + (_NONE,))}
# Draw fields each family reads (only those are moved to the device).
_FIELDS = {"color": ("brightness", "saturation", "contrast"), "crop": ("translate",), "cutout": ("cutout",),
           "flip": ("flip",), "scale": ("scale",), "rotate": ("angle",)}


@dataclass(frozen=True)
class ParamDiffAug:
    """``ParamDiffAug`` of the reference code (aug_mode is always 'S'; mode 'M' is unused and not implemented)."""
    prob_flip: float = 0.5
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0      # degrees
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5


DEFAULT_PARAMS = ParamDiffAug()


@dataclass
class Draw:
    """``n`` DSA parameter sets ("groups"), all on the CPU; group ``j`` applies family ``families[j]``.

    Every field is stored as the value the operation uses (not the raw uniform):
    brightness [n] additive offset (u-0.5)*brightness; saturation [n] factor u*saturation; contrast [n] factor
    u+contrast; translate [n,2] long (rows, cols) shift; cutout [n,2] long square centre (row, col); flip [n] bool;
    scale [n,2] (s_x, s_y) on (width, height); angle [n] radians. ``cutout_size`` = (k_h, k_w).
    Parameters of all families are drawn for every group, so the generator stream does not depend on the family.
    """
    families: tuple[str, ...]
    brightness: Tensor
    saturation: Tensor
    contrast: Tensor
    translate: Tensor
    cutout: Tensor
    flip: Tensor
    scale: Tensor
    angle: Tensor
    cutout_size: tuple[int, int]

    @property
    def n(self) -> int:
        return len(self.families)

    @classmethod
    def neutral(cls, n: int, im_size: tuple[int, int], family: str = _NONE,
                params: ParamDiffAug = DEFAULT_PARAMS) -> "Draw":
        """Identity parameters for every family except cutout (centre 0); set fields with ``dataclasses.replace``."""
        z = torch.zeros(n)
        return cls((family,) * n, z.clone(), z + 1, z + 1, torch.zeros(n, 2, dtype=torch.long),
                   torch.zeros(n, 2, dtype=torch.long), torch.zeros(n, dtype=torch.bool), torch.ones(n, 2),
                   z.clone(), _cutout_size(im_size, params))


def _cutout_size(im_size, params) -> tuple[int, int]:
    return int(im_size[0] * params.ratio_cutout + 0.5), int(im_size[1] * params.ratio_cutout + 0.5)


def _parse(strategy: str | None, allowed: Sequence[str]) -> list[str]:
    if strategy is None or strategy.lower() in ("", "none"):
        return []
    names = strategy.split("_")
    bad = [s for s in names if s not in allowed]
    if bad:
        raise ValueError(f"unknown augmentation(s) {bad} in {strategy!r}; allowed: {tuple(allowed)}")
    return names


def _check_generator(g: torch.Generator) -> None:
    if not isinstance(g, torch.Generator) or g.device.type != "cpu":
        raise ValueError("augmentation needs an explicit CPU torch.Generator (parameters are drawn on the CPU)")


def strategy_for(dataset: str) -> str:
    """DSA strategy string: no flip for digits (MNIST, SVHN), all six families otherwise."""
    if dataset.lower().removesuffix("+zca") in ("mnist", "svhn"):
        return "color_crop_cutout_scale_rotate"
    return "color_crop_cutout_flip_scale_rotate"


def sample(strategy: str, n: int, *, g: torch.Generator, im_size: tuple[int, int], shared_family: bool,
           params: ParamDiffAug = DEFAULT_PARAMS) -> Draw:
    """Draw ``n`` parameter sets. Mode 'S': the family is uniform over the ``_``-separated entries of ``strategy``,
    one for all groups (``shared_family=True``) or one per group. ``"none"``/``""`` gives an identity draw and
    consumes nothing from ``g``."""
    fams = _parse(strategy, FAMILIES)
    if not fams:
        return Draw.neutral(n, im_size, params=params)
    _check_generator(g)
    H, W = int(im_size[0]), int(im_size[1])
    pick = torch.randint(len(fams), (1 if shared_family else n,), generator=g).tolist()
    families = (fams[pick[0]],) * n if shared_family else tuple(fams[i] for i in pick)

    def u(*shape):
        return torch.rand(n, *shape, generator=g)

    brightness = (u() - 0.5) * params.brightness
    saturation = u() * params.saturation
    contrast = u() + params.contrast
    s_h, s_w = int(H * params.ratio_crop_pad + 0.5), int(W * params.ratio_crop_pad + 0.5)
    translate = torch.stack([torch.randint(-s_h, s_h + 1, (n,), generator=g),
                             torch.randint(-s_w, s_w + 1, (n,), generator=g)], 1)
    k_h, k_w = _cutout_size((H, W), params)
    # Centre uniform over [0, H - (k mod 2)] (reference: randint(0, H + (1 - k % 2))).
    cutout = torch.stack([torch.randint(0, H + 1 - k_h % 2, (n,), generator=g),
                          torch.randint(0, W + 1 - k_w % 2, (n,), generator=g)], 1)
    flip = u() < params.prob_flip
    lo, hi = 1.0 / params.ratio_scale, params.ratio_scale
    scale = u(2) * (hi - lo) + lo
    angle = (u() - 0.5) * 2.0 * params.ratio_rotate / 180.0 * math.pi
    return Draw(families, brightness, saturation, contrast, translate, cutout, flip, scale, angle, (k_h, k_w))


# ----------------------------------------------------------------------------------------------------------------
# Family operations. ``p`` holds per-sample parameters on x.device with leading dim len(x) or 1 (broadcast).

def _remap(x: Tensor, rows: Tensor, cols: Tensor, fill) -> Tensor:
    """out[b,c,i,j] = x[b,c,rows[b,i],cols[b,j]] where both indices are in range, else ``fill``."""
    B, C, H, W = x.shape
    valid = ((rows >= 0) & (rows < H))[:, None, :, None] & ((cols >= 0) & (cols < W))[:, None, None, :]
    r = rows.clamp(0, H - 1)[:, None, :, None].expand(B, C, H, W)
    c = cols.clamp(0, W - 1)[:, None, None, :].expand(B, C, H, W)
    out = x.gather(2, r).gather(3, c)
    return torch.where(valid, out, torch.as_tensor(fill, dtype=x.dtype, device=x.device))


def _affine(x: Tensor, theta: Tensor) -> Tensor:
    theta = theta.expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _rotation_theta(a: Tensor) -> Tensor:
    cos, sin, z = a.cos(), a.sin(), torch.zeros_like(a)
    return torch.stack([torch.stack([cos, -sin, z], -1), torch.stack([sin, cos, z], -1)], 1)


def _color(x, p, draw):
    x = x + p["brightness"].view(-1, 1, 1, 1)
    m = x.mean(dim=1, keepdim=True)                          # per-pixel channel mean
    x = (x - m) * p["saturation"].view(-1, 1, 1, 1) + m
    m = x.mean(dim=(1, 2, 3), keepdim=True)                  # per-image mean
    return (x - m) * p["contrast"].view(-1, 1, 1, 1) + m


def _crop(x, p, draw):
    t = p["translate"]
    rows = torch.arange(x.shape[2], device=x.device)[None] + t[:, :1]
    cols = torch.arange(x.shape[3], device=x.device)[None] + t[:, 1:]
    return _remap(x, rows, cols, 0.0)                        # = 1-px zero pad + clamped indices of the reference


def _cutout(x, p, draw):
    (k_h, k_w), ctr = draw.cutout_size, p["cutout"]
    lo_h, lo_w = ctr[:, :1] - k_h // 2, ctr[:, 1:] - k_w // 2
    ar_h = torch.arange(x.shape[2], device=x.device)[None]
    ar_w = torch.arange(x.shape[3], device=x.device)[None]
    in_h, in_w = (ar_h >= lo_h) & (ar_h < lo_h + k_h), (ar_w >= lo_w) & (ar_w < lo_w + k_w)
    return x.masked_fill((in_h[:, :, None] & in_w[:, None, :])[:, None], 0.0)


def _flip(x, p, draw):
    return torch.where(p["flip"].view(-1, 1, 1, 1), x.flip(3), x)


def _scale(x, p, draw):
    s = p["scale"]
    z = torch.zeros_like(s[:, 0])
    theta = torch.stack([torch.stack([s[:, 0], z, z], -1), torch.stack([z, s[:, 1], z], -1)], 1)
    return _affine(x, theta)


def _rotate(x, p, draw):
    return _affine(x, _rotation_theta(p["angle"]))


_OPS = {"color": _color, "crop": _crop, "cutout": _cutout, "flip": _flip, "scale": _scale, "rotate": _rotate}


def _params(draw: Draw, family: str, idx: Tensor | None, x: Tensor) -> dict[str, Tensor]:
    """Per-sample parameters of ``family`` on x.device (gathered on the CPU when ``idx`` is on the CPU)."""
    out = {}
    for name in _FIELDS[family]:
        t = getattr(draw, name)
        if idx is not None and idx.device.type == "cpu":
            t = t[idx]
        t = t.to(x.device, dtype=x.dtype if t.is_floating_point() else None, non_blocking=True)
        out[name] = t if idx is None or idx.device.type == "cpu" else t[idx]
    return out


def _run(family: str, x: Tensor, draw: Draw, idx: Tensor | None) -> Tensor:
    if family == _NONE or x.shape[0] == 0:
        return x
    return _OPS[family](x, _params(draw, family, idx, x), draw)


def _apply_partitioned(x: Tensor, draw: Draw, idx: Tensor) -> Tensor:
    """Mixed families, CPU index: sort samples by family, one batched pass per family, then un-permute."""
    code = torch.tensor([_CODE[f] for f in draw.families])[idx]
    perm = torch.argsort(code, stable=True)
    counts = torch.bincount(code, minlength=len(_CODE)).tolist()
    xs = x[perm.to(x.device, non_blocking=True)].split([c for c in counts if c], 0)
    idx_sorted, parts, start, fam_names = idx[perm], [], 0, FAMILIES + (_NONE,)
    for fam, cnt in zip(fam_names, counts):
        if cnt:
            parts.append(_run(fam, xs[len(parts)], draw, idx_sorted[start:start + cnt]))
            start += cnt
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(len(perm))
    return torch.cat(parts)[inv.to(x.device, non_blocking=True)]


def _apply_masked(x: Tensor, draw: Draw, idx: Tensor) -> Tensor:
    """Mixed families, device index: each present family on the whole batch, selected per sample by torch.where
    (no device-to-host read; up to 6 full-batch passes)."""
    codes = torch.tensor([_CODE[f] for f in draw.families]).to(x.device, non_blocking=True)[idx]
    out = x
    for fam in FAMILIES:
        if fam in draw.families:
            sel = (codes == _CODE[fam]).view(-1, 1, 1, 1)
            out = torch.where(sel, _run(fam, x, draw, idx), out)
    return out


def apply(x: Tensor, draw: Draw, index: Tensor | None = None) -> Tensor:
    """Augment ``x`` [B,C,H,W]: sample ``i`` uses group ``index[i]``. ``index=None`` means ``arange(B)`` and needs
    ``B == draw.n``, or ``draw.n == 1`` (one set broadcast to the batch). Differentiable w.r.t. ``x``.
    Mixed-family draws take one pass per family: partitioned when ``index`` is on the CPU (or None), masked with
    ``torch.where`` when it is on the device (so no host sync)."""
    if index is None and x.shape[0] != draw.n and draw.n != 1:
        raise ValueError(f"len(x)={x.shape[0]} != draw.n={draw.n}; pass index")
    if index is not None:
        index = index.long()
        if index.shape != (x.shape[0],):
            raise ValueError("index must have shape [len(x)]")
    kinds = set(draw.families)
    if kinds <= {_NONE} or x.shape[0] == 0:
        return x
    if len(kinds) == 1:
        return _run(draw.families[0], x, draw, index)
    if index is None:
        return _apply_partitioned(x, draw, torch.arange(x.shape[0]))
    if index.device.type == "cpu":
        return _apply_partitioned(x, draw, index)
    return _apply_masked(x, draw, index)


def dsa(x: Tensor, strategy: str, g: torch.Generator, params: ParamDiffAug = DEFAULT_PARAMS) -> Tensor:
    """Non-Siamese DSA (evaluation, inner loops, MTT): one family for the batch, independent per-sample params."""
    draw = sample(strategy, x.shape[0], g=g, im_size=tuple(x.shape[-2:]), shared_family=True, params=params)
    return apply(x, draw)


def siamese(xs: Sequence[Tensor], strategy: str, g: torch.Generator,
            params: ParamDiffAug = DEFAULT_PARAMS) -> list[Tensor]:
    """Siamese DSA: ONE draw (family and parameter set) applied to every sample of every tensor in ``xs``."""
    xs = list(xs)
    if not xs:
        return []
    draw = sample(strategy, 1, g=g, im_size=tuple(xs[0].shape[-2:]), shared_family=True, params=params)
    return [apply(x, draw) for x in xs]


def siamese_by_class(x_real: Tensor, y_real: Tensor, x_syn: Tensor, y_syn: Tensor, num_classes: int,
                     strategy: str, g: torch.Generator, params: ParamDiffAug = DEFAULT_PARAMS
                     ) -> tuple[Tensor, Tensor]:
    """DM: one independent Siamese draw (own family and parameters) per class, shared by every real and synthetic
    sample of that class. Labels on the CPU take the partitioned path; labels on the device the masked one."""
    draw = sample(strategy, num_classes, g=g, im_size=tuple(x_real.shape[-2:]), shared_family=False,
                  params=params)
    n_real = x_real.shape[0]
    dev = y_real.device if y_real.device.type != "cpu" else y_syn.device     # only ever CPU -> device
    out = apply(torch.cat([x_real, x_syn]), draw, torch.cat([y_real.to(dev), y_syn.to(dev)]))
    return out[:n_real], out[n_real:]


# ----------------------------------------------------------------------------------------------------------------
# DC-aug (spec §8): the reference loops over samples with numpy RNG and scipy; this is a vectorised equivalent.

DC_OPS = ("crop", "scale", "rotate", "noise")


@torch.no_grad()
def dc_augment(x: Tensor, strategy: str, g: torch.Generator, *, crop: int = 4, scale: float = 0.2,
               rotate: int = 45, noise: float = 0.001) -> Tensor:
    """DC-aug: each sample gets one op drawn uniformly from the ``_``-separated strategy (e.g. 'crop_scale_rotate',
    'crop_noise'). No gradient. Deviations from the reference (documented):

    * crop: pad ``crop`` px per side with the batch's per-channel mean, H×W window at offsets {0..2·crop-1} (exact).
    * scale: h, w = int(U(1-scale, 1+scale)·H) (both from H, as in the reference), nearest resize placed centred on a
      zero canvas of side max(h, w, H, W), centre crop. Implemented as an integer index map (gather) reproducing
      ``F.interpolate(mode='nearest')``'s ``floor(dst·in/out)`` rule, i.e. a nearest affine-grid equivalent.
    * rotate: integer angle in [-rotate, rotate-1] degrees; the reference uses scipy's order-3 spline on an enlarged
      canvas then a centre crop; here a bilinear affine grid about the image centre (same pixels kept, no spline
      ringing, no half-pixel offset for odd canvas growth). Fill = mean of the batch's channel means.
    * noise: + noise·N(0,1), the normal draws made on the CPU with ``g`` (image-sized) and moved to the device.
    """
    ops = _parse(strategy, DC_OPS)
    if not ops or x.shape[0] == 0:
        return x
    _check_generator(g)
    B, C, H, W = x.shape
    dev = x.device
    op_of_sample = torch.tensor([DC_OPS.index(o) for o in ops])[torch.randint(len(ops), (B,), generator=g)]
    offsets = torch.randint(0, 2 * crop, (B, 2), generator=g)
    hw = ((torch.rand(B, 2, generator=g) * (2 * scale) + (1 - scale)) * H).long()    # int() truncation, > 0
    angles = torch.randint(-rotate, rotate, (B,), generator=g).to(torch.float32) * (math.pi / 180.0)
    eps = torch.randn(B, C, H, W, generator=g) if "noise" in ops else None
    ch_mean = x.mean(dim=(0, 2, 3))                                                   # stays on the device
    out = x.clone()
    for k, op in enumerate(DC_OPS):
        sel = (op_of_sample == k).nonzero().flatten()                                  # CPU
        if sel.numel() == 0:
            continue
        sel_d = sel.to(dev, non_blocking=True)
        xs = x[sel_d]
        if op == "crop":
            o = offsets[sel].to(dev, non_blocking=True) - crop
            rows = torch.arange(H, device=dev)[None] + o[:, :1]
            cols = torch.arange(W, device=dev)[None] + o[:, 1:]
            y = _remap(xs, rows, cols, ch_mean.to(x.dtype).view(1, C, 1, 1))
        elif op == "scale":
            h, w = hw[sel, 0], hw[sel, 1]
            side = torch.maximum(torch.maximum(h, w), torch.full_like(h, max(H, W)))
            rows = _nearest_rows(H, h, (side - H) // 2 - (side - h) // 2)
            cols = _nearest_rows(W, w, (side - W) // 2 - (side - w) // 2)
            y = _remap(xs, rows.to(dev, non_blocking=True), cols.to(dev, non_blocking=True), 0.0)
        elif op == "rotate":
            fill = ch_mean.mean().to(x.dtype)
            theta = _rotation_theta(angles[sel]).to(dev, x.dtype, non_blocking=True)
            y = _affine(xs - fill, theta) + fill
        else:
            y = xs + noise * eps[sel].to(dev, x.dtype, non_blocking=True)
        out[sel_d] = y
    return out


def _nearest_rows(n: int, size: Tensor, shift: Tensor) -> Tensor:
    """Source index of output position i along an axis of length n: q = i + shift indexes a ``size``-long
    nearest-resized copy (PyTorch rule min(floor(q·n/size), n-1) in float32); -1 where q falls on the zero canvas."""
    q = torch.arange(n)[None] + shift[:, None]
    ratio = (torch.tensor(float(n)) / size.to(torch.float32))[:, None]
    s = torch.floor(q.to(torch.float32) * ratio).long().clamp(max=n - 1)
    return torch.where((q >= 0) & (q < size[:, None]), s, torch.full_like(s, -1))
