"""04_elf_ablations: ELF's knobs one at a time (docs/elf.md §7) on the study set, each cell against the baseline (loss
`task`) of the same evaluation model with paired seeds: loss composition, feature loss, λ_front, λ_rear, the
feature model's snapshot epoch and width, features of augmented images, features of the distillation ConvNet."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..cells import Plan
from ..results import Output
from . import grid

SLUG = "04_elf_ablations"
PRODUCTS = ["results/{profile}/04_elf_ablations/records.json", "figures/{profile}/04_elf_ablations_terms.png",
            "figures/{profile}/04_elf_ablations_sensitivity.png"]
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


def default_epoch(p) -> int:
    """The snapshot every row but feature_epoch's reads: ablation_feature's, else the elf section's."""
    return grid.feature_spec(p.ablation_feature)[2] if p.ablation_feature else p.feature_epoch


def ablation_grid(p) -> list[tuple[str, str, str, Variant]]:
    """(ablation, variant label, ablation arch, Variant) for every cell of the profile's ablations, in table order.
    Feature width: the evaluation ConvNet has the feature model's width, since a split takes only features of its
    own shape (no adapter, docs/elf.md §5); each width gets its own baseline."""
    from .. import elf

    cells = []
    for arch in p.ablation_archs:
        d = Variant(arch, default_epoch(p))
        cells += [("loss_mode", m, arch, replace(d, mode=m)) for m in elf.LOSS_MODES]
        cells += [("feature_loss", k, arch, replace(d, kind=k)) for k in elf.FEATURE_LOSSES]
        cells += [("lam_front", f"{v:g}", arch, replace(d, lam_front=v)) for v in p.ablation_lam_front]
        cells += [("lam_rear", f"{v:g}", arch, replace(d, lam_rear=v)) for v in p.ablation_lam_rear]
        cells += [("feature_epoch", str(e), arch, replace(d, feature_epoch=e)) for e in p.ablation_feature_epochs]
        cells += [("features", "un-augmented", arch, d), ("features", "augmented", arch, replace(d, on_augmented=True))]
        distill = replace(d, source="distill", feature_epoch=p.ablation_distill_epochs)
        cells += [("feature_source", "wide", arch, d), ("feature_source", "distill", arch, distill)]
    for w in p.ablation_feature_widths:
        d = Variant(f"ConvNetW{w}", default_epoch(p))
        cells += [("feature_width", f"W{w}", "ConvNetW*", replace(d, mode="task")),
                  ("feature_width", f"W{w}", "ConvNetW*", d)]
    return cells


def feature_model_name(v: Variant, c: int, hw, distill_arch: str) -> str:
    from .. import models

    if v.source == "distill":
        return distill_arch
    return models.matching_feature_model(v.eval_arch, c, hw)


def elf_of(p, seed: int, v: Variant) -> dict:
    """The ELF arguments of a variant: the default snapshot reads 03's feature model; other snapshots come from ONE
    trajectory that keeps every epoch of the grid; `distill` reads the distillation ConvNet trained as an expert.
    With ablation_feature every wide variant reads that spec's training (08's, shared) and `distill` trains on its
    data."""
    args = dict(mode=v.mode, kind=v.kind, lam_front=v.lam_front, lam_rear=v.lam_rear, on_augmented=v.on_augmented,
                source=v.source, epoch=v.feature_epoch)
    if p.ablation_feature:
        spec = grid.feature_spec(p.ablation_feature)
        if v.source == "distill":
            traj = grid.feature_cell(p, seed, v.eval_arch, source="distill", epoch=v.feature_epoch, per_class=spec[0])
        else:
            traj = grid.spec_features(p, seed, v.eval_arch, (*spec[:2], v.feature_epoch),
                                      extra=tuple(p.ablation_feature_epochs))
        return grid.elf_args(p, seed, v.eval_arch, features=traj, **args)
    wide_default = v.source == "wide" and v.feature_epoch == p.feature_epoch
    snaps = () if wide_default or v.source == "distill" else tuple(p.ablation_feature_epochs)
    return grid.elf_args(p, seed, v.eval_arch, snapshots=snaps, **args)


def labels(ablation, label, group, v: Variant, p, c: int, hw, available: bool) -> dict:
    from .. import models

    rec = {"method": p.study_method, "ipc": p.study_ipc, "dataset": grid.name_of(p.dataset), "ablation": ablation,
           "variant": label, "ablation_arch": group, "eval_arch": v.eval_arch,
           "eval_mode": "baseline" if v.mode == "task" else "elf"}
    if v.mode != "task":   # the knobs mean something only for ELF rows
        rec.update(loss_mode=v.mode, feature_loss=v.kind, lam_front=v.lam_front, lam_rear=v.lam_rear,
                   feature_epoch=v.feature_epoch, feature_source=v.source, on_augmented=v.on_augmented)
        if available:
            rec.update(feature_model=feature_model_name(v, c, hw, p.distill_arch),
                       feature_width=models.feature_shape(v.eval_arch, c, hw)[0])
        if available and p.ablation_feature:   # which training the row read, as 03/08 rows say it
            per_class, epochs, _ = grid.feature_spec(p.ablation_feature)
            rec.update(feature_per_class=per_class,
                       feature_train_epochs=p.ablation_distill_epochs if v.source == "distill" else epochs)
    return rec


def protocol(p):
    """04's evaluation: the standard protocol, ablation_epochs long with ablation_models models where they are set."""
    return grid.schedule(p, p.ablation_epochs, p.ablation_models)


def check(p) -> None:
    """The snapshots the feature_epoch rows read must exist in ablation_feature's training."""
    from ..errors import ElfkitError

    if p.ablation_feature:
        epochs = grid.feature_spec(p.ablation_feature)[1]
        if not set(p.ablation_feature_epochs) <= set(range(epochs + 1)):
            raise ElfkitError(f"ablation_feature_epochs {p.ablation_feature_epochs} must lie in 0..{epochs}, the "
                              f"epochs of ablation_feature {p.ablation_feature!r}")
    grid.distinct_seeds("ablation_seeds", p.ablation_seeds)


def plan(p, seed: int) -> Plan:
    """Every cell of the grid, per distillation seed (ablation_seeds; () = the run's seed). Variants that train
    identical models (one network under study.canonical's name; a baseline ignores every feature knob) build
    identical cells, so they are evaluated once and the rows keep their own labels; a variant whose split no feature
    model fits gets an 'elf_unavailable' row."""
    from types import SimpleNamespace

    from .. import elf, study

    check(p)
    c, hw = grid.spec_of(p.dataset)
    shape = SimpleNamespace(spec=SimpleNamespace(channel=c, im_size=hw))
    prot = protocol(p)
    test = grid.data_spec(p.dataset, 0, prot.test_per_class, seed)
    out = Plan(data=test)
    for d in p.ablation_seeds or (seed,):
        syn = grid.synset_cell(p, d, p.study_method, p.study_ipc)
        unit = {"distill_seed": d} if p.ablation_seeds else {}
        for ablation, label, group, v in ablation_grid(p):
            why = "" if v.mode == "task" else elf.unavailable(v.eval_arch, shape, v.source, p.distill_arch)
            lab = {**labels(ablation, label, group, v, p, c, hw, not why), **unit}
            if why:
                out.literal([{"metric": "elf_unavailable", "reason": why}], **lab)
                continue
            u = replace(v, eval_arch=study.canonical(v.eval_arch, c, hw))   # equal keys -> the same cells
            grid.evaluations(out, syn, test, [u.eval_arch], prot, seed, fields=FIELDS, **lab,
                             elf=None if u.mode == "task" else (lambda _a, u=u: elf_of(p, seed, u)))
    return out


FIELDS = ("model_seed", "metric", "value", "reason")


def assemble(plan: Plan, outputs: dict, ctx, env) -> Output:
    """The table's rows; with ablation_feature set, ELF rows also carry their feature model's measured test accuracy
    (the committed records of the elf section's feature models keep their columns)."""
    if not ctx.profile.ablation_feature:
        return Output(plan.records(outputs))
    return Output(plan.records(outputs, lambda labels, cell: grid.feature_acc(cell, outputs)))


def run(ctx) -> Output:
    return grid.run(ctx, plan, assemble)
