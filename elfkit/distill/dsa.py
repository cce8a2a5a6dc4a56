"""DSA — DC's gradient matching with differentiable Siamese augmentation (docs/base-methods.md §3): the DC loop with one
shared augmentation draw per class inside matching and DSA in the inner loop; real initialisation (README)."""
from __future__ import annotations

from ..synset import SynSet
from . import dc


def distill(data, *, ipc: int, init: str = "real", **kw) -> SynSet:
    """`dc.distill(..., dsa=True)`; every keyword of dc.distill applies."""
    return dc.distill(data, ipc=ipc, dsa=True, init=init, **kw)


def profile_kwargs(p, iterations: int = 0) -> dict:
    """DSA shares DC's profile fields, except the initialisation (always real, as the README command)."""
    return dc.profile_kwargs(p, iterations, with_init=False)
