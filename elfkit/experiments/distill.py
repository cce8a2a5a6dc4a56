"""02_distill: every distillation method × IPC of the profile on the distillation ConvNet, evaluated with each
method's published protocol (docs/base-methods.md §8) beside the published Fashion-MNIST numbers; random real as well."""
from __future__ import annotations

from ..results import Output
from . import synsets

SLUG = "02_distill"
PRODUCTS = ["results/{profile}/02_distill/records.json", "figures/{profile}/02_distill_synsets.png",
            "figures/{profile}/02_distill_accuracy.png", "figures/{profile}/02_distill_loss.png"]
USES = ("dataset", "ipcs", "distill_arch", "dm_iterations", "dm_batch_real", "dm_lr_img", "dc_iterations",
        "dc_batch_real", "dc_lr_img", "dc_metric", "dc_init", "dc_loop_cap", "mtt_experts", "mtt_buffer_epochs",
        "mtt_expert_per_class", "mtt_iterations", "mtt_syn_steps", "mtt_expert_epochs", "mtt_max_start_epoch",
        "mtt_lr_img", "mtt_lr_lr", "mtt_lr_teacher", "mtt_batch_syn", "eval_epochs", "eval_epochs_noaug",
        "eval_lr", "eval_batch", "eval_dsa", "n_eval_models")
MAX_ARTEFACT_IPC = 10   # sets up to this IPC are committed with the records (the figure is redrawn from them)


def protocol(method: str, dataset: str, p) -> dict:
    """The evaluation each method is published with (§8): DC (and the random-real row of the DC paper) train
    without augmentation for eval_epochs_noaug on Fashion-MNIST, SVHN and CIFAR; DSA, DM and MTT with DSA for
    eval_epochs (MTT at its learned step size, applied by evaluate_synset). `eval_dsa=False` turns DSA off for all."""
    if method in ("DC", "random_real"):
        return {"dsa": False, "epochs": p.eval_epochs_noaug, "protocol": "none"}
    return {"dsa": p.eval_dsa, "epochs": p.eval_epochs, "protocol": "dsa" if p.eval_dsa else "none"}


def synset_file(method: str, ipc: int) -> str:
    return f"synset_{method.lower()}_ipc{ipc}.safetensors"


def run(ctx) -> Output:
    from .. import data as datasets, distill
    from ..evaluate import evaluate_synset, random_real

    p = ctx.profile
    data = datasets.load(p.dataset, device=ctx.device)
    records, artefacts = [], []
    for ipc in p.ipcs:
        sets = {m: synsets.distilled(ctx, data, m, ipc) for m in distill.available()}
        for method, s in sets.items():
            records += [{"method": method, "ipc": ipc, "metric": "distill_loss", "iteration": c[0], "value": c[1]}
                        for c in s.meta["loss_curve"]]
            if ipc <= MAX_ARTEFACT_IPC:
                s.save(ctx.results_dir / synset_file(method, ipc))
                artefacts.append(synset_file(method, ipc))
        sets["random_real"] = random_real(data, ipc, ctx.seed)
        for method, s in sets.items():
            prot = protocol(method, data.name, p)
            lr = float(s.meta.get("syn_lr", p.eval_lr))
            for r in evaluate_synset(s, data, [p.distill_arch], n_models=p.n_eval_models, seed=ctx.seed,
                                     epochs=prot["epochs"], lr=p.eval_lr, batch_size=p.eval_batch, dsa=prot["dsa"],
                                     test_batch=p.test_batch, device=ctx.device, progress=ctx.progress):
                records.append({"method": method, "ipc": ipc, "dataset": data.name, "eval_protocol": prot["protocol"],
                                "eval_epochs": prot["epochs"], "eval_lr": lr, **r})
    return Output(records, artefacts=artefacts, data_source=data.source)


def committed_sets(res) -> dict:
    """The committed synthetic sets of the largest IPC among the artefacts, by method (the figure's input)."""
    from ..synset import read_arrays

    ipcs = [int(a.rsplit("ipc", 1)[1].split(".")[0]) for a in res.artefacts]
    top = max(ipcs)
    sets = [read_arrays(res.artefact(a)) for a, i in zip(res.artefacts, ipcs) if i == top]
    return {s.meta["method"]: s for s in sets}
