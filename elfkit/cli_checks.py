"""What the command line refuses before any work: numbers out of range (argparse types), usage errors in one line,
and distillation settings that would lose work or write nowhere (checked before the first iteration)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from .errors import ElfkitError


def number(kind, low: float, inclusive: bool = True):
    """An argparse type: `kind` (int or float) at least `low` (or above it), so a bad value stops before any work."""
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if v < low or (v == low and not inclusive) or v != v:
            raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {low:g}, got {text}")
        return v

    parse.__name__ = kind.__name__   # argparse names the type in its messages
    return parse


COUNT, SIZE, RATE, WEIGHT = number(int, 1), number(int, 0), number(float, 0, False), number(float, 0)


class OneLineParser(argparse.ArgumentParser):
    """One-line usage errors that point to --help (argparse prints the whole usage block first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def check_run_paths(a, out: Path, iterations: int | None) -> None:
    """Before any compute: the output can be written, and a checkpoint request will actually checkpoint."""
    if out.is_dir():
        raise ElfkitError(f"--out {out} is a folder; give a file name such as {out / 'set.safetensors'}")
    folder = out.parent if str(out.parent) else Path(".")
    if folder.exists() and not os.access(folder, os.W_OK):
        raise ElfkitError(f"cannot write into {folder} (--out); choose a writable folder")
    if a.resume and not a.checkpoint:
        raise ElfkitError("--resume needs --checkpoint FILE (the checkpoint to continue from)")
    if a.checkpoint_every is None:
        a.checkpoint_every = min(500, iterations) if iterations else 500
    if a.checkpoint:
        if a.checkpoint_every < 1:
            raise ElfkitError(f"--checkpoint-every must be >= 1 (got {a.checkpoint_every}); no checkpoint would be "
                              "written")
        if iterations is not None and a.checkpoint_every > iterations:
            raise ElfkitError(f"--checkpoint-every {a.checkpoint_every} exceeds --iterations {iterations}; no "
                              "checkpoint would be written")
