"""elfkit: reproducible dataset distillation (DM, ...), evaluation and ELF/CLoM companions, CPU and GPU.

The public surface is what this module re-exports; notebooks use `ek.start`, `ek.results.cached`,
`ek.experiments.<name>.run`, `ek.tables` and `ek.plotting`.
"""
__version__ = "0.1.0"

from . import data, distill, elf, evaluate, experiments, experts, models, plotting, profiles, results, tables  # noqa: E402
from .context import start  # noqa: E402
from .errors import ElfkitError  # noqa: E402
from .evaluate import evaluate_synset, random_real  # noqa: E402
from .models import create as create_model, list_models, split  # noqa: E402
from .synset import SynSet, load as load_synset, load_foreign  # noqa: E402

__all__ = ["__version__", "start", "data", "distill", "elf", "experts", "evaluate", "experiments", "models", "plotting", "profiles",
           "results", "tables", "evaluate_synset", "random_real", "create_model", "list_models", "split",
           "SynSet", "load_synset", "load_foreign", "ElfkitError"]
