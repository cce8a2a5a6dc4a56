"""00_quickstart: DM at the profile's IPC on Fashion-MNIST, evaluated on ConvNet and ResNet18 beside random real."""
from __future__ import annotations

from ..cells import Plan
from ..results import Output
from . import grid

SLUG = "00_quickstart"
PRODUCTS = ["results/{profile}/00_quickstart/records.json",
            "results/{profile}/00_quickstart/synset_dm.safetensors",
            "figures/{profile}/00_quickstart_synset.png",
            "figures/{profile}/00_quickstart_accuracy.png",
            "figures/{profile}/00_quickstart_dm_loss.png"]
SYNSET_FILE = "synset_dm.safetensors"


def plan(p, seed: int) -> Plan:
    from ..protocol import EvalProtocol

    out = Plan(data=grid.data_spec(p.dataset))
    prot = EvalProtocol.of(p, test_per_class=0)
    dm = grid.synset_cell(p, seed, "DM", p.ipc)      # shared with 02/03 when their settings agree
    out.extra.append(dm)
    for method, syn in (("DM", dm), ("random_real", grid.synset_cell(p, seed, "random_real", p.ipc))):
        grid.evaluations(out, syn, out.data, p.eval_archs, prot, seed, method=method, ipc=p.ipc, dataset=grid.name_of(p.dataset),
                         distill_arch=p.distill_arch if method == "DM" else "-")
    return out


def assemble(plan: Plan, outputs: dict, ctx, env) -> Output:
    import shutil

    dm = plan.extra[0]
    records = [{"method": "DM", "ipc": dm.args["ipc"], "metric": "dm_loss", "iteration": it, "value": v}
               for it, v in outputs[dm.key]["loss_curve"]]
    shutil.copyfile(env.store.artefact(dm, ".safetensors"), ctx.results_dir / SYNSET_FILE)
    return Output(records + plan.records(outputs), artefacts=[SYNSET_FILE])


def run(ctx) -> Output:
    return grid.run(ctx, plan, assemble)
