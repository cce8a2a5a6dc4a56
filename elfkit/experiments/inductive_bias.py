"""05_inductive_bias: the empirical study (docs/elf.md §8). (1) Distil with A, evaluate with B over a pool of
architectures (standard protocol): is the diagonal B = A best? (2) One-axis sweeps of the evaluation ConvNet
(width, depth, activation, pooling, normalisation) on a set distilled with the default ConvNet, with the standard
protocol and with ELF: does accuracy drop as B departs from the distillation network, and does ELF remove the drop?"""
from __future__ import annotations

from ..cells import Plan
from ..results import Output
from . import grid

SLUG = "05_inductive_bias"
PRODUCTS = ["results/{profile}/05_inductive_bias/records.json", "figures/{profile}/05_inductive_bias_matrix.png",
            "figures/{profile}/05_inductive_bias_sweeps.png"]
FIELDS = ("model_seed", "metric", "value", "reason")


def _row(p, **kw) -> dict:
    return {"method": p.study_method, "dataset": grid.name_of(p.dataset), **kw}


def matrix(p, seed: int, out: Plan, test: dict, prot, d: int, unit: dict) -> None:
    """Every architecture of the pool as distillation network A (with the matrix overrides), its set distilled from
    seed `d`, evaluated on every B (baseline; model seeds from the run's `seed`)."""
    from .. import profiles, study

    c, hw = grid.spec_of(p.dataset)
    for a in p.study_matrix_archs:
        pa = p.override(distill_arch=a, **profiles.assignments(p.study_matrix_overrides))
        syn = grid.synset_cell(pa, d, p.study_method, p.study_matrix_ipc)
        for b in p.study_matrix_archs:
            grid.evaluations(out, syn, test, [b], prot, seed, fields=FIELDS[:3],
                             **_row(p, study="matrix", ipc=p.study_matrix_ipc, axis="architecture", variant=b,
                                    distill_arch=a, eval_arch=b, eval_mode="baseline",
                                    is_distill_arch=study.same_architecture(a, b, c, hw)), **unit)


def sweep_elf(p, seed: int, arch: str) -> tuple[dict, dict]:
    """ELF's arguments for a sweep member and the labels of its rows: the elf section's feature model, or
    study_feature's (one of 08's, its training shared with 08 and 04's widths)."""
    if not p.study_feature:
        return grid.elf_args(p, seed, arch), {}
    spec = grid.feature_spec(p.study_feature)
    fm = grid.spec_features(p, seed, arch, spec)
    labels = {"feature_model": fm.args["arch"], "feature_per_class": spec[0], "feature_train_epochs": spec[1],
              "feature_epoch": spec[2]}
    return grid.elf_args(p, seed, arch, epoch=spec[2], features=fm), labels


def sweeps(p, seed: int, out: Plan, test: dict, prot, d: int, unit: dict) -> None:
    """The sweep axes on the default set: baseline and ELF (front_rear_task, channel-CE, λ = 1) for each member
    (ConvNetW128, ConvNetD3, ConvNetAR, ... are one network: planned once, as study.canonical names it); a member whose
    split no feature model fits gets an 'elf_unavailable' row with the reason."""
    from types import SimpleNamespace

    from .. import elf, study

    c, hw = grid.spec_of(p.dataset)
    shape = SimpleNamespace(spec=SimpleNamespace(channel=c, im_size=hw))
    syn = grid.synset_cell(p, d, p.study_method, p.study_ipc)
    for axis in p.study_axes:
        for label, name in study.sweep(axis):
            arch = study.canonical(name, c, hw)      # one network, one set of cells, whichever axis asks
            lab = _row(p, study="sweep", ipc=p.study_ipc, axis=axis, variant=label, distill_arch=p.distill_arch,
                       eval_arch=name, is_distill_arch=study.same_architecture(name, p.distill_arch, c, hw), **unit)
            grid.evaluations(out, syn, test, [arch], prot, seed, fields=FIELDS, **lab, eval_mode="baseline")
            why = elf.unavailable(name, shape)
            if why:
                out.literal([{"metric": "elf_unavailable", "reason": why}], **lab, eval_mode="elf")
            else:
                args, named = sweep_elf(p, seed, arch)
                grid.evaluations(out, syn, test, [arch], prot, seed, fields=FIELDS, **lab, **named,
                                 eval_mode="elf", elf=lambda _a, args=args: args)


def protocol(p):
    """05's evaluation: the standard protocol, study_epochs long with study_models models where they are set."""
    return grid.schedule(p, p.study_epochs, p.study_models)


def plan(p, seed: int) -> Plan:
    """Matrix and sweeps per distillation seed (study_seeds, rows labelled distill_seed; () = the run's seed)."""
    grid.distinct_seeds("study_seeds", p.study_seeds)
    prot = protocol(p)
    test = grid.data_spec(p.dataset, 0, prot.test_per_class, seed)
    out = Plan(data=test)
    for d in p.study_seeds or (seed,):
        unit = {"distill_seed": d} if p.study_seeds else {}
        matrix(p, seed, out, test, prot, d, unit)
        sweeps(p, seed, out, test, prot, d, unit)
    return out


def assemble(plan: Plan, outputs: dict, ctx, env) -> Output:
    """The rows; with study_feature set, ELF rows also carry their feature model's measured test accuracy."""
    if not ctx.profile.study_feature:
        return Output(plan.records(outputs))
    return Output(plan.records(outputs, lambda labels, cell: grid.feature_acc(cell, outputs)))


def run(ctx) -> Output:
    return grid.run(ctx, plan, assemble)
