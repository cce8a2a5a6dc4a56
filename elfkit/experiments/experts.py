"""01_experts: the real-data models later notebooks need, trained once and cached under results/<profile>/runs/ —
the ELF feature models (one ConvNet per split width of the cross-architecture table), the MTT expert
trajectories (N experts × E epochs of the distillation network, docs/base-methods.md §6.1) and the CLoM pools of
pre-trained models on the target and on an out-of-domain source (docs/ptm.md §5)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..results import Output
from . import cross_arch

if TYPE_CHECKING:
    from .. import experts

SLUG = "01_experts"
PRODUCTS = ["results/{profile}/01_experts/records.json", "figures/{profile}/01_experts_feature_models.png",
            "figures/{profile}/01_experts_trajectories.png", "figures/{profile}/01_experts_ptm.png"]
USES = ("dataset", "cross_archs", "feature_epochs", "feature_epoch", "feature_per_class", "distill_arch",
        "mtt_experts", "mtt_buffer_epochs", "mtt_expert_per_class", "ptm_archs", "ptm_model_num",
        "ptm_model_num_others", "ptm_epochs", "ptm_per_class", "ptm_ood_source", "test_per_class")


def mtt_experts(ctx, data) -> list[experts.Trajectory]:
    """The profile's MTT expert trajectories of the distillation network (trained now if missing; resumable).
    Test accuracy is logged about 5 times per trajectory for the record, never used for selection."""
    from .. import data as datasets, experts

    p = ctx.profile
    train = datasets.subset(data, p.mtt_expert_per_class, 0, seed=ctx.seed)
    return experts.pool(train, p.distill_arch, p.mtt_experts, recipe="mtt_expert", seed=ctx.seed,
                        root=ctx.runs_dir / "experts", epochs=p.mtt_buffer_epochs, device=ctx.device,
                        progress=ctx.progress, test_every=max(1, p.mtt_buffer_epochs // 5))


def ptm_pools(ctx, domain: str = "target"):
    """(source data, {arch: [trajectories]}) of the profile's PTM pools, trained now if missing (resumable).
    target: every ptm_archs architecture on the target (ptm_model_num members of the distillation network,
    ptm_model_num_others of the rest); ood: one distillation-network PTM on ptm_ood_source. Test accuracy per
    epoch on the source's test set (test_per_class images per class; reported, never selected on)."""
    from .. import data as datasets, ptm

    p = ctx.profile
    if domain not in ("target", "ood"):
        raise ValueError(f"domain must be 'target' or 'ood', got {domain!r}")
    name = p.dataset if domain == "target" else p.ptm_ood_source
    src = datasets.subset(datasets.load(name, device=ctx.device), p.ptm_per_class, p.test_per_class, seed=ctx.seed)
    if domain == "target":
        counts = {a: p.ptm_model_num if a == p.distill_arch else p.ptm_model_num_others for a in p.ptm_archs}
    else:
        counts = {p.distill_arch: 1}
    return src, ptm.train_pools(src, list(counts), counts, root=ctx.runs_dir / "ptm", epochs=p.ptm_epochs,
                                seed=ctx.seed, device=ctx.device, progress=ctx.progress)


def run(ctx) -> Output:
    from .. import data as datasets, models, ptm
    from ..train import accuracy

    p = ctx.profile
    data = datasets.load(p.dataset, device=ctx.device)
    get = cross_arch.feature_models(ctx, data)
    records, seen = [], set()
    for arch in p.cross_archs:
        name = models.matching_feature_model(arch, data.spec.channel, data.spec.im_size)
        if name in seen:
            continue
        seen.add(name)
        fm = get(arch)   # trains (or loads) the trajectory; the snapshot ELF reads
        shape = models.feature_shape(name, data.spec.channel, data.spec.im_size)
        records.append({"role": "elf_feature", "model": name, "for_eval_archs": [
            a for a in p.cross_archs if models.matching_feature_model(a, data.spec.channel, data.spec.im_size) == name],
            "feature_shape": list(shape), "epoch": p.feature_epoch, "train_images": p.feature_per_class * data.num_classes or len(
                data.y_train), "metric": "test_acc", "value": accuracy(fm, data.x_test, data.y_test)})
    n_train = p.mtt_expert_per_class * data.num_classes or len(data.y_train)
    for i, traj in enumerate(mtt_experts(ctx, data)):
        records += [{"role": "mtt_expert", "model": p.distill_arch, "expert": i, "seed": traj.config["seed"],
                     "epoch": ep, "train_images": n_train, "metric": "test_acc", "value": acc}
                    for ep, acc in sorted(traj.test_acc.items())]
    for domain in ("target", "ood"):
        src, pools = ptm_pools(ctx, domain)
        records += [{**r, "domain": domain, "source": src.name} for r in ptm.pool_accuracy(pools)]
    return Output(records, data_source=data.source)
