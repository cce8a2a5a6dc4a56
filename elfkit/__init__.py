"""elfkit: reproducible dataset distillation (DM, ...), evaluation and ELF/CLoM companions, CPU and GPU.

The public surface is what this module re-exports; notebooks use `ek.start`, `ek.results.cached`,
`ek.experiments.<name>.run`, `ek.tables`, `ek.ptm_tables` and `ek.plotting`.

Submodules and names load on first use (PEP 562), so that replaying committed results — records, tables,
figures — never imports torch: a bare papermill replay stays within seconds on a cold laptop.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {"clom", "data", "distill", "elf", "evaluate", "experiments", "experts", "models", "plotting",
               "profiles", "ptm", "ptm_tables", "results", "synset", "tables"}
# public name -> (submodule, attribute)
_NAMES = {"start": ("context", "start"), "ElfkitError": ("errors", "ElfkitError"),
          "evaluate_synset": ("evaluate", "evaluate_synset"), "random_real": ("evaluate", "random_real"),
          "create_model": ("models", "create"), "list_models": ("models", "list_models"), "split": ("models", "split"),
          "SynSet": ("synset", "SynSet"), "load_synset": ("synset", "load"), "load_foreign": ("synset", "load_foreign")}

__all__ = ["__version__", *sorted(_SUBMODULES), *_NAMES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _NAMES:
        module, attr = _NAMES[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'elfkit' has no attribute {name!r}")


def __dir__():
    return __all__
