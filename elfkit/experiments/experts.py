"""01_experts: the real-data models later notebooks need, trained once as trajectory cells (snapshots under
results/<profile>/runs/, records in the cell store) — the ELF feature models (one ConvNet per split width of the
cross-architecture table), the MTT expert trajectories (N experts × E epochs of the distillation network,
docs/base-methods.md §6.1) and the CLoM pools of pre-trained models on the target and an out-of-domain source
(docs/ptm.md §5)."""
from __future__ import annotations

from ..cells import Plan
from ..results import Output
from . import grid

SLUG = "01_experts"
PRODUCTS = ["results/{profile}/01_experts/records.json", "figures/{profile}/01_experts_feature_models.png",
            "figures/{profile}/01_experts_trajectories.png", "figures/{profile}/01_experts_ptm.png"]


def feature_archs(p) -> dict[str, list[str]]:
    """{feature model name: the cross_archs it serves} (a ConvNet per split shape)."""
    from .. import models

    c, hw = grid.spec_of(p.dataset)
    out: dict[str, list[str]] = {}
    for arch in p.cross_archs:
        out.setdefault(models.matching_feature_model(arch, c, hw), []).append(arch)
    return out


def plan(p, seed: int) -> Plan:
    out = Plan(data=grid.data_spec(p.dataset))
    for archs in feature_archs(p).values():
        out.extra.append(grid.feature_cell(p, seed, archs[0]))
    out.extra += grid.expert_cells(p, seed)
    for domain in ("target", "ood"):
        for cells in grid.ptm_cells(p, seed, domain)[1].values():
            out.extra += cells
    return out


def assemble(plan: Plan, outputs: dict, ctx, env) -> Output:
    """Feature models: accuracy of the snapshot ELF reads; experts: their logged accuracy (about 5 per trajectory);
    PTMs: accuracy after every epoch on the source's test subset. Reported, never used for selection."""
    from .. import models

    p = ctx.profile
    c, hw = grid.spec_of(p.dataset)
    records = []
    for name, archs in feature_archs(p).items():
        cell = grid.feature_cell(p, ctx.seed, archs[0])
        records.append({"role": "elf_feature", "model": name, "for_eval_archs": archs,
                        "feature_shape": list(models.feature_shape(name, c, hw)), "epoch": p.feature_epoch,
                        "train_images": _n_train(cell, env), "metric": "test_acc",
                        "value": outputs[cell.key]["score"][str(p.feature_epoch)]})
    for i, cell in enumerate(grid.expert_cells(p, ctx.seed)):
        n = _n_train(cell, env)
        records += [{"role": "mtt_expert", "model": p.distill_arch, "expert": i, "seed": cell.args["seed"],
                     "epoch": int(ep), "train_images": n, "metric": "test_acc", "value": acc}
                    for ep, acc in _by_epoch(outputs[cell.key]["test_acc"])]
    for domain in ("target", "ood"):
        src, pools = grid.ptm_cells(p, ctx.seed, domain)
        records += [{"role": "ptm", "model": a, "member": i, "seed": cell.args["seed"], "epoch": int(ep),
                     "metric": "test_acc", "value": acc, "domain": domain, "source": _name(src, env)}
                    for a, cells in pools.items() for i, cell in enumerate(cells)
                    for ep, acc in _by_epoch(outputs[cell.key]["test_acc"])]
    return Output(records)


def _by_epoch(acc: dict) -> list[tuple[int, float]]:
    return sorted((int(k), v) for k, v in acc.items())


def _n_train(cell, env) -> int:
    from ..cell_kinds import load_data

    return len(load_data(cell.args["data"], env.device).y_train)


def _name(spec: dict, env) -> str:
    from ..cell_kinds import load_data

    return load_data(spec, env.device).name


def run(ctx) -> Output:
    return grid.run(ctx, plan, assemble)
