"""The evaluation and distillation networks of docs/base-methods.md §7, built as staged modules.

Every network is ``stages`` (an ``nn.Sequential``) followed by ``classifier`` (the final ``nn.Linear``):
``embed(x) = flatten(stages(x))`` and ``forward(x) = classifier(embed(x))``. ``elf_split`` is the number of leading
stages that form the ELF front (docs/elf.md §5), or None when the network has no convolutional split point;
``elfkit.models.split`` cuts there. Flatten sizes are computed by formula from ``im_size`` (no dummy forward), so
every network takes its real input size, also at 64² (the reference code assumes 32² for most of them).
Flattening uses ``torch.flatten``/``nn.Flatten``, never ``.view``, so channels_last inputs work.
"""
from __future__ import annotations

import torch
from torch import nn

NORMS = ("instancenorm", "batchnorm", "layernorm", "groupnorm", "none")
ACTS = ("relu", "sigmoid", "leakyrelu", "swish")
POOLS = ("avgpool", "maxpool", "none")
VGG11_CFG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def _norm(kind: str, c: int, shape: tuple[int, int, int] | None = None) -> nn.Module | None:
    """Norm layer for ``c`` channels; "instancenorm" is GroupNorm(C, C) (per-channel affine, no running stats)."""
    if kind == "instancenorm":
        return nn.GroupNorm(c, c, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(c)
    if kind == "groupnorm":
        return nn.GroupNorm(4, c, affine=True)
    if kind == "layernorm" and shape is not None:
        return nn.LayerNorm(list(shape), elementwise_affine=True)
    if kind == "none":
        return None
    raise ValueError(f"unknown or unsupported norm {kind!r} here; choose from {NORMS}")


def _act(kind: str) -> nn.Module:
    acts = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "swish": nn.SiLU,  # SiLU = Swish x·σ(x)
            "leakyrelu": lambda: nn.LeakyReLU(negative_slope=0.01)}
    if kind not in acts:
        raise ValueError(f"unknown activation {kind!r}; choose from {ACTS}")
    return acts[kind]()


def _conv_unit(cin: int, cout: int, k: int, pad: int, norm: str) -> list[nn.Module]:
    """conv (bias) → norm (if any) → ReLU, as a flat list (AlexNet, VGG)."""
    n = _norm(norm, cout)
    return [nn.Conv2d(cin, cout, k, padding=pad), *([n] if n is not None else []), nn.ReLU()]


class StagedNet(nn.Module):
    """Base class: ``stages`` → flatten → ``classifier``; ``elf_split`` front stages (None = not splittable)."""

    stages: nn.Sequential
    classifier: nn.Linear
    elf_split: int | None = None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened features just before the final classifier."""
        return torch.flatten(self.stages(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class ConvNet(StagedNet):
    """Block = conv3×3 (padding 3 on the first conv of a 1-channel input) → norm → act → pool 2; then Linear.

    A 1×28×28 input becomes 32×32 after the first conv, so it is sized like 32². LayerNorm normalises [C, H, W]
    at its depth (before pooling). ELF split: after all blocks (front output = last block output).
    """

    def __init__(self, channel: int, num_classes: int, im_size: tuple[int, int], width: int = 128, depth: int = 3,
                 act: str = "relu", norm: str = "instancenorm", pooling: str = "avgpool"):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"ConvNet needs depth >= 1 and width >= 1, got depth={depth}, width={width}")
        if pooling not in POOLS:
            raise ValueError(f"unknown pooling {pooling!r}; choose from {POOLS}")
        (h, w), c, layers = im_size, channel, []
        for d in range(depth):
            pad = 3 if channel == 1 and d == 0 else 1
            h, w = h + 2 * pad - 2, w + 2 * pad - 2
            layers.append(nn.Conv2d(c, width, 3, padding=pad))
            n = _norm(norm, width, (width, h, w))
            layers += [n] if n is not None else []
            layers.append(_act(act))
            if pooling != "none":
                layers.append(nn.AvgPool2d(2, 2) if pooling == "avgpool" else nn.MaxPool2d(2, 2))
                h, w = h // 2, w // 2
            if h < 1 or w < 1:
                need = 2 ** depth - 2 * (3 if channel == 1 else 1) + 2
                raise ValueError(f"ConvNet of depth {depth} pools a {im_size[0]}×{im_size[1]} input below 1×1; "
                                 f"it needs H, W >= {need}")
            c = width
        self.stages = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * h * w, num_classes)
        self.elf_split = len(self.stages)


class AlexNet(StagedNet):
    """AlexNet of the DC code (no norm; AlexNetBN: BatchNorm2d after every conv).

    ELF split (not in the release; our choice): after the final MaxPool, i.e. the whole feature extractor, as for
    ConvNet. This is the "last layer with 4×4 resolution" rule of docs/elf.md §5: front output 192×4×4 at 1×28² / 3×32²,
    matched by ConvNetW192 (depth 3, like the W512 feature model of ResNet/VGG); rear = flatten + Linear.
    """

    def __init__(self, channel: int, num_classes: int, im_size: tuple[int, int], norm: str = "none"):
        super().__init__()
        p0 = 4 if channel == 1 else 2
        self.stages = nn.Sequential(
            *_conv_unit(channel, 128, 5, p0, norm), nn.MaxPool2d(2, 2),
            *_conv_unit(128, 192, 5, 2, norm), nn.MaxPool2d(2, 2),
            *_conv_unit(192, 256, 3, 1, norm),
            *_conv_unit(256, 192, 3, 1, norm),
            *_conv_unit(192, 192, 3, 1, norm), nn.MaxPool2d(2, 2))
        h, w = ((s + 2 * p0 - 4) // 8 for s in im_size)
        self.classifier = nn.Linear(192 * h * w, num_classes)
        self.elf_split = len(self.stages)


class VGG(StagedNet):
    """VGG (cfg of ints = conv3×3–norm–ReLU, "M" = MaxPool 2), a no-op AvgPool(1), then Linear.

    Padding 3 on the first conv of a 1-channel input. ELF split: after the ReLU of the ``split_conv``-th conv
    (VGG11: c64, M, c128, M, c256, c256, M, c512 → 512×4×4 at 32²).
    """

    def __init__(self, channel: int, num_classes: int, im_size: tuple[int, int], cfg=VGG11_CFG,
                 norm: str = "instancenorm", split_conv: int = 5):
        super().__init__()
        (h, w), c, layers, n_conv, split = im_size, channel, [], 0, None
        for i, v in enumerate(cfg):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                h, w = h // 2, w // 2
                continue
            pad = 3 if channel == 1 and i == 0 else 1
            layers += _conv_unit(c, v, 3, pad, norm)
            h, w, c, n_conv = h + 2 * pad - 2, w + 2 * pad - 2, v, n_conv + 1
            split = len(layers) if n_conv == split_conv else split
        layers.append(nn.AvgPool2d(1, 1))  # no-op, kept from the reference definition
        self.stages = nn.Sequential(*layers)
        self.classifier = nn.Linear(c * h * w, num_classes)
        self.elf_split = split


class BasicBlock(nn.Module):
    """ResNet BasicBlock. ``ap``: stride-2 convs become stride 1 followed by AvgPool 2 (ResNet18_AP)."""

    def __init__(self, cin: int, planes: int, stride: int = 1, norm: str = "instancenorm", ap: bool = False):
        super().__init__()
        s = 1 if ap else stride
        self.conv1 = nn.Conv2d(cin, planes, 3, s, 1, bias=False)
        self.bn1 = _norm(norm, planes) or nn.Identity()
        self.pool = nn.AvgPool2d(2, 2) if ap and stride != 1 else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _norm(norm, planes) or nn.Identity()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            pool = [nn.AvgPool2d(2, 2)] if ap else []
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, s, bias=False), *pool,
                                          _norm(norm, planes) or nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(torch.relu(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(StagedNet):
    """ResNet with BasicBlocks; ``stages`` = [stem, block 1, ..., block 8, final pooling].

    CIFAR style (default): conv3×3 s1 stem, no max-pool; global average pooling (equal to the reference
    avg_pool 4 on the 4×4 map of 1×28² / 3×32² inputs, and also valid at 64²) → Linear(512).
    ``ap`` (ResNet18_AP): stride-2 convs become s1 + AvgPool 2; no final pooling, Linear(512·h·w).
    ``imagenet`` (ResNet18ImageNet): 7×7 s2 stem + MaxPool 3 s2.
    ELF split: stem + stages 1–3 + the first block of stage 4 (512×4×4 at 32²); for ``imagenet``: stem + stages
    1–3 (256×4×4 at 64²). For ResNet18_AP the split is the same point (512×4×4 at 3×32², 512×3×3 at 1×28², which
    no ConvNet feature model matches).
    """

    def __init__(self, channel: int, num_classes: int, im_size: tuple[int, int], norm: str = "instancenorm",
                 ap: bool = False, imagenet: bool = False, num_blocks=(2, 2, 2, 2)):
        super().__init__()
        if ap and imagenet:
            raise ValueError("ResNet: ap and imagenet cannot be combined")
        n = _norm(norm, 64) or nn.Identity()
        if imagenet:
            stem = nn.Sequential(nn.Conv2d(channel, 64, 7, 2, 3, bias=False), n, nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        else:
            stem = nn.Sequential(nn.Conv2d(channel, 64, 3, 1, 1, bias=False), n, nn.ReLU())
        blocks, cin, (h, w) = [], 64, im_size
        for i, (planes, nb) in enumerate(zip((64, 128, 256, 512), num_blocks)):
            for j in range(nb):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(BasicBlock(cin, planes, stride, norm, ap))
                h, w = (h // 2, w // 2) if stride == 2 else (h, w)
                cin = planes
        if ap:
            self.stages = nn.Sequential(stem, *blocks)
            self.classifier = nn.Linear(512 * h * w, num_classes)
        else:
            self.stages = nn.Sequential(stem, *blocks, nn.AdaptiveAvgPool2d(1))
            self.classifier = nn.Linear(512, num_classes)
        self.elf_split = 1 + sum(num_blocks[:3]) + (0 if imagenet else 1)


class LeNet(StagedNet):
    """LeNet-5 of the DC code (padding 2 on the first conv for 1-channel input). Not splittable."""

    def __init__(self, channel: int, num_classes: int, im_size: tuple[int, int]):
        super().__init__()
        p0 = 2 if channel == 1 else 0
        h, w = (((s + 2 * p0 - 4) // 2 - 4) // 2 for s in im_size)
        self.stages = nn.Sequential(
            nn.Conv2d(channel, 6, 5, padding=p0), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(1),
            nn.Linear(16 * h * w, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU())
        self.classifier = nn.Linear(84, num_classes)


class MLP(StagedNet):
    """Flatten → Linear 128 → ReLU → Linear 128 → ReLU → Linear. Not splittable."""

    def __init__(self, channel: int, num_classes: int, im_size: tuple[int, int], width: int = 128):
        super().__init__()
        self.stages = nn.Sequential(nn.Flatten(1), nn.Linear(channel * im_size[0] * im_size[1], width), nn.ReLU(),
                                    nn.Linear(width, width), nn.ReLU())
        self.classifier = nn.Linear(width, num_classes)
