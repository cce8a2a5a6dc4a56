"""07_ptm_cross_arch: cross-architecture accuracy of sets distilled with and without CLoM (docs/ptm.md §7 E7: the
full architecture pool, all members, the profile's PTM epoch), each evaluated with the standard protocol and with
ELF — so the combination CLoM-distilled + ELF-evaluated sits beside both parts alone."""
from __future__ import annotations

from ..cells import Plan
from .. import profiles
from ..results import Output
from . import grid

SLUG = "07_ptm_cross_arch"
PRODUCTS = ["results/{profile}/07_ptm_cross_arch/records.json", "figures/{profile}/07_ptm_cross_arch.png"]
FIELDS = ("eval_arch", "eval_mode", "model_seed", "metric", "value")


def best_options(records_path, method: str, arch: str) -> dict:
    """From 06's records: per study, the option with the highest mean test accuracy of `method` on `arch` (models
    and distillation seeds pooled), computed — never typed. Returns {study: option row} and the records' sha256."""
    import json

    from ..errors import ElfkitError

    try:
        doc = json.loads(open(records_path).read())
    except OSError:
        raise ElfkitError(f"ptm_pool_from='06' needs 06_ptm_options' records ({records_path}); run notebook 06 "
                          "first") from None
    acc: dict = {}
    for r in doc["records"]:
        if r["metric"] == "test_acc" and r.get("clom") and r["method"] == method and r["eval_arch"] == arch:
            acc.setdefault((r["study"], r["option"]), []).append(r)
    best = {}
    for (study, option), rows in acc.items():
        mean = sum(r["value"] for r in rows) / len(rows)
        if study not in best or mean > best[study][0]:
            best[study] = (mean, rows[0])
    return {s: r for s, (_, r) in best.items()}, doc["sha256"]


def chosen_guidance(p, seed: int, method: str, records_path,
                    distill_seed: int | None = None) -> tuple[dict, str, str]:
    """The CLoM spec of 06's winners: the best architecture pool, its best number of initialisations, the best PTM
    epoch, and the best source (domain and distance); α by ptm_cross_alpha_rule (fixed, or calibrated for the chosen
    domain and distance by 06's rule). The options are `method`'s own best, or those of ptm_choose_from's method (e.g.
    DM's for MTT, which 06 need not study). The chosen epoch is a snapshot of the run 06 measured it on (E4's longer
    run, when ptm_plateau_epochs made one) — or, at an epoch within the pools' length, of the pools' own run, whose
    snapshots up to there are the same weights (same seed, data order and lr until the first milestone past the
    pools' length), so a choice of an early epoch trains no PTM for the long run's length. The label names the
    choice; the key holds only the choice (not the records' checksum, which a rewrite of 06's records changes)."""
    from .ptm_options import alpha_for, guidance_spec, source_of

    chooser = p.ptm_choose_from or method
    best, sha = best_options(records_path, chooser, p.distill_arch)
    missing = [s for s in ("architectures", "initialisations", "ptm_epoch", "source") if s not in best]
    if missing:
        from ..errors import ElfkitError

        raise ElfkitError(f"06's records have no {chooser} arms for {', '.join(missing)}; add {chooser} to "
                          "ptm_methods and rerun 06, set ptm_choose_from to a method 06 studied, or take "
                          f"{method} out of ptm_cross_methods")
    archs = tuple(best["architectures"]["pool"].split("+"))
    n = int(best["initialisations"]["model_num"])
    epoch = int(best["ptm_epoch"]["ptm_epoch"])
    domain, distance = source_of(best["source"]["option"])
    opt = {"archs": archs, "model_num": n, "epoch": epoch, "domain": domain, "distance": distance}
    trained = int(best["ptm_epoch"].get("ptm_train_epochs") or p.ptm_epochs)   # the very run 06 measured it on
    if trained != p.ptm_epochs and epoch > p.ptm_epochs:   # within the pools' length both runs hold the same weights
        opt["train_epochs"] = trained
    if epoch > trained:
        from ..errors import ElfkitError

        raise ElfkitError(f"06's best PTM epoch {epoch} is past its run ({trained} epochs); rerun 06 with this "
                          "profile's ptm_epochs / ptm_plateau_epochs")
    spec = {**guidance_spec(p, seed, opt, distill_seed=distill_seed),
            "alpha": alpha_for(p, seed, method, opt, distill_seed=distill_seed, rule=p.ptm_cross_alpha_rule)}
    by = "" if chooser == method else f", chosen by {chooser}"
    return spec, f"{'+'.join(archs)} x{n} @{epoch} {best['source']['option']} (06's best{by})", sha


def plan(p, seed: int) -> Plan:
    from .. import paths

    prot = grid.schedule(p, p.ptm_cross_eval_epochs, p.ptm_cross_eval_models)
    test = grid.data_spec(p.dataset, 0, prot.test_per_class, seed)
    out = Plan(data=test)
    if p.ptm_pool_from not in ("profile", "06"):
        raise ValueError(f"ptm_pool_from must be 'profile' or '06', got {p.ptm_pool_from!r}")
    src, pools = grid.ptm_cells(p, seed, "target") if p.ptm_pool_from == "profile" else (None, {})
    runs = [(m, d) for m in p.ptm_cross_methods or p.ptm_methods for d in p.ptm_cross_seeds or (seed,)]
    for method, d in runs:           # d: the distillation seed (ptm_cross_seeds; PTMs and model seeds are shared)
        dlab = {"distill_seed": d} if p.ptm_cross_seeds else {}
        if p.ptm_pool_from == "06":
            records = paths.results_dir(profiles.label(p), "06_ptm_options") / "records.json"
            g, pool, sha = chosen_guidance(p, seed, method, records, distill_seed=d if p.ptm_cross_seeds else None)
            dlab["chosen_from"] = sha
        else:
            if p.ptm_cross_alpha_rule != "fixed" or (method == "MTT" and "MTT" not in profiles.assignments(
                    p.ptm_alpha_methods)):
                from ..errors import ElfkitError

                raise ElfkitError(f"07's profile pool takes a fixed α, and {method} has none that fits "
                                  f"(ptm_cross_alpha_rule {p.ptm_cross_alpha_rule!r}); use ptm_pool_from='06' "
                                  "(calibrated for its chosen option), or for MTT give it one in ptm_alpha_methods, "
                                  "e.g. ('MTT=1',)")
            g = {"pools": pools, "source": src, "epoch": p.ptm_epoch, "alpha": profiles.method_alpha(p, method),
                 "distance": "ce_code", "model_num": None, "batch": p.ptm_batch, "seed": d}
            pool = "+".join(pools)
        sets = {"no CLoM": grid.synset_cell(p, d, method, p.ptm_ipc, iterations=p.ptm_iterations),
                "CLoM": grid.synset_cell(p, d, method, p.ptm_ipc, guidance=g, iterations=p.ptm_iterations)}
        for label, syn in sets.items():
            grid.baseline_and_elf(p, out, syn, test, p.cross_archs, prot, seed, FIELDS, p.ptm_cross_feature,
                                  method=method, ipc=p.ptm_ipc, distill=label, pool=pool, **dlab)
    return out


def assemble(plan: Plan, outputs: dict, ctx, env) -> Output:
    """The rows, each CLoM row with the α its set was distilled with (a calibrated α resolved from its cells) and,
    with ptm_cross_feature set, each ELF row with its feature model's measured test accuracy."""
    from ..cell_kinds import alpha_of

    def extra(labels: dict, cell) -> dict:
        g = cell.args["synset"].args.get("guidance")
        return {**({"alpha": alpha_of(g, env)} if g else {}),
                **(grid.feature_acc(cell, outputs) if "feature_epoch" in labels else {})}

    return Output(plan.records(outputs, extra))


def run(ctx) -> Output:
    return grid.run(ctx, plan, assemble)
