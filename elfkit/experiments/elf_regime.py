"""08_elf_regime: where ELF's claim can hold — the ELF gain (ELF − baseline, paired model seeds) on the DM IPC-10 set
as a function of the feature model's quality (its measured test accuracy is the x-axis) and of the evaluation length,
for ResNet-18, VGG-11 and AlexNet with ConvNet as the control, over several distillation seeds (docs/elf.md §6).
Every ELF cell also logs its loss terms (front, its irreducible part, rear, task) over training.

The axes are profile fields (regime_*), fixed before any run; every planned cell is reported."""
from __future__ import annotations

from ..cells import Plan
from ..errors import ElfkitError
from ..results import Output
from . import grid

SLUG = "08_elf_regime"
PRODUCTS = ["results/{profile}/08_elf_regime/records.json", "figures/{profile}/08_elf_regime_gain.png",
            "figures/{profile}/08_elf_regime_terms.png"]
FIELDS = ("model_seed", "metric", "value")


def feature_specs(p) -> list[tuple[int, int, int]]:
    """(train images per class (0 = all), trajectory epochs, snapshot epoch) of each feature model, in axis order."""
    out = []
    for spec in p.regime_features:
        try:
            per_class, epochs, epoch = (int(v) for v in spec.split(":"))
        except ValueError:
            raise ElfkitError(f"regime_features entries are 'per_class:epochs:snapshot', got {spec!r}") from None
        if not 0 <= epoch <= epochs:
            raise ElfkitError(f"regime_features {spec!r}: the snapshot must lie in 0..{epochs}")
        out.append((per_class, epochs, epoch))
    return out


def features_of(p, seed: int, arch: str, spec: tuple[int, int, int]):
    """The trajectory cell of a feature spec: one training per (per_class, epochs), every listed snapshot kept."""
    per_class, epochs, epoch = spec
    shared = tuple(e for pc, ep, e in feature_specs(p) if (pc, ep) == (per_class, epochs))
    return grid.feature_cell(p, seed, arch, epoch=epoch, snapshots=shared, per_class=per_class, epochs=epochs)


def plan(p, seed: int) -> Plan:
    """Rows in the order they are worth computing (serially): the cheap architectures first, each with all its
    evaluation lengths. Model seeds are the run's seed + i for every set (paired: baseline and ELF share them)."""
    from ..protocol import EvalProtocol

    specs = feature_specs(p)
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
                fm = features_of(p, seed, arch, spec)
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
        extra = {}
        if cell.args.get("elf"):
            traj = cell.args["elf"]["features"].args["trajectory"]
            extra["feature_acc"] = outputs[traj.key]["score"][str(cell.args["elf"]["epoch"])]
        records += [{**labels, **extra, **{k: r[k] for k in fields if k in r}} for r in out["records"]]
        terms = out.get("terms")
        if terms and cell.args["model_seed"] == ctx.seed:
            for name in ("front", "front_irreducible", "rear", "task"):
                records += [{**labels, **extra, "model_seed": ctx.seed, "metric": f"elf_term_{name}",
                             "epoch": ep, "value": v} for ep, v in zip(terms["epoch"], terms[name])]
    return Output(records)


def run(ctx) -> Output:
    return grid.run(ctx, plan, assemble)
