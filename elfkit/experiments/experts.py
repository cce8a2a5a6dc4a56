"""01_experts: the real-data models later notebooks need, trained once and cached under results/<profile>/runs/ —
the ELF feature models (one ConvNet per split width of the cross-architecture table) and the MTT expert
trajectories (N experts × E epochs of the distillation network, base-methods.md §6.1)."""
from __future__ import annotations

from .. import data as datasets, experts, models
from ..results import Output
from ..train import accuracy
from . import cross_arch

SLUG = "01_experts"
PRODUCTS = ["results/{profile}/01_experts/records.json", "figures/{profile}/01_experts_feature_models.png",
            "figures/{profile}/01_experts_trajectories.png"]
USES = ("dataset", "cross_archs", "feature_epochs", "feature_epoch", "feature_per_class", "distill_arch",
        "mtt_experts", "mtt_buffer_epochs", "mtt_expert_per_class")


def mtt_experts(ctx, data) -> list[experts.Trajectory]:
    """The profile's MTT expert trajectories of the distillation network (trained now if missing; resumable).
    Test accuracy is logged about 5 times per trajectory for the record, never used for selection."""
    p = ctx.profile
    train = datasets.subset(data, p.mtt_expert_per_class, 0, seed=ctx.seed)
    return experts.pool(train, p.distill_arch, p.mtt_experts, recipe="mtt_expert", seed=ctx.seed,
                        root=ctx.runs_dir / "experts", epochs=p.mtt_buffer_epochs, device=ctx.device,
                        progress=ctx.progress, test_every=max(1, p.mtt_buffer_epochs // 5))


def run(ctx) -> Output:
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
    return Output(records, data_source=data.source)
