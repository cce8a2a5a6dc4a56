"""Progress for long work: a tqdm bar (terminal, JupyterLab), fixed-width rows (papermill, logs), or nothing."""
from __future__ import annotations

import os
import sys
import time

MODES = ("auto", "bar", "rows", "off")


def resolve_progress(progress: str = "auto") -> str:
    """bar in a terminal or an interactive Jupyter/Colab kernel, rows under papermill or redirected output."""
    if progress not in MODES:
        from .errors import ElfkitError

        raise ElfkitError(f"progress must be one of {MODES}, got {progress!r}")
    if progress != "auto":
        return progress
    if "google.colab" in sys.modules:
        return "bar"
    try:
        from IPython import get_ipython

        ip = get_ipython()
    except ImportError:
        ip = None
    if ip is not None and hasattr(ip, "kernel"):
        # jupyter_server sets JPY_SESSION_NAME for kernels of an open notebook; papermill/nbclient do not
        return "bar" if "JPY_SESSION_NAME" in os.environ else "rows"
    return "bar" if sys.stderr.isatty() else "rows"


class Progress:
    """`with Progress(total, "DM ipc10", mode) as p: ... p.update(loss=...)`. Rows print ~10 times per task."""

    def __init__(self, total: int, desc: str, mode: str = "rows", leave: bool = True, rows: int = 10):
        self.total, self.desc, self.mode, self.n = total, desc, mode, 0
        self.every = max(1, total // max(1, rows))
        self.t0 = time.perf_counter()
        self.printed = 0          # rows mode: last multiple of `every` that was printed
        self.bar = None
        if mode == "bar":
            if "ipykernel" in sys.modules:
                from tqdm.auto import tqdm
            else:
                from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, leave=leave, dynamic_ncols=True)

    def update(self, n: int = 1, **metrics) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
            if metrics:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)
        elif self.mode == "rows" and (self.n // self.every > self.printed or self.n == self.total) and self.n:
            self.printed = self.n // self.every
            vals = "  ".join(f"{k} {v:>9.4g}" for k, v in metrics.items())
            print(f"{self.desc:<28} {self.n:>6}/{self.total:<6} {vals}  {time.perf_counter() - self.t0:>7.1f}s",
                  flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
