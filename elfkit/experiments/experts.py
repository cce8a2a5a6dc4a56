"""01_experts: the real-data models later notebooks need, trained once and cached under results/<profile>/runs/ —
for now the ELF feature models (one ConvNet per split width of the cross-architecture table)."""
from __future__ import annotations

from .. import data as datasets, models
from ..results import Output
from ..train import accuracy
from . import cross_arch

SLUG = "01_experts"
PRODUCTS = ["results/{profile}/01_experts/records.json", "figures/{profile}/01_experts_feature_models.png"]
USES = ("dataset", "cross_archs", "feature_epochs", "feature_epoch", "feature_per_class")


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
    return Output(records, data_source=data.source)
