"""04_elf_ablations: ELF's knobs one at a time (docs/elf.md §7) on the study set, each cell against the baseline (loss
`task`) of the same evaluation model with paired seeds: loss composition, feature loss, λ_front, λ_rear, the
feature model's snapshot epoch and width, features of augmented images, features of the distillation ConvNet."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..results import Output
from . import cross_arch
from . import synsets

SLUG = "04_elf_ablations"
PRODUCTS = ["results/{profile}/04_elf_ablations/records.json", "figures/{profile}/04_elf_ablations_terms.png",
            "figures/{profile}/04_elf_ablations_sensitivity.png"]
# + the settings of study_method (DM now: dm_*), as in 03
USES = ("dataset", "distill_arch", "study_method", "study_ipc", "dm_iterations", "dm_batch_real", "dm_lr_img",
        "eval_epochs", "eval_lr", "eval_batch", "eval_dsa", "n_eval_models", "test_per_class", "feature_epochs",
        "feature_epoch", "feature_per_class", "ablation_archs", "ablation_lam_front", "ablation_lam_rear",
        "ablation_feature_epochs", "ablation_feature_widths", "ablation_distill_epochs")
ABLATIONS = ("loss_mode", "feature_loss", "lam_front", "lam_rear", "feature_epoch", "feature_width", "features",
             "feature_source")


@dataclass(frozen=True)
class Variant:
    """One evaluation configuration: the released ELF default except where an ablation changes a knob."""
    eval_arch: str
    feature_epoch: int            # snapshot of the feature model's trajectory
    mode: str = "front_rear_task"
    kind: str = "CE"
    lam_front: float = 1.0
    lam_rear: float = 1.0
    source: str = "wide"          # wide: the matching feature ConvNet (release); distill: the distillation ConvNet
    on_augmented: bool = False    # features of the augmented batch (flagged deviation, decision D2) instead of stored ones


def grid(p) -> list[tuple[str, str, str, Variant]]:
    """(ablation, variant label, ablation arch, Variant) for every cell of the profile's ablations, in table order.
    Feature width: the evaluation ConvNet has the feature model's width, since a split takes only features of its
    own shape (no adapter, docs/elf.md §5); each width gets its own baseline."""
    from .. import elf

    cells = []
    for arch in p.ablation_archs:
        d = Variant(arch, p.feature_epoch)
        cells += [("loss_mode", m, arch, replace(d, mode=m)) for m in elf.LOSS_MODES]
        cells += [("feature_loss", k, arch, replace(d, kind=k)) for k in elf.FEATURE_LOSSES]
        cells += [("lam_front", f"{v:g}", arch, replace(d, lam_front=v)) for v in p.ablation_lam_front]
        cells += [("lam_rear", f"{v:g}", arch, replace(d, lam_rear=v)) for v in p.ablation_lam_rear]
        cells += [("feature_epoch", str(e), arch, replace(d, feature_epoch=e)) for e in p.ablation_feature_epochs]
        cells += [("features", "un-augmented", arch, d), ("features", "augmented", arch, replace(d, on_augmented=True))]
        distill = replace(d, source="distill", feature_epoch=p.ablation_distill_epochs)
        cells += [("feature_source", "wide", arch, d), ("feature_source", "distill", arch, distill)]
    for w in p.ablation_feature_widths:
        d = Variant(f"ConvNetW{w}", p.feature_epoch)
        cells += [("feature_width", f"W{w}", "ConvNetW*", replace(d, mode="task")),
                  ("feature_width", f"W{w}", "ConvNetW*", d)]
    return cells


def key(v: Variant, channel: int = 1, im_size=(28, 28)) -> tuple:
    """Cells with equal keys train identical models (same network, same loss), so they are evaluated once: e.g.
    ConvNetW128 is ConvNet, and the baseline ignores every feature knob."""
    from .. import study

    sig = study.signature(v.eval_arch, channel, im_size)
    return (sig, "task") if v.mode == "task" else (sig, replace(v, eval_arch=""))


def feature_getter(ctx, data, v: Variant, cache: dict):
    """arch -> feature model for the variant's source and snapshot. The default is the cached getter of 01/03;
    the other snapshots come from ONE trajectory that keeps every epoch of the grid."""
    from .. import data as datasets, elf

    p = ctx.profile
    k = (v.source, v.feature_epoch)
    if k not in cache:
        if v.source == "wide" and v.feature_epoch == p.feature_epoch:
            cache[k] = cross_arch.feature_models(ctx, data)
        else:
            wide = v.source == "wide"
            train = datasets.subset(data, p.feature_per_class, 0, seed=ctx.seed)   # as cross_arch.feature_models
            cache[k] = elf.feature_models(
                train, ctx.runs_dir / "feature_models", epoch=v.feature_epoch, source=v.source,
                epochs=p.feature_epochs if wide else p.ablation_distill_epochs, distill_arch=p.distill_arch,
                snapshots=tuple(p.ablation_feature_epochs) if wide else (), device=ctx.device, train_missing=True,
                progress=ctx.progress)
    return cache[k]


def feature_model_name(v: Variant, data, distill_arch: str) -> str:
    from .. import models

    if v.source == "distill":
        return distill_arch
    return models.matching_feature_model(v.eval_arch, data.spec.channel, data.spec.im_size)


def evaluate_variant(ctx, data, test, synset, v: Variant, getters: dict, common: dict) -> list[dict]:
    """Records of one cell: n models trained with the variant's loss, or one 'elf_unavailable' row with the reason
    when no feature model fits the architecture's split (reported, not raised)."""
    from .. import elf

    p = ctx.profile
    if v.mode == "task":
        return elf.evaluate(synset, test, [v.eval_arch], None, mode="task", **common)
    why = elf.unavailable(v.eval_arch, test, v.source, p.distill_arch)
    if why:
        return [{"eval_arch": v.eval_arch, "eval_mode": "elf", "metric": "elf_unavailable", "reason": why}]
    get = feature_getter(ctx, data, v, getters)
    return elf.evaluate(synset, test, [v.eval_arch], get, mode=v.mode, kind=v.kind, lam_front=v.lam_front,
                        lam_rear=v.lam_rear, on_augmented=v.on_augmented, **common)


def _record(ablation, label, group, v: Variant, r: dict, test, p, ipc) -> dict:
    from .. import models

    rec = {"method": p.study_method, "ipc": ipc, "dataset": test.name, "ablation": ablation, "variant": label,
           "ablation_arch": group, "eval_arch": v.eval_arch, "eval_mode": r["eval_mode"]}
    if v.mode != "task":   # the knobs mean something only for ELF rows
        rec.update(loss_mode=v.mode, feature_loss=v.kind, lam_front=v.lam_front, lam_rear=v.lam_rear,
                   feature_epoch=v.feature_epoch, feature_source=v.source, on_augmented=v.on_augmented)
        if r["metric"] != "elf_unavailable":
            c, hw = test.spec.channel, test.spec.im_size
            rec.update(feature_model=feature_model_name(v, test, p.distill_arch),
                       feature_width=models.feature_shape(v.eval_arch, c, hw)[0])
    rec.update({k: r[k] for k in ("model_seed", "metric", "value", "reason") if k in r})
    return rec


def run(ctx) -> Output:
    from .. import data as datasets

    p = ctx.profile
    data = datasets.load(p.dataset, device=ctx.device)
    test = datasets.subset(data, 0, p.test_per_class, seed=ctx.seed)
    synset = synsets.distilled(ctx, data, p.study_method, p.study_ipc)
    common = dict(n_models=p.n_eval_models, seed=ctx.seed, epochs=p.eval_epochs, lr=p.eval_lr,
                  batch_size=p.eval_batch, dsa=p.eval_dsa, test_batch=p.test_batch, device=ctx.device,
                  progress=ctx.progress)
    getters, done, records = {}, {}, []
    for ablation, label, group, v in grid(p):
        k = key(v, data.spec.channel, data.spec.im_size)
        if k not in done:
            done[k] = evaluate_variant(ctx, data, test, synset, v, getters, common)
        records += [_record(ablation, label, group, v, r, test, p, p.study_ipc) for r in done[k]]
    return Output(records, data_source=test.source)
