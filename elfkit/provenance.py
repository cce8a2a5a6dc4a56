"""Who, what and where produced a result: git state, package versions, device — a leaf module every writer uses."""
from __future__ import annotations

import functools
import platform
import socket
import subprocess
from datetime import datetime, timezone

from . import __version__, paths


def _git(*args) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=paths.repo_root(), capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


@functools.lru_cache(maxsize=1)   # the state this process started from: a long run is not re-stamped by later commits
def git_sha() -> str:
    return _git("rev-parse", "HEAD") or "unknown"


@functools.lru_cache(maxsize=1)
def git_dirty() -> bool:
    """Uncommitted changes to tracked files under the package, notebooks or build files (results/ excluded)."""
    return bool(_git("status", "--porcelain", "--untracked-files=no", "--", "elfkit", "notebooks", "pyproject.toml",
                     "Makefile"))


def package_version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "missing"


def describe_device(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def environment(device) -> dict:
    """The software and hardware a computation ran on (no timing)."""
    import torch

    return {"git_sha": git_sha(), "git_dirty": git_dirty(), "elfkit": __version__, "torch": torch.__version__,
            "torchvision": package_version("torchvision"), "numpy": package_version("numpy"),
            "python": platform.python_version(), "platform": platform.platform(), "host": socket.gethostname(),
            "device": describe_device(device), "threads": torch.get_num_threads(),
            # the CPU kernel family (AVX2, AVX512, ...): machines with different ones give different float bits
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def of_run(ctx, wall_s: float, data_source: dict | None = None, **extra) -> dict:
    """Provenance of a run (an experiment's records, a CLI command's output): environment, start, wall time,
    the run's parameters and the data files it read."""
    return {**environment(ctx.device), "started_utc": ctx.started_utc or utc_now(), "wall_s": round(wall_s, 2),
            "params": {"profile": ctx.profile.name, "seed": ctx.seed, "device": str(ctx.device),
                       "executor": getattr(ctx, "executor", "serial")},
            "data": data_source or {}, **extra}
