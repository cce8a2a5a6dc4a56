"""02_distill: every distillation method × IPC of the profile on the distillation ConvNet, evaluated with each
method's published protocol (docs/base-methods.md §8) beside the published Fashion-MNIST numbers; random real as well."""
from __future__ import annotations

from ..cells import Plan
from ..results import Output
from . import grid

SLUG = "02_distill"
PRODUCTS = ["results/{profile}/02_distill/records.json", "figures/{profile}/02_distill_synsets.png",
            "figures/{profile}/02_distill_accuracy.png", "figures/{profile}/02_distill_loss.png"]
MAX_ARTEFACT_IPC = 10   # sets up to this IPC are committed with the records (the figure is redrawn from them)


def synset_file(method: str, ipc: int) -> str:
    return f"synset_{method.lower()}_ipc{ipc}.safetensors"


def plan(p, seed: int) -> Plan:
    from ..distill import available
    from ..protocol import EvalProtocol

    out = Plan(data=grid.data_spec(p.dataset))
    for ipc in p.ipcs:
        sets = {m: grid.synset_cell(p, seed, m, ipc) for m in available()}
        out.extra += list(sets.values())
        sets["random_real"] = grid.synset_cell(p, seed, "random_real", ipc)
        for method, syn in sets.items():
            prot = EvalProtocol.published(method, p)
            grid.evaluations(out, syn, out.data, [p.distill_arch], prot, seed, method=method, ipc=ipc,
                             dataset=grid.name_of(p.dataset), eval_protocol=prot.name, eval_epochs=prot.epochs,
                             eval_lr=prot.lr)
    return out


def assemble(plan: Plan, outputs: dict, ctx, env) -> Output:
    """Loss curves of every distilled set, the evaluation rows (with the learned step size an MTT set is
    evaluated at), and the sets up to MAX_ARTEFACT_IPC copied beside the records."""
    import shutil

    records, artefacts = [], []
    for cell in plan.extra:
        a, o = cell.args, outputs[cell.key]
        records += [{"method": a["method"], "ipc": a["ipc"], "metric": "distill_loss", "iteration": c[0],
                     "value": c[1]} for c in o["loss_curve"]]
        if a["ipc"] <= MAX_ARTEFACT_IPC:
            name = synset_file(a["method"], a["ipc"])
            shutil.copyfile(env.store.artefact(cell, ".safetensors"), ctx.results_dir / name)
            artefacts.append(name)
    rows = []
    for labels, cell, fields in plan.rows:     # an MTT set is evaluated at its learned step size
        syn_lr = outputs[cell.args["synset"].key].get("syn_lr")
        lab = {**labels, "eval_lr": float(syn_lr)} if syn_lr is not None else labels
        rows += [{**lab, **r} for r in outputs[cell.key]["records"]]
    return Output(_loss_first(records, rows), artefacts=artefacts)


def _loss_first(loss: list[dict], rows: list[dict]) -> list[dict]:
    """Records in the order of earlier versions: per IPC, the loss curves, then that IPC's evaluations."""
    out = []
    for ipc in dict.fromkeys(r["ipc"] for r in loss + rows):
        out += [r for r in loss if r["ipc"] == ipc] + [r for r in rows if r["ipc"] == ipc]
    return out


def run(ctx) -> Output:
    return grid.run(ctx, plan, assemble)


def committed_sets(res) -> dict:
    """The committed synthetic sets of the largest IPC among the artefacts, by method (the figure's input)."""
    from ..synset import read_arrays

    ipcs = [int(a.rsplit("ipc", 1)[1].split(".")[0]) for a in res.artefacts]
    top = max(ipcs)
    sets = [read_arrays(res.artefact(a)) for a, i in zip(res.artefacts, ipcs) if i == top]
    return {s.meta["method"]: s for s in sets}
