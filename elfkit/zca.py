"""ZCA whitening for MTT (docs/base-methods.md §6.4), equal to kornia's ZCAWhitening(eps=0.1) fitted on the whole
training set: images in [0, 1] (no mean/std normalisation), T = U diag(1/sqrt(S + eps)) Uᵀ from the unbiased
covariance, x ↦ (x − μ) T; the inverse x ↦ x T⁻¹ + μ brings ZCA-space synthetic images back for viewing."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .data import Data


@dataclass(frozen=True)
class Zca:
    mean: torch.Tensor      # [D]
    T: torch.Tensor         # [D, D] whitening
    T_inv: torch.Tensor     # [D, D] its inverse
    eps: float

    def whiten(self, x01: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] images in [0, 1] → ZCA space."""
        flat = x01.reshape(len(x01), -1).to(self.T)
        return ((flat - self.mean) @ self.T).reshape(x01.shape)

    def unwhiten(self, z: torch.Tensor) -> torch.Tensor:
        """ZCA space → [0, 1] pixel space (clamp for display)."""
        flat = z.reshape(len(z), -1).to(self.T)
        return (flat @ self.T_inv + self.mean).reshape(z.shape)


def fit(x01: torch.Tensor, eps: float = 0.1) -> Zca:
    """Fit on the training images in [0, 1] (float64 for the eigendecomposition, stored as float32)."""
    flat = x01.reshape(len(x01), -1).double()
    mean = flat.mean(0)
    xc = flat - mean
    cov = xc.T @ xc / (len(flat) - 1)
    U, S, _ = torch.linalg.svd(cov)
    T = (U * (1.0 / torch.sqrt(S + eps))) @ U.T
    T_inv = (U * torch.sqrt(S + eps)) @ U.T
    return Zca(mean.float(), T.float(), T_inv.float(), eps)


def to_unit(d: Data, x: torch.Tensor) -> torch.Tensor:
    """Normalised images of `d` back to [0, 1]."""
    m = torch.tensor(d.spec.mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(d.spec.std, device=x.device).view(1, -1, 1, 1)
    return x * s + m


def whitened(d: Data, eps: float = 0.1) -> tuple[Data, Zca]:
    """`d` in ZCA space (train and test, fitted on train), named '<name>+zca' so caches and records keep them apart.
    Experts, distillation and evaluation must all use the same whitened data; `zca.unwhiten` views the result."""
    z = fit(to_unit(d, d.x_train).cpu(), eps)
    dev = d.x_train.device
    zz = Zca(z.mean.to(dev), z.T.to(dev), z.T_inv.to(dev), eps)
    return replace(d, name=f"{d.name}+zca", x_train=zz.whiten(to_unit(d, d.x_train)),
                   x_test=zz.whiten(to_unit(d, d.x_test)), source={**d.source, "zca": {"eps": eps}}), zz


def load(name: str, device="cpu") -> Data:
    """A dataset by name; '<name>+zca' gives its whitened version (what MTT with ZCA trained and distilled on)."""
    from . import data as datasets

    if name.endswith("+zca"):
        return whitened(datasets.load(name[: -len("+zca")], device=device))[0]
    return datasets.load(name, device=device)
