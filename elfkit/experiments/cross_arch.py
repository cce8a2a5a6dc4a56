"""03_cross_arch: the ELF main table — every distillation method × IPC, evaluated on each architecture with the
standard protocol (baseline) and with ELF, identical seeds/epochs/augmentation; plus the random-real row."""
from __future__ import annotations

from ..results import Output
from . import synsets

SLUG = "03_cross_arch"
PRODUCTS = ["results/{profile}/03_cross_arch/records.json", "figures/{profile}/03_cross_arch_delta.png",
            "figures/{profile}/03_cross_arch_bars.png"]
USES = ("dataset", "ipcs", "distill_arch", "cross_archs", "dm_iterations", "dm_batch_real", "dm_lr_img",
        "eval_epochs", "eval_lr", "eval_batch", "eval_dsa", "n_eval_models", "test_per_class", "feature_epochs",
        "feature_epoch", "feature_per_class", "dc_iterations", "dc_batch_real", "dc_lr_img", "dc_metric", "dc_init",
        "dc_loop_cap", "mtt_experts", "mtt_buffer_epochs", "mtt_expert_per_class", "mtt_iterations", "mtt_syn_steps",
        "mtt_expert_epochs", "mtt_max_start_epoch", "mtt_lr_img", "mtt_lr_lr", "mtt_lr_teacher", "mtt_batch_syn")


def feature_models(ctx, data):
    """The ELF feature models of the profile (shared with 01_experts through the runs/ cache)."""
    from .. import data as datasets, elf

    p = ctx.profile
    train = datasets.subset(data, p.feature_per_class, 0, seed=ctx.seed)
    return elf.feature_models(train, ctx.runs_dir / "feature_models", epoch=p.feature_epoch, epochs=p.feature_epochs,
                              device=ctx.device, train_missing=True, progress=ctx.progress)


def run(ctx) -> Output:
    from .. import data as datasets, distill, elf
    from ..evaluate import evaluate_synset, random_real

    p = ctx.profile
    data = datasets.load(p.dataset, device=ctx.device)
    test = datasets.subset(data, 0, p.test_per_class, seed=ctx.seed)
    fm = feature_models(ctx, data)
    common = dict(n_models=p.n_eval_models, seed=ctx.seed, epochs=p.eval_epochs, lr=p.eval_lr,
                  batch_size=p.eval_batch, dsa=p.eval_dsa, test_batch=p.test_batch, device=ctx.device,
                  progress=ctx.progress)
    records = []
    for ipc in p.ipcs:
        sets = {m: synsets.distilled(ctx, data, m, ipc) for m in distill.available()}
        sets["random_real"] = random_real(data, ipc, ctx.seed)
        for method, s in sets.items():
            for arch in p.cross_archs:
                rows = [dict(r, eval_mode="baseline") for r in evaluate_synset(s, test, [arch], **common)]
                rows += elf.evaluate(s, test, [arch], fm, mode="front_rear_task", kind="CE", **common)
                records += [{"method": method, "ipc": ipc, "dataset": data.name, "eval_arch": r["eval_arch"],
                             "eval_mode": r["eval_mode"], "model_seed": r["model_seed"], "metric": r["metric"],
                             "value": r["value"]} for r in rows]
    return Output(records, data_source=test.source)
