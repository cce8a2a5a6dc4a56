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


def protocol(p):
    """03's evaluation: the standard protocol, cross_epochs long with cross_models models where they are set."""
    return grid.schedule(p, p.cross_epochs, p.cross_models)


def plan(p, seed: int) -> Plan:
    """Per IPC and distillation seed (cross_seeds; () = the run's seed), every method's set and the random-real row,
    each evaluated baseline and ELF with model seeds seed + i on every cross_archs architecture (paired)."""
    from ..distill import available

    prot = protocol(p)
    test = grid.data_spec(p.dataset, 0, prot.test_per_class, seed)
    out = Plan(data=test)
    grid.distinct_seeds("cross_seeds", p.cross_seeds)
    seeds = p.cross_seeds or (seed,)
    for ipc in p.ipcs:
        for d in seeds:
            unit = {"distill_seed": d} if p.cross_seeds else {}
            sets = {m: grid.synset_cell(p, d, m, ipc) for m in available()}
            sets["random_real"] = grid.synset_cell(p, d, "random_real", ipc)
            for method, syn in sets.items():
                grid.baseline_and_elf(p, out, syn, test, p.cross_archs, prot, seed, FIELDS, p.cross_feature,
                                      method=method, ipc=ipc, dataset=grid.name_of(p.dataset), **unit)
    return out


def assemble(plan: Plan, outputs: dict, ctx, env) -> Output:
    """The table's rows; with cross_feature set, ELF rows also carry their feature model's measured test accuracy."""
    return Output(plan.records(outputs, lambda labels, cell: grid.feature_acc(cell, outputs)
                               if "feature_epoch" in labels else {}))


def run(ctx) -> Output:
    return grid.run(ctx, plan, assemble)
