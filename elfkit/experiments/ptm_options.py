"""06_ptm_options: which pre-trained-model options matter for CLoM (docs/ptm.md §7 E2–E5) — the number of
initialisations, the architecture pool, the PTMs' training epoch and the source domain — each against the
same method without CLoM (same seed, iterations and evaluation). Pools are 01_experts' trajectory cells."""
from __future__ import annotations

from ..cells import Plan
from ..results import Output
from . import grid

SLUG = "06_ptm_options"
PRODUCTS = ["results/{profile}/06_ptm_options/records.json", "figures/{profile}/06_ptm_options.png"]
STUDIES = ("initialisations", "architectures", "ptm_epoch", "source")
# E5: label -> (pool domain, distance). CE needs the target's label space, so the other domain only has cos.
SOURCES = {"target_ce": ("target", "ce_code"), "target_cos": ("target", "cos"), "ood_cos": ("ood", "cos")}
FIELDS = ("eval_arch", "model_seed", "metric", "value")


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


def guidance_spec(p, seed: int, opt: dict) -> dict:
    """The CLoM arguments of one option: the first model_num members of each chosen architecture's pool (as many
    as the option uses: the cells train whichever 01 has not) at snapshot `epoch`, alpha ptm_alpha for every
    architecture (docs/ptm.md §4)."""
    d, n = opt["domain"], opt["model_num"]
    return {"pools": {a: grid.ptm_members(p, seed, d, a, n) for a in opt["archs"]},
            "source": grid.ptm_source(p, seed, d), "epoch": opt["epoch"], "alpha": p.ptm_alpha,
            "distance": opt["distance"], "model_num": n, "batch": p.ptm_batch, "seed": seed}


def plan(p, seed: int) -> Plan:
    from ..protocol import EvalProtocol

    prot = EvalProtocol.of(p)
    test = grid.data_spec(p.dataset, 0, prot.test_per_class, seed)
    out = Plan(data=test)
    for method in p.ptm_methods:
        plain = grid.synset_cell(p, seed, method, p.ptm_ipc, iterations=p.ptm_iterations)
        for s in prot.seeds(seed):        # each model's record once per study (the studies share the baseline)
            cell = grid.eval_cell(plain, test, p.distill_arch, s, prot)
            for study in STUDIES:
                out.row(cell, FIELDS, study=study, option="no CLoM", clom=False, method=method, ipc=p.ptm_ipc)
        for opt in options(p):
            g = guidance_spec(p, seed, opt)
            syn = grid.synset_cell(p, seed, method, p.ptm_ipc, guidance=g, iterations=p.ptm_iterations)
            grid.evaluations(out, syn, test, [p.distill_arch], prot, seed, fields=FIELDS, study=opt["study"],
                             option=opt["option"], clom=True, method=method, ipc=p.ptm_ipc,
                             pool="+".join(opt["archs"]), model_num=opt["model_num"], ptm_epoch=opt["epoch"],
                             source=g["source"]["dataset"], distance=opt["distance"],
                             alpha=p.ptm_alpha)
    return out


def run(ctx) -> Output:
    return grid.run(ctx, plan)
