"""07_ptm_cross_arch: cross-architecture accuracy of sets distilled with and without CLoM (docs/ptm.md §7 E7: the
full architecture pool, all members, the profile's PTM epoch), each evaluated with the standard protocol and with
ELF — so the combination CLoM-distilled + ELF-evaluated sits beside both parts alone."""
from __future__ import annotations

from ..results import Output
from . import synsets
from .cross_arch import feature_models
from .experts import ptm_pools

SLUG = "07_ptm_cross_arch"
PRODUCTS = ["results/{profile}/07_ptm_cross_arch/records.json", "figures/{profile}/07_ptm_cross_arch.png"]
USES = ("dataset", "distill_arch", "cross_archs", "test_per_class", "eval_epochs", "eval_lr", "eval_batch", "eval_dsa",
        "n_eval_models", "dm_iterations", "dm_batch_real", "dm_lr_img", "dc_iterations", "dc_batch_real", "dc_lr_img",
        "dc_metric", "dc_init", "dc_loop_cap", "feature_epochs", "feature_epoch", "feature_per_class", "ptm_archs",
        "ptm_model_num", "ptm_model_num_others", "ptm_epochs", "ptm_per_class", "ptm_epoch", "ptm_alpha", "ptm_batch",
        "ptm_methods", "ptm_ipc", "ptm_iterations")


def run(ctx) -> Output:
    from .. import data as datasets, elf, ptm
    from ..evaluate import evaluate_synset

    p = ctx.profile
    data = datasets.load(p.dataset, device=ctx.device)
    test = datasets.subset(data, 0, p.test_per_class, seed=ctx.seed)
    fm = feature_models(ctx, data)
    src, pools = ptm_pools(ctx, "target")
    common = dict(n_models=p.n_eval_models, seed=ctx.seed, epochs=p.eval_epochs, lr=p.eval_lr,
                  batch_size=p.eval_batch, dsa=p.eval_dsa, test_batch=p.test_batch, device=ctx.device,
                  progress=ctx.progress)
    records = []
    for method in p.ptm_methods:
        g = ptm.guidance(pools, source=src, target=data, epoch=p.ptm_epoch, alphas=p.ptm_alpha, distance="ce_code",
                         batch=p.ptm_batch, seed=ctx.seed, device=ctx.device)
        sets = {"no CLoM": synsets.distilled(ctx, data, method, p.ptm_ipc, iterations=p.ptm_iterations),
                "CLoM": synsets.distilled(ctx, data, method, p.ptm_ipc, guidance=g, iterations=p.ptm_iterations)}
        for label, s in sets.items():
            for arch in p.cross_archs:
                rows = [dict(r, eval_mode="baseline") for r in evaluate_synset(s, test, [arch], **common)]
                rows += elf.evaluate(s, test, [arch], fm, mode="front_rear_task", kind="CE", **common)
                records += [{"method": method, "ipc": p.ptm_ipc, "distill": label, "pool": "+".join(pools),
                             "eval_arch": r["eval_arch"], "eval_mode": r["eval_mode"], "model_seed": r["model_seed"],
                             "metric": r["metric"], "value": r["value"]} for r in rows]
    return Output(records, data_source=test.source)
