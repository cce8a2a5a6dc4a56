"""08_elf_regime: where ELF's claim can hold — the ELF gain (ELF − baseline, paired model seeds) on the DM IPC-10 set
as a function of the feature model's quality (its measured test accuracy is the x-axis) and of the evaluation length,
for ResNet-18, VGG-11 and AlexNet with ConvNet as the control, over several distillation seeds (docs/elf.md §12).
Every ELF cell also logs its loss terms (front, its irreducible part, rear, task) over training.

The axes are profile fields (regime_*), fixed before any run; every planned cell is reported."""
from __future__ import annotations

from ..cells import Plan
from ..results import Output
from . import grid

SLUG = "08_elf_regime"
PRODUCTS = ["results/{profile}/08_elf_regime/records.json", "figures/{profile}/08_elf_regime_gain.png",
            "figures/{profile}/08_elf_regime_terms.png"]
FIELDS = ("model_seed", "metric", "value")


def plan(p, seed: int) -> Plan:
    """Rows in the order they are worth computing (serially): the cheap architectures first, each with all its
    evaluation lengths. Model seeds are the run's seed + i for every set (paired: baseline and ELF share them)."""
    from ..protocol import EvalProtocol

    specs = grid.regime_specs(p)
    test = grid.data_spec(p.dataset, 0, p.test_per_class, seed)
    out = Plan(data=test)
    sets = {d: grid.synset_cell(p, d, "DM", p.regime_ipc) for d in p.regime_seeds}
    runs = []
    for a in p.regime_archs:      # one architecture's lengths together: its feature models are used up at once
        runs += [(e, a, specs) for e in p.regime_epochs]
        if p.regime_long_epochs and a in p.regime_long_archs:
            runs.append((p.regime_long_epochs, a, specs[-1:]))
    for epochs, arch, fspecs in runs:
        prot = EvalProtocol.of(p, epochs=epochs, n_models=p.regime_models)
        for d, syn in sets.items():
            lab = dict(method="DM", ipc=p.regime_ipc, dataset=grid.name_of(p.dataset), distill_seed=d,
                       eval_arch=arch, eval_epochs=epochs)
            grid.evaluations(out, syn, test, [arch], prot, seed, fields=FIELDS, **lab, eval_mode="baseline")
            for spec in fspecs:
                fm = grid.spec_features(p, seed, arch, spec)
                grid.evaluations(out, syn, test, [arch], prot, seed, fields=FIELDS, **lab, eval_mode="elf",
                                 feature_model=fm.args["arch"], feature_per_class=spec[0],
                                 feature_train_epochs=spec[1], feature_epoch=spec[2],
                                 elf=lambda a, fm=fm, e=spec[2]: grid.elf_args(p, seed, a, epoch=e, features=fm))
    return out


def assemble(plan: Plan, outputs: dict, ctx, env) -> Output:
    """Accuracy rows (ELF rows carry their feature model's measured test accuracy) and, for the first model of every
    ELF cell, its loss terms per logged epoch (metric elf_term_<name>)."""
    records = []
    for labels, cell, fields in plan.rows:
        out = outputs[cell.key]
        extra = grid.feature_acc(cell, outputs)
        records += [{**labels, **extra, **{k: r[k] for k in fields if k in r}} for r in out["records"]]
        terms = out.get("terms")
        if terms and cell.args["model_seed"] == ctx.seed:
            for name in ("front", "front_irreducible", "rear", "task"):
                records += [{**labels, **extra, "model_seed": ctx.seed, "metric": f"elf_term_{name}",
                             "epoch": ep, "value": v} for ep, v in zip(terms["epoch"], terms[name])]
    return Output(records)


def run(ctx) -> Output:
    return grid.run(ctx, plan, assemble)
