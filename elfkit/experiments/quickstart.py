"""00_quickstart: DM at the profile's IPC on Fashion-MNIST, evaluated on ConvNet and ResNet18 beside random real."""
from __future__ import annotations

from ..results import Output
from . import synsets

SLUG = "00_quickstart"
PRODUCTS = ["results/{profile}/00_quickstart/records.json",
            "results/{profile}/00_quickstart/synset_dm.safetensors",
            "figures/{profile}/00_quickstart_synset.png",
            "figures/{profile}/00_quickstart_accuracy.png",
            "figures/{profile}/00_quickstart_dm_loss.png"]
SYNSET_FILE = "synset_dm.safetensors"
USES = ("dataset", "ipc", "distill_arch", "eval_archs", "dm_iterations", "dm_batch_real", "dm_lr_img", "eval_epochs",
        "eval_lr", "eval_batch", "eval_dsa", "n_eval_models")   # the profile fields that shape the results


def run(ctx) -> Output:
    from .. import data as datasets
    from ..evaluate import evaluate_synset, random_real

    p = ctx.profile
    data = datasets.load(p.dataset, device=ctx.device)
    syn = synsets.distilled(ctx, data, "DM", p.ipc)   # checkpointed; shared with 03_cross_arch
    syn.save(ctx.results_dir / SYNSET_FILE)
    records = [{"method": "DM", "ipc": p.ipc, "metric": "dm_loss", "iteration": it, "value": v}
               for it, v in syn.meta["loss_curve"]]
    sets = {"DM": syn, "random_real": random_real(data, p.ipc, ctx.seed)}
    for method, s in sets.items():
        for r in evaluate_synset(s, data, p.eval_archs, n_models=p.n_eval_models, seed=ctx.seed,
                                 epochs=p.eval_epochs, lr=p.eval_lr, batch_size=p.eval_batch, dsa=p.eval_dsa,
                                 test_batch=p.test_batch, device=ctx.device, progress=ctx.progress):
            records.append({"method": method, "ipc": p.ipc, "dataset": data.name,
                            "distill_arch": p.distill_arch if method == "DM" else "-", **r})
    return Output(records, artefacts=[SYNSET_FILE], data_source=data.source)
