"""Distillation methods, one per module: each has distill(data, *, ipc, ..., seed) -> SynSet."""
from . import dm

METHODS = {"DM": dm}


def available() -> list[str]:
    """Methods that exist in this version of elfkit (notebooks iterate over these)."""
    return sorted(METHODS)
