"""The empirical study's evaluation pools (docs/elf.md §8): one-axis sweeps of the evaluation ConvNet, as registry names.

Each axis varies one property of the distillation ConvNet (width 128, depth 3, ReLU, average pooling,
instancenorm) and keeps the others; exactly one member of every axis is the distillation network itself.
"""
from __future__ import annotations

import functools

import torch

from . import models
from .errors import ElfkitError

# axis -> ((label, registry name), ...), in plotting order
SWEEPS: dict[str, tuple[tuple[str, str], ...]] = {
    "width": (("32", "ConvNetW32"), ("64", "ConvNetW64"), ("128", "ConvNetW128"), ("256", "ConvNetW256")),
    "depth": (("1", "ConvNetD1"), ("2", "ConvNetD2"), ("3", "ConvNetD3"), ("4", "ConvNetD4")),
    "activation": (("sigmoid", "ConvNetAS"), ("relu", "ConvNetAR"), ("leakyrelu", "ConvNetAL")),
    "pooling": (("none", "ConvNetNP"), ("max", "ConvNetMP"), ("avg", "ConvNetAP")),
    "normalisation": (("none", "ConvNetNN"), ("BN", "ConvNetBN"), ("LN", "ConvNetLN"), ("IN", "ConvNetIN"),
                      ("GN", "ConvNetGN")),
}


def sweep(axis: str) -> tuple[tuple[str, str], ...]:
    """The (label, registry name) members of one axis."""
    if axis not in SWEEPS:
        raise ElfkitError(f"unknown sweep axis {axis!r}; choose from {list(SWEEPS)}")
    return SWEEPS[axis]


@functools.lru_cache(maxsize=None)    # pure; im_size must be hashable (a tuple)
def _signature(name: str, channel: int, im_size: tuple) -> str:
    with torch.device("meta"):
        return repr(models.create(name, channel, 10, im_size))


def signature(name: str, channel: int = 1, im_size=(28, 28)) -> str:
    """The network's module structure (built on the meta device: no memory, no RNG draw). Two names with the same
    signature are the same network: same layers, same parameter shapes, same initialisation draws."""
    return _signature(name, channel, tuple(im_size))


def canonical(name: str, channel: int = 1, im_size=(28, 28)) -> str:
    """One registry name per network: the shortest (then alphabetically first) of the names that build the same
    network (ConvNetW128, ConvNetD3, ConvNetAP -> ConvNet). Cells are planned under it, so which sweep or ablation
    asks first cannot change a key."""
    sig = signature(name, channel, im_size)
    names = {name, "ConvNet", *(n for members in SWEEPS.values() for _, n in members)}
    return min((n for n in names if signature(n, channel, im_size) == sig), key=lambda n: (len(n), n))


def same_architecture(a: str, b: str, channel: int = 1, im_size=(28, 28)) -> bool:
    """True when registry names `a` and `b` build the same network (e.g. ConvNetW128, ConvNetAP and ConvNet)."""
    return signature(a, channel, im_size) == signature(b, channel, im_size)
