"""06_ptm_options: which pre-trained-model options matter for CLoM (docs/ptm.md §7 E2–E5) — the number of
initialisations, the architecture pool, the PTMs' training epoch and the source domain — each against the
same method without CLoM (same seed, iterations and evaluation). Pools are 01_experts' trajectory cells."""
from __future__ import annotations

from ..cells import Plan
from ..results import Output
from . import grid

SLUG = "06_ptm_options"
PRODUCTS = ["results/{profile}/06_ptm_options/records.json", "figures/{profile}/06_ptm_options.png"]
STUDIES = ("initialisations", "architectures", "ptm_epoch", "source", "alpha")
# E5: label -> (pool domain, distance). CE needs the target's label space, so the other domain only has cos.
SOURCES = {"target_ce": ("target", "ce_code"), "target_cos": ("target", "cos"), "ood_cos": ("ood", "cos")}
FIELDS = ("eval_arch", "model_seed", "metric", "value")


def source_of(label: str) -> tuple[str, str]:
    """An E5 option -> (pool domain, distance): a SOURCES label, or 'ood_cos@<dataset>' for a named out-of-domain
    source other than ptm_ood_source (e.g. ood_cos@animal_mnist)."""
    base, _, name = label.partition("@")
    if base not in SOURCES or (name and base != "ood_cos"):
        raise ValueError(f"unknown PTM source option {label!r}; choose from {sorted(SOURCES)} or ood_cos@<dataset>")
    domain, distance = SOURCES[base]
    return (f"ood@{name}" if name else domain), distance


def options(p) -> list[dict]:
    """The study grid: one dict per (study, option) with the pool archs, members, epoch, domain and distance."""
    base = {"archs": (p.distill_arch,), "model_num": 1, "epoch": p.ptm_epoch, "domain": "target",
            "distance": "ce_code"}
    out = [{"study": "initialisations", "option": str(n), **base, "model_num": n} for n in p.ptm_model_nums]
    out += [{"study": "architectures", "option": spec, **base, "archs": tuple(spec.split("+"))}
            for spec in p.ptm_arch_pools]
    plateau = {"train_epochs": p.ptm_plateau_epochs} if p.ptm_plateau_epochs else {}   # one longer PTM run
    out += [{"study": "ptm_epoch", "option": str(e), **base, "epoch": e, **plateau} for e in p.ptm_epoch_grid]
    for label in p.ptm_sources:
        domain, distance = source_of(label)
        out.append({"study": "source", "option": label, **base, "domain": domain, "distance": distance})
    out += [{"study": "alpha", "option": f"x{s:g}", **base, "scale": s} for s in p.ptm_alpha_scales]
    return out


def base_option(p) -> dict:
    """The reference arm: one distillation-network PTM at ptm_epoch, CE on the target (the published setting)."""
    return {"archs": (p.distill_arch,), "model_num": 1, "epoch": p.ptm_epoch, "domain": "target",
            "distance": "ce_code"}


def calibration_cell(p, seed: int, method: str, opt: dict, distill_seed: int | None = None):
    """The gradient norms (base method, unit-weight CLoM term of this option) at the method's initial set."""
    from ..cells import Cell
    from ..distill import METHODS

    d = seed if distill_seed is None else distill_seed
    args = {"method": method, "ipc": p.ptm_ipc,
            "data": grid.data_spec(grid.mtt_dataset(p) if method == "MTT" else p.dataset),
            "arch": p.distill_arch, "seed": d, "settings": METHODS[method].profile_kwargs(p, p.ptm_iterations),
            "guidance": {**guidance_spec(p, seed, opt, distill_seed=d), "alpha": 1.0}, "draws": p.ptm_calibration_draws}
    if method == "MTT":               # the experts of that distillation seed's set
        args["experts"] = grid.expert_cells(p, d)
    return Cell("calibration", args)


REFERENCE_METHOD = {"MTT": "DM"}   # no published α: the share of DM's published setting (clom_calibration)


def distance_option(p, opt: dict) -> dict:
    """What an option's α is calibrated on: the reference pool (one distillation-network PTM at ptm_epoch) of the
    option's domain, with its distance. So α is one per (domain, distance) and seed, shared by every pool, member
    count and PTM epoch a study varies — as the paper fixes α per distance — and a study compares its options at
    one α rather than at one gradient pull (a plateaued PTM's smaller CE gradient would otherwise buy it a larger α)."""
    return {**base_option(p), "domain": opt["domain"], "distance": opt["distance"]}


def alpha_for(p, seed: int, method: str, opt: dict, distill_seed: int | None = None, rule: str = ""):
    """`fixed`: the method's α (ptm_alpha_methods, else ptm_alpha) × the α study's scale; `calibrated`: the share
    rule of clom_calibration for the option's (domain, distance) (`distance_option`) against the published option
    of the reference method (the method itself; DM for MTT), every norm measured at the distillation seed's initial
    set — for CE on the target with a published α that is the published α itself."""
    from ..profiles import method_alpha

    rule = rule or p.ptm_alpha_rule     # 07 passes its own (ptm_cross_alpha_rule)
    if rule == "fixed":
        return method_alpha(p, method) * opt.get("scale", 1.0)
    if rule != "calibrated":
        raise ValueError(f"the α rule must be 'fixed' or 'calibrated', got {rule!r}")
    ref = REFERENCE_METHOD.get(method, method)
    return {"reference_alpha": method_alpha(p, ref) * opt.get("scale", 1.0),
            "reference": calibration_cell(p, seed, ref, base_option(p), distill_seed),
            "calibration": calibration_cell(p, seed, method, distance_option(p, opt), distill_seed)}


def member_windows(p, n: int) -> int:
    """E2: how many disjoint member windows the n-member arm averages over — ptm_member_windows, or with
    ptm_member_balance (max n / n) x that, so every arm uses the same members (no arm rests on the weakest ones)."""
    if not p.ptm_member_balance:
        return p.ptm_member_windows
    top = max(p.ptm_model_nums)
    if top % n:
        from ..errors import ElfkitError

        raise ElfkitError(f"ptm_member_balance needs every ptm_model_nums entry to divide the largest ({top}); "
                          f"{n} does not: change ptm_model_nums or set ptm_member_balance False")
    return top // n * p.ptm_member_windows


def guidance_spec(p, seed: int, opt: dict, window: int = 0, distill_seed: int | None = None) -> dict:
    """The CLoM arguments of one option: members [window·n, (window+1)·n) of each chosen architecture's pool (n =
    model_num; window 0 = the first n; the cells train whichever 01 has not) at snapshot `epoch`, one α for every
    architecture (docs/ptm.md §4; ptm_alpha here, which the callers replace with alpha_for's); the guidance's own
    draws follow the distillation seed. E4's options (`train_epochs`) take their snapshots from longer runs."""
    d, n, ep = opt["domain"], opt["model_num"], opt.get("train_epochs", 0)
    pools = {a: grid.ptm_members(p, seed, d, a, (window + 1) * n, ep)[window * n:] for a in opt["archs"]}
    return {"pools": pools, "source": grid.ptm_source(p, seed, d), "epoch": opt["epoch"], "alpha": p.ptm_alpha,
            "distance": opt["distance"], "model_num": n, "batch": p.ptm_batch,
            "seed": seed if distill_seed is None else distill_seed}


def protocol(p):
    """06's evaluation: the profile's, with ptm_eval_epochs and ptm_eval_models where they are set."""
    return grid.schedule(p, p.ptm_eval_epochs, p.ptm_eval_models)


def plan(p, seed: int) -> Plan:
    prot = protocol(p)
    test = grid.data_spec(p.dataset, 0, prot.test_per_class, seed)
    out = Plan(data=test)
    studies = STUDIES[:4] + (("alpha",) if p.ptm_alpha_scales else ())
    unknown = set(p.ptm_eval_studies) - set(studies)
    if unknown:
        raise ValueError(f"ptm_eval_studies: unknown studies {sorted(unknown)}; choose from {list(studies)}")
    longest = p.ptm_plateau_epochs or p.ptm_epochs
    if max((*p.ptm_epoch_grid, 0)) > longest or p.ptm_epoch > p.ptm_epochs:
        from ..errors import ElfkitError

        raise ElfkitError(f"a PTM snapshot past its run: ptm_epoch_grid {p.ptm_epoch_grid} must stay within "
                          f"ptm_plateau_epochs or ptm_epochs ({longest}) and ptm_epoch ({p.ptm_epoch}) within "
                          f"ptm_epochs ({p.ptm_epochs}); lengthen the run or shorten the grid")
    crossed = set(p.ptm_eval_studies or studies)    # these studies' arms are also evaluated on ptm_eval_archs
    archs = (p.distill_arch, *p.ptm_eval_archs)

    def archs_of(study: str) -> tuple:
        return archs if study in crossed else archs[:1]
    for method in p.ptm_methods:
        for d in p.ptm_seeds or (seed,):     # distillation seeds; PTMs and evaluation model seeds are shared
            dlab = {"distill_seed": d} if p.ptm_seeds else {}
            plain = grid.synset_cell(p, d, method, p.ptm_ipc, iterations=p.ptm_iterations)
            for arch in archs:
                for s in prot.seeds(seed):    # each model's record once per study (the studies share the baseline)
                    cell = grid.eval_cell(plain, test, arch, s, prot)
                    for study in (st for st in studies if arch in archs_of(st)):
                        out.row(cell, FIELDS, study=study, option="no CLoM", clom=False, method=method,
                                ipc=p.ptm_ipc, **dlab)
            for opt in options(p):
                windows = member_windows(p, opt["model_num"]) if opt["study"] == "initialisations" else 1
                for w in range(windows):
                    wlab = {"member_window": w} if windows > 1 else {}
                    g = {**guidance_spec(p, seed, opt, window=w, distill_seed=d),
                         "alpha": alpha_for(p, seed, method, opt, distill_seed=d)}
                    syn = grid.synset_cell(p, d, method, p.ptm_ipc, guidance=g, iterations=p.ptm_iterations)
                    grid.evaluations(out, syn, test, archs_of(opt["study"]), prot, seed, fields=FIELDS,
                                     study=opt["study"], option=opt["option"], clom=True, method=method, ipc=p.ptm_ipc,
                                     pool="+".join(opt["archs"]), model_num=opt["model_num"], ptm_epoch=opt["epoch"],
                                     ptm_train_epochs=opt.get("train_epochs") or p.ptm_epochs,
                                     source=g["source"]["dataset"], distance=opt["distance"],
                                     alpha=g["alpha"] if not isinstance(g["alpha"], dict) else None,
                                     **({"alpha_rule": "calibrated"} if isinstance(g["alpha"], dict) else {}),
                                     **dlab, **wlab)
    return out


def assemble(plan: Plan, outputs: dict, ctx, env) -> Output:
    """The rows; a calibrated arm's α (resolved from its calibration cells) and, once per calibration, the measured
    gradient norms (metrics grad_norm_base, grad_norm_clom); once per E4 PTM, its test accuracy per epoch."""
    from ..cell_kinds import alpha_of

    records, seen = [], set()
    for labels, cell, fields in plan.rows:
        g = cell.args["synset"].args.get("guidance")
        lab = dict(labels)
        if g and lab["study"] == "ptm_epoch":     # E4's x-axis: its PTM's test accuracy after every epoch
            for arch, members in g["pools"].items():
                for i, t in enumerate(members):
                    if t.key not in seen:
                        seen.add(t.key)
                        records += [{"study": "ptm_epoch", "option": "PTM", "method": lab["method"], "role": "ptm",
                                     "model": arch, "member": i, "epoch": int(e), "metric": "ptm_test_acc",
                                     "value": acc} for e, acc in outputs[t.key]["test_acc"].items()]
        if g and isinstance(g["alpha"], dict):
            lab["alpha"] = alpha_of(g, env)
            for role in ("reference", "calibration"):
                c = g["alpha"][role]
                if c.key not in seen:
                    seen.add(c.key)
                    o = outputs[c.key]
                    records += [{**lab, "method": c.args["method"], "calibration": role, "metric": m, "value": o[k]}
                                for m, k in (("grad_norm_base", "base_norm"), ("grad_norm_clom", "clom_norm"))]
        records += [{**lab, **{k: r[k] for k in fields if k in r}} for r in outputs[cell.key]["records"]]
    return Output(records)


def run(ctx) -> Output:
    return grid.run(ctx, plan, assemble)
