"""Explicit randomness: global seeding for a run, generators for sampling, forked RNG for model init."""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def seed_all(seed: int, deterministic: bool = True, threads: int | None = None, precision: str = "fp32") -> None:
    """Seed python, numpy and torch; optionally force deterministic kernels and a fixed thread count. `precision`
    "fp32" turns TF32 off for CUDA matmuls *and* cuDNN convolutions (PyTorch allows it for cuDNN by default, which
    would change the protocol's numbers on Ampere+ GPUs); "tf32" allows both (profiles.precision)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic


def generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh generator; elfkit passes one to every sampling call instead of touching global state."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def derive(*parts: int | str) -> int:
    """A stable 63-bit seed from a tuple (base seed, role, index...), independent of Python's hash salt."""
    import hashlib

    h = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "little") & (2**63 - 1)


@contextlib.contextmanager
def forked(seed: int, device: str | torch.device = "cpu"):
    """Run a block (e.g. a model's default init) under a seeded, forked global RNG; outside state is untouched."""
    dev = torch.device(device)
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield
