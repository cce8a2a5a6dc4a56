"""Model registry (timm style) and the ELF split points.

``create(name, channel, num_classes, im_size)`` builds a registered network (names as the DD papers spell them,
case-insensitive); ``list_models(pattern)`` lists the registered names; ``split(model)`` returns the ELF
``(front, rear)`` pair (docs/elf.md §5); ``feature_shape`` and ``matching_feature_model`` give the front's output shape
and the ConvNet feature model that produces it. The network classes live in ``elfkit.networks``.

ConvNet variants are parsed by one builder: ``ConvNet`` followed by any of D<depth>, W<width>, AS/AR/AL/ASwish
(sigmoid/ReLU/LeakyReLU/Swish), NN/BN/LN/IN/GN (norm), NP/MP/AP (pooling) and KIP (width 1024, no norm), each axis
at most once, e.g. ``ConvNetD2W64BN``. ``list_models()`` shows the enumerated names of docs/base-methods.md §7.1.
"""
from __future__ import annotations

import functools

import difflib
import fnmatch
import re
from typing import Callable

import torch
from torch import nn

from elfkit.errors import ElfkitError
from elfkit.networks import VGG11_CFG, AlexNet, ConvNet, LeNet, MLP, ResNet, VGG

__all__ = ["ModelError", "register", "create", "list_models", "split", "feature_shape", "matching_feature_model",
           "splittable_models", "has_batchnorm"]


class ModelError(ElfkitError, ValueError):
    """Unknown or invalid model name, or no ELF split point / feature model."""


_REGISTRY: dict[str, tuple[str, Callable[..., nn.Module]]] = {}  # lower-case name -> (name, builder)
_PATTERNS: list[tuple[re.Pattern, Callable[..., nn.Module]]] = []  # families parsed from the name


def register(*names, pattern: str | None = None):
    """Register a builder ``fn(name, channel, num_classes, im_size, **kw) -> nn.Module``.

    ``@register`` uses the function's name; ``@register("A", "B", pattern=regex)`` registers the listed names, and
    any name that fully matches ``pattern`` (case-insensitive) is also sent to the builder. Names are
    case-insensitive; registering a name twice raises ValueError.
    """
    if len(names) == 1 and callable(names[0]):
        return register(names[0].__name__)(names[0])
    if not all(isinstance(n, str) for n in names):
        raise TypeError("register takes model names (strings)")

    def deco(fn):
        keys = names or (fn.__name__,)
        for n in keys:
            if n.lower() in _REGISTRY or keys.count(n) > 1:
                raise ModelError(f"model name {n!r} is already registered")
        for n in keys:
            _REGISTRY[n.lower()] = (n, fn)
        if pattern is not None:
            _PATTERNS.append((re.compile(pattern, re.IGNORECASE), fn))
        return fn
    return deco


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by an fnmatch ``pattern`` (case-insensitive)."""
    names = [n for n, _ in _REGISTRY.values()]
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n.lower(), pattern.lower())]
    return sorted(names)


def _lookup(name: str) -> tuple[str, Callable[..., nn.Module]]:
    if name.lower() in _REGISTRY:
        return _REGISTRY[name.lower()]
    for pat, fn in _PATTERNS:
        if pat.fullmatch(name):
            return name, fn
    lower = {n.lower(): n for n in list_models()}
    close = [lower[m] for m in difflib.get_close_matches(name.lower(), list(lower), n=5, cutoff=0.6)]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ModelError(f"Unknown model {name!r}.{hint} elfkit.models.list_models() shows all registered names.")


def _pair(im_size) -> tuple[int, int]:
    if isinstance(im_size, int):
        return im_size, im_size
    h, w = im_size
    return int(h), int(w)


def create(name: str, channel: int, num_classes: int, im_size, **kw) -> nn.Module:
    """Build the network ``name`` for ``channel``-channel inputs of size ``im_size = (H, W)``.

    Default PyTorch initialisation (draws from the global torch RNG: seed it, or fork it, before calling).
    ``kw`` go to the network class (e.g. ``width=``, ``norm=``). The model gets ``model.arch`` = canonical name.
    """
    canonical, builder = _lookup(name)
    try:
        model = builder(canonical, channel=channel, num_classes=num_classes, im_size=_pair(im_size), **kw)
    except ModelError:
        raise
    except ValueError as e:  # e.g. a depth that pools the input below 1×1
        raise ModelError(f"{canonical}: {e}") from e
    if getattr(model, "arch", None) is None:
        model.arch = canonical
    return model


# --- ConvNet family: one builder parses the name -------------------------------------------------------------
_TOKEN = r"d\d+|w\d+|aswish|as|ar|al|nn|bn|ln|in|gn|np|mp|ap|kip"
_AXIS = {"as": ("act", "sigmoid"), "ar": ("act", "relu"), "al": ("act", "leakyrelu"), "aswish": ("act", "swish"),
         "nn": ("norm", "none"), "bn": ("norm", "batchnorm"), "ln": ("norm", "layernorm"),
         "in": ("norm", "instancenorm"), "gn": ("norm", "groupnorm"),
         "np": ("pooling", "none"), "mp": ("pooling", "maxpool"), "ap": ("pooling", "avgpool")}
CONVNET_NAMES = ("ConvNet", *(f"ConvNetW{w}" for w in (32, 64, 128, 256, 512, 1024)),
                 *(f"ConvNetD{d}" for d in range(1, 9)), "ConvNetAS", "ConvNetAR", "ConvNetAL", "ConvNetASwish",
                 "ConvNetNN", "ConvNetBN", "ConvNetLN", "ConvNetIN", "ConvNetGN", "ConvNetNP", "ConvNetMP",
                 "ConvNetAP", "ConvNetASwishBN", "ConvNetD4BN", "ConvNetD4W256", "ConvNetD4W512", "ConvNetKIP")


def _parse_convnet(name: str) -> tuple[str, dict]:
    """'ConvNetD2W64BN' -> ('ConvNetD2W64BN', {'depth': 2, 'width': 64, 'norm': 'batchnorm'})."""
    cfg, canonical = {}, "ConvNet"
    for tok in re.findall(_TOKEN, name.lower()[len("convnet"):]):
        if tok == "kip":
            pairs, canonical = [("width", 1024), ("norm", "none")], canonical + "KIP"
        elif tok[0] in "dw" and tok[1:].isdigit():
            pairs = [("depth" if tok[0] == "d" else "width", int(tok[1:]))]
            canonical += tok.upper()
        else:
            pairs, canonical = [_AXIS[tok]], canonical + ("ASwish" if tok == "aswish" else tok.upper())
        for axis, value in pairs:
            if axis in cfg:
                raise ModelError(f"model name {name!r} sets the ConvNet {axis} twice")
            cfg[axis] = value
    return canonical, cfg


@register(*CONVNET_NAMES, pattern=rf"convnet(?:{_TOKEN})*")
def _convnet(name, channel, num_classes, im_size, **kw):
    canonical, cfg = _parse_convnet(name)
    model = ConvNet(channel, num_classes, im_size, **{**cfg, **kw})
    model.arch = canonical
    return model


# --- the other families -------------------------------------------------------------------------------------
def _norm_of(name: str) -> str:
    return "batchnorm" if "BN" in name else "instancenorm"


@register("AlexNet", "AlexNetBN")
def _alexnet(name, channel, num_classes, im_size, **kw):
    return AlexNet(channel, num_classes, im_size, **{"norm": "batchnorm" if "BN" in name else "none", **kw})


@register("VGG11", "VGG11BN")
def _vgg11(name, channel, num_classes, im_size, **kw):
    return VGG(channel, num_classes, im_size, **{"cfg": VGG11_CFG, "norm": _norm_of(name), **kw})


@register("ResNet18", "ResNet18BN", "ResNet18_AP", "ResNet18BN_AP", "ResNet18ImageNet", "ResNet18BNImageNet")
def _resnet18(name, channel, num_classes, im_size, **kw):
    cfg = {"norm": _norm_of(name), "ap": name.endswith("_AP"), "imagenet": name.endswith("ImageNet")}
    return ResNet(channel, num_classes, im_size, **{**cfg, **kw})


@register("LeNet")
def _lenet(name, channel, num_classes, im_size, **kw):
    return LeNet(channel, num_classes, im_size, **kw)


@register("MLP")
def _mlp(name, channel, num_classes, im_size, **kw):
    return MLP(channel, num_classes, im_size, **kw)


# --- ELF split ----------------------------------------------------------------------------------------------
class Rear(nn.Module):
    """The ELF rear: remaining stages → flatten → classifier (modules shared with the full model)."""

    def __init__(self, body: nn.Sequential, classifier: nn.Linear):
        super().__init__()
        self.body, self.classifier = body, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.body(x), 1))


def _meta_model(name: str, channel: int, im_size) -> nn.Module:
    with torch.device("meta"):  # no memory, no compute, no draw from the global RNG
        return create(name, channel, 2, im_size).eval()


def splittable_models() -> list[str]:
    """Registered names whose networks have an ELF split point."""
    names = []
    for n in list_models():
        try:  # 256² so that every registered depth fits
            names += [n] if getattr(_meta_model(n, 3, (256, 256)), "elf_split", None) is not None else []
        except ValueError:
            pass
    return names


def _short(names: list[str]) -> list[str]:
    conv = [n for n in names if n.startswith("ConvNet")]
    return (["every ConvNet variant"] if conv else []) + [n for n in names if n not in conv]


def split(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """ELF cut ``(front, rear)`` sharing the model's parameters: ``rear(front(x)) == model(x)``."""
    k = getattr(model, "elf_split", None)
    if k is None or not isinstance(getattr(model, "stages", None), nn.Sequential):
        arch = getattr(model, "arch", type(model).__name__)
        raise ModelError(f"ELF needs a convolutional split point and {arch} has none. "
                         f"Splittable models: {', '.join(_short(splittable_models()))}.")
    return model.stages[:k], Rear(model.stages[k:], model.classifier)


def feature_shape(name: str, channel: int, im_size) -> tuple[int, int, int]:
    """Shape (C, H, W) of the ELF front's output of model ``name`` on ``channel``×H×W inputs."""
    return _feature_shape(name, channel, _pair(im_size))


@functools.lru_cache(maxsize=None)      # a pure function of its arguments; plans ask it hundreds of times
def _feature_shape(name: str, channel: int, hw: tuple[int, int]) -> tuple[int, int, int]:
    h, w = hw
    front, _ = split(_meta_model(name, channel, (h, w)))
    with torch.no_grad():
        return tuple(front(torch.empty(1, channel, h, w, device="meta")).shape[1:])


def matching_feature_model(name: str, channel: int, im_size) -> str:
    """The ConvNet (width = split channels, depth = number of /2 pools) whose block output has the front's shape.

    E.g. "ConvNet" for ConvNet/ConvNetBN, "ConvNetW512" for ResNet18/VGG11 at 1×28² or 3×32², "ConvNetW192" for
    AlexNet. Raises ValueError when no ConvNet produces that shape (e.g. ResNet18_AP at 1×28²: 512×3×3).
    """
    return _matching_feature_model(name, channel, _pair(im_size))


@functools.lru_cache(maxsize=None)
def _matching_feature_model(name: str, channel: int, im_size: tuple[int, int]) -> str:
    target = feature_shape(name, channel, im_size)
    wtok = "" if target[0] == 128 else f"W{target[0]}"
    for d in range(1, 9):
        candidate = f"ConvNet{'' if d == 3 else f'D{d}'}{wtok}"
        try:
            if feature_shape(candidate, channel, im_size) == target:
                return candidate
        except ValueError:  # pooled below 1×1
            break
    if feature_shape(f"ConvNet{wtok}NP", channel, im_size) == target:
        return f"ConvNet{wtok}NP"
    raise ModelError(f"no ConvNet feature model produces the {name} split feature {target} "
                     f"for {channel}×{_pair(im_size)} inputs")


def has_batchnorm(model: nn.Module) -> bool:
    """True if the model has a BatchNorm layer (then per-sample micro-batching is not exact)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
