"""06_ptm_options: which pre-trained-model options matter for CLoM (docs/ptm.md §7 E2–E5) — the number of
initialisations, the architecture pool, the PTMs' training epoch and the source domain — each against the
same method without CLoM (same seed, iterations and evaluation). Pools come from 01_experts (cached)."""
from __future__ import annotations

import json

from ..results import Output
from . import synsets
from .experts import ptm_pools

SLUG = "06_ptm_options"
PRODUCTS = ["results/{profile}/06_ptm_options/records.json", "figures/{profile}/06_ptm_options.png"]
USES = ("dataset", "distill_arch", "test_per_class", "eval_epochs", "eval_lr", "eval_batch", "eval_dsa",
        "n_eval_models", "dm_iterations", "dm_batch_real", "dm_lr_img", "dc_iterations", "dc_batch_real", "dc_lr_img",
        "dc_metric", "dc_init", "dc_loop_cap", "ptm_archs", "ptm_model_num", "ptm_model_num_others", "ptm_epochs",
        "ptm_per_class", "ptm_epoch", "ptm_ood_source", "ptm_alpha", "ptm_batch", "ptm_methods", "ptm_ipc",
        "ptm_iterations", "ptm_model_nums", "ptm_arch_pools", "ptm_epoch_grid", "ptm_sources")
STUDIES = ("initialisations", "architectures", "ptm_epoch", "source")
# E5: label -> (pool domain, distance). CE needs the target's label space, so the other domain only has cos.
SOURCES = {"target_ce": ("target", "ce_code"), "target_cos": ("target", "cos"), "ood_cos": ("ood", "cos")}


def options(p) -> list[dict]:
    """The study grid: one dict per (study, option) with the pool archs, members, epoch, domain and distance."""
    base = {"archs": (p.distill_arch,), "model_num": 1, "epoch": p.ptm_epoch, "domain": "target",
            "distance": "ce_code"}
    out = [{"study": "initialisations", "option": str(n), **base, "model_num": n} for n in p.ptm_model_nums]
    out += [{"study": "architectures", "option": spec, **base, "archs": tuple(spec.split("+"))}
            for spec in p.ptm_arch_pools]
    out += [{"study": "ptm_epoch", "option": str(e), **base, "epoch": e} for e in p.ptm_epoch_grid]
    for label in p.ptm_sources:
        if label not in SOURCES:
            raise ValueError(f"unknown PTM source option {label!r}; choose from {sorted(SOURCES)}")
        domain, distance = SOURCES[label]
        out.append({"study": "source", "option": label, **base, "domain": domain, "distance": distance})
    return out


def guidance_for(ctx, data, pools_by_domain, opt: dict):
    """The clom.Guidance of one option (alpha ptm_alpha for every architecture)."""
    from .. import ptm

    p = ctx.profile
    src, pools = pools_by_domain[opt["domain"]]
    missing = [a for a in opt["archs"] if a not in pools]
    if missing:
        raise ValueError(f"architectures {missing} have no PTM pool; add them to ptm_archs")
    chosen = {a: pools[a] for a in opt["archs"]}
    return ptm.guidance(chosen, source=src, target=data, epoch=opt["epoch"], alphas=p.ptm_alpha,
                        distance=opt["distance"], model_num=opt["model_num"], batch=p.ptm_batch, seed=ctx.seed,
                        device=ctx.device)


def run(ctx) -> Output:
    from .. import data as datasets
    from ..evaluate import evaluate_synset

    p = ctx.profile
    data = datasets.load(p.dataset, device=ctx.device)
    test = datasets.subset(data, 0, p.test_per_class, seed=ctx.seed)
    pools = {d: ptm_pools(ctx, d) for d in ("target", "ood")}
    common = dict(n_models=p.n_eval_models, seed=ctx.seed, epochs=p.eval_epochs, lr=p.eval_lr,
                  batch_size=p.eval_batch, dsa=p.eval_dsa, test_batch=p.test_batch, device=ctx.device,
                  progress=ctx.progress)
    records, seen = [], {}       # identical sets (the same guidance in two studies) are evaluated once

    def evaluate(syn, key):
        if key not in seen:
            seen[key] = evaluate_synset(syn, test, [p.distill_arch], **common)
        return seen[key]

    for method in p.ptm_methods:
        plain = synsets.distilled(ctx, data, method, p.ptm_ipc, iterations=p.ptm_iterations)
        for r in evaluate(plain, (method, "none")):
            records += [{"study": s, "option": "no CLoM", "clom": False, "method": method, "ipc": p.ptm_ipc, **r}
                        for s in STUDIES]
        for opt in options(p):
            g = guidance_for(ctx, data, pools, opt)
            syn = synsets.distilled(ctx, data, method, p.ptm_ipc, guidance=g, iterations=p.ptm_iterations)
            key = (method, json.dumps(g.config(), sort_keys=True, default=str))
            for r in evaluate(syn, key):
                records.append({"study": opt["study"], "option": opt["option"], "clom": True, "method": method,
                                "ipc": p.ptm_ipc, "pool": "+".join(opt["archs"]), "model_num": opt["model_num"],
                                "ptm_epoch": opt["epoch"], "source": pools[opt["domain"]][0].name,
                                "distance": opt["distance"], "alpha": p.ptm_alpha, **r})
    return Output(records, data_source=test.source)
