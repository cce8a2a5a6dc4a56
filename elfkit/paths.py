"""Where elfkit reads and writes: repo root, per-profile results/figures/runs folders, the cache."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The checkout holding this package (found from this file, never from the working directory)."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").exists():
        return root
    return Path.cwd()  # installed as a wheel: fall back to the caller's folder


def base() -> Path:
    """The folder results/ and figures/ live under: ELFKIT_RESULTS_DIR, else the repo root."""
    env = os.environ.get("ELFKIT_RESULTS_DIR")
    return Path(env).expanduser().resolve() if env else repo_root()


def results_dir(profile: str, experiment: str | None = None) -> Path:
    """results/<profile>[/<experiment>]; ELFKIT_RESULTS_DIR replaces the repo root (tests, CI)."""
    p = base() / "results" / profile
    if experiment:
        p = p / experiment
    p.mkdir(parents=True, exist_ok=True)
    return p


def figures_dir(profile: str) -> Path:
    """figures/<profile>; ELFKIT_FIGURES_DIR (else ELFKIT_RESULTS_DIR) replaces the repo root."""
    env = os.environ.get("ELFKIT_FIGURES_DIR")
    p = (Path(env).expanduser().resolve() if env else base() / "figures") / profile
    p.mkdir(parents=True, exist_ok=True)
    return p


def runs_dir(profile: str) -> Path:
    """Executed notebooks, checkpoints and other artefacts that are never committed."""
    p = base() / "results" / profile / "runs"
    p.mkdir(parents=True, exist_ok=True)
    return p


def cache_dir() -> Path:
    """Dataset downloads: $XDG_CACHE_HOME/elfkit, by default ~/.cache/elfkit."""
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    p = Path(xdg) / "elfkit"
    p.mkdir(parents=True, exist_ok=True)
    return p
