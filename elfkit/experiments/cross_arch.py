"""03_cross_arch: the ELF main table — every distillation method × IPC, evaluated on each architecture with the
standard protocol (baseline) and with ELF, identical seeds/epochs/augmentation; plus the random-real row."""
from __future__ import annotations

from ..cells import Plan
from ..results import Output
from . import grid

SLUG = "03_cross_arch"
PRODUCTS = ["results/{profile}/03_cross_arch/records.json", "figures/{profile}/03_cross_arch_delta.png",
            "figures/{profile}/03_cross_arch_bars.png"]
FIELDS = ("eval_arch", "eval_mode", "model_seed", "metric", "value")


def plan(p, seed: int) -> Plan:
    from ..distill import available
    from ..protocol import EvalProtocol

    prot = EvalProtocol.of(p)
    test = grid.data_spec(p.dataset, 0, prot.test_per_class, seed)
    out = Plan(data=test)
    for ipc in p.ipcs:
        sets = {m: grid.synset_cell(p, seed, m, ipc) for m in available()}
        sets["random_real"] = grid.synset_cell(p, seed, "random_real", ipc)
        for method, syn in sets.items():
            grid.baseline_and_elf(p, out, syn, test, p.cross_archs, prot, seed, FIELDS, method=method, ipc=ipc,
                                  dataset=grid.name_of(p.dataset))
    return out


def run(ctx) -> Output:
    return grid.run(ctx, plan)
