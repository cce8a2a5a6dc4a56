"""05_inductive_bias: the empirical study (docs/elf.md §8). (1) Distil with A, evaluate with B over a pool of
architectures (standard protocol): is the diagonal B = A best? (2) One-axis sweeps of the evaluation ConvNet
(width, depth, activation, pooling, normalisation) on a set distilled with the default ConvNet, with the standard
protocol and with ELF: does accuracy drop as B departs from the distillation network, and does ELF remove the drop?"""
from __future__ import annotations

import dataclasses

from .. import profiles
from ..results import Output
from . import cross_arch
from . import synsets

SLUG = "05_inductive_bias"
PRODUCTS = ["results/{profile}/05_inductive_bias/records.json", "figures/{profile}/05_inductive_bias_matrix.png",
            "figures/{profile}/05_inductive_bias_sweeps.png"]
# + the settings of study_method (DM now: dm_*), as in 03; the matrix overrides apply on top of them
USES = ("dataset", "distill_arch", "study_method", "study_ipc", "study_matrix_archs", "study_matrix_ipc",
        "study_matrix_overrides", "study_axes", "dm_iterations", "dm_batch_real", "dm_lr_img", "eval_epochs",
        "eval_lr", "eval_batch", "eval_dsa", "n_eval_models", "test_per_class", "feature_epochs", "feature_epoch",
        "feature_per_class")


def matrix_context(ctx, arch: str):
    """ctx whose profile distils with `arch` under the profile's matrix overrides; synsets.distilled keys its
    cache by the resulting settings, so each (arch, settings) set is distilled once."""
    p = profiles.override(ctx.profile, distill_arch=arch, **profiles.assignments(ctx.profile.study_matrix_overrides))
    return dataclasses.replace(ctx, profile=p)


def _row(p, test, **kw) -> dict:
    return {"method": p.study_method, "dataset": test.name, **kw}


def matrix(ctx, data, test, common: dict) -> list[dict]:
    """Every architecture of the pool as distillation network A, each set evaluated on every B (baseline)."""
    from .. import study
    from ..evaluate import evaluate_synset

    p = ctx.profile
    c, hw = data.spec.channel, data.spec.im_size
    rows = []
    for a in p.study_matrix_archs:
        s = synsets.distilled(matrix_context(ctx, a), data, p.study_method, p.study_matrix_ipc)
        for r in evaluate_synset(s, test, p.study_matrix_archs, **common):
            rows.append(_row(p, test, study="matrix", ipc=p.study_matrix_ipc, axis="architecture",
                             variant=r["eval_arch"], distill_arch=a, eval_arch=r["eval_arch"], eval_mode="baseline",
                             is_distill_arch=study.same_architecture(a, r["eval_arch"], c, hw),
                             model_seed=r["model_seed"], metric=r["metric"], value=r["value"]))
    return rows


def sweeps(ctx, data, test, common: dict) -> list[dict]:
    """The profile's sweep axes on the default set: baseline and ELF (front_rear_task, channel-CE, λ = 1) for each
    member; a member whose split no feature model fits gets an 'elf_unavailable' row with the reason."""
    from .. import elf, study
    from ..evaluate import evaluate_synset

    p = ctx.profile
    c, hw = data.spec.channel, data.spec.im_size
    s = synsets.distilled(ctx, data, p.study_method, p.study_ipc)
    features = cross_arch.feature_models(ctx, data)
    done, rows = {}, []
    for axis in p.study_axes:
        for label, name in study.sweep(axis):
            sig = study.signature(name, c, hw)
            if sig not in done:   # ConvNetW128, ConvNetD3, ConvNetAR, ... are one network: evaluated once
                out = [dict(r, eval_mode="baseline") for r in evaluate_synset(s, test, [name], **common)]
                why = elf.unavailable(name, test)
                out += ([{"eval_mode": "elf", "metric": "elf_unavailable", "reason": why}] if why else
                        elf.evaluate(s, test, [name], features, mode="front_rear_task", kind="CE", **common))
                done[sig] = out
            rows += [_row(p, test, study="sweep", ipc=p.study_ipc, axis=axis, variant=label,
                          distill_arch=p.distill_arch, eval_arch=name, eval_mode=r["eval_mode"],
                          is_distill_arch=study.same_architecture(name, p.distill_arch, c, hw),
                          **{k: r[k] for k in ("model_seed", "metric", "value", "reason") if k in r})
                     for r in done[sig]]
    return rows


def run(ctx) -> Output:
    from .. import data as datasets

    p = ctx.profile
    data = datasets.load(p.dataset, device=ctx.device)
    test = datasets.subset(data, 0, p.test_per_class, seed=ctx.seed)
    common = dict(n_models=p.n_eval_models, seed=ctx.seed, epochs=p.eval_epochs, lr=p.eval_lr,
                  batch_size=p.eval_batch, dsa=p.eval_dsa, test_batch=p.test_batch, device=ctx.device,
                  progress=ctx.progress)
    return Output(matrix(ctx, data, test, common) + sweeps(ctx, data, test, common), data_source=test.source)
