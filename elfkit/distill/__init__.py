"""Distillation methods, one per module: each has distill(data, *, ipc, ..., seed) -> SynSet and
profile_kwargs(profile) -> the keyword arguments a Profile sets (MTT also needs `experts=`)."""
from . import dc, dm, dsa, mtt

METHODS = {"DC": dc, "DSA": dsa, "DM": dm, "MTT": mtt}


def available() -> list[str]:
    """Methods that exist in this version of elfkit (notebooks iterate over these)."""
    return list(METHODS)
