"""The cells experiments are built from, and the runner that plans, executes and assembles them (elfkit.cells).

Builders read the profile through a profiles.Tracked view: the fields a plan reads are the experiment's
configuration (recorded with its results), and every value a cell uses is in that cell's arguments."""
from __future__ import annotations

from typing import Callable

from ..cells import Cell, Plan
from ..results import Output

FEATURE_SEED = 3407          # the ELF release's feature-model seed (docs/elf.md §3.2)


def data_spec(dataset: str, train_per_class: int = 0, test_per_class: int = 0, seed: int = 0) -> dict:
    """A cell's data argument: a dataset by canonical name ('<name>+zca': its ZCA-whitened version, zca.load),
    optionally a stratified seeded subset (data.subset)."""
    from ..data import canonical

    base, zca = (dataset[:-4], "+zca") if dataset.endswith("+zca") else (dataset, "")
    return {"dataset": canonical(base) + zca, "train_per_class": train_per_class, "test_per_class": test_per_class, "seed": seed}


def name_of(dataset: str) -> str:
    from ..data import canonical

    return canonical(dataset)


def spec_of(dataset: str):
    """channel, im_size of a dataset (for split shapes and network signatures), without loading it."""
    from ..data import SPECS, canonical

    s = SPECS[canonical(dataset)]
    return s.channel, tuple(s.im_size)


def trajectory(data: dict, arch: str, recipe: str, epochs: int, seed: int, root: str, *, snapshots=None,
               test_every: int = 0, score_epochs=()) -> Cell:
    return Cell("trajectory", {"data": data, "arch": arch, "recipe": recipe, "epochs": epochs, "seed": seed,
                               "snapshots": snapshots, "test_every": test_every, "root": root,
                               "score_epochs": list(score_epochs)})


def pool_seed(seed: int, arch: str, i: int) -> int:
    """Member i of a pool (experts.pool): distinct initialisation and data order."""
    from ..seeding import derive

    return derive(seed, "pool", arch, i) % 2**31


def mtt_dataset(p) -> str:
    """The data MTT's experts and sets live on: the dataset, ZCA-whitened with mtt_zca."""
    return p.dataset + ("+zca" if p.mtt_zca else "")


def expert_cells(p, seed: int) -> list[Cell]:
    """The MTT expert trajectories of the distillation network (mtt_experts × mtt_buffer_epochs, every epoch kept)."""
    data = data_spec(mtt_dataset(p), p.mtt_expert_per_class, 0, seed)
    return [trajectory(data, p.distill_arch, "mtt_expert", p.mtt_buffer_epochs, pool_seed(seed, p.distill_arch, i),
                       "experts", test_every=max(1, p.mtt_buffer_epochs // 5)) for i in range(p.mtt_experts)]


def ptm_source(p, seed: int, domain: str) -> dict:
    """The PTMs' training data: the target, ptm_ood_source ('ood') or a named other dataset ('ood@<dataset>'), as a
    stratified subset (ptm_per_class)."""
    kind, _, name = domain.partition("@")
    if domain not in ("target", "ood") and not (kind == "ood" and name):
        raise ValueError(f"domain must be 'target', 'ood' or 'ood@<dataset>', got {domain!r}")
    source = p.dataset if kind == "target" else (name or p.ptm_ood_source)
    if spec_of(source) != spec_of(p.dataset):
        from ..errors import ElfkitError

        raise ElfkitError(f"the PTM source {source} has images of shape {spec_of(source)}, the target {p.dataset} "
                          f"{spec_of(p.dataset)}; set ptm_ood_source (or the ood_cos@<dataset> arm) to a dataset of "
                          "the target's shape")
    return data_spec(source, p.ptm_per_class, p.test_per_class, seed)


def ptm_members(p, seed: int, domain: str, arch: str, n: int, epochs: int = 0) -> list[Cell]:
    """The first n members of a PTM pool (member i: its own seed; every epoch kept with its test accuracy), trained
    ptm_epochs (`epochs` > 0: that long instead, E4's plateau run)."""
    src = ptm_source(p, seed, domain)
    return [trajectory(src, arch, "ptm", epochs or p.ptm_epochs, pool_seed(seed, arch, i), "ptm", test_every=1)
            for i in range(n)]


def ptm_cells(p, seed: int, domain: str = "target") -> tuple[dict, dict[str, list[Cell]]]:
    """(source spec, {arch: member cells}) of the CLoM pools: on the target, ptm_model_num members of the
    distillation network and ptm_model_num_others of every other ptm_archs architecture; ood: one distillation
    network on ptm_ood_source. Each member logs its test accuracy after every epoch."""
    if domain == "target":
        counts = {a: p.ptm_model_num if a == p.distill_arch else p.ptm_model_num_others for a in p.ptm_archs}
    else:
        counts = {p.distill_arch: 1}
    return ptm_source(p, seed, domain), {a: ptm_members(p, seed, domain, a, n) for a, n in counts.items()}


def feature_cell(p, seed: int, arch: str, *, source: str = "wide", epoch: int | None = None,
                 snapshots: tuple = (), per_class: int | None = None, epochs: int | None = None) -> Cell:
    """The ELF feature model for `arch` (docs/elf.md §3): wide — the ConvNet whose split output matches arch's
    split, ELF_buffer.sh recipe, seed 3407, trained `epochs` (feature_epochs) on `per_class` real images per class
    (feature_per_class; 0 = all); distill — the distillation ConvNet as an MTT expert."""
    from .. import models

    c, hw = spec_of(p.dataset)
    epoch = p.feature_epoch if epoch is None else epoch
    data = data_spec(p.dataset, p.feature_per_class if per_class is None else per_class, 0, seed)
    if source == "distill":
        n_ep = p.ablation_distill_epochs
        snaps = sorted({epoch, n_ep})
        return trajectory(data, p.distill_arch, "mtt_expert", n_ep, FEATURE_SEED, "feature_models",
                          snapshots=snaps, score_epochs=snaps)
    name = models.matching_feature_model(arch, c, hw)
    n_ep = p.feature_epochs if epochs is None else epochs
    snaps = sorted({epoch, n_ep, *snapshots})     # every snapshot's test accuracy is recorded (it is ELF's x-axis)
    return trajectory(data, name, "elf_feature", n_ep, FEATURE_SEED, "feature_models", snapshots=snaps,
                      score_epochs=snaps)


def elf_args(p, seed: int, arch: str, *, mode: str = "front_rear_task", kind: str = "CE", lam_front: float = 1.0,
             lam_rear: float = 1.0, on_augmented: bool = False, source: str = "wide", epoch: int | None = None,
             snapshots: tuple = (), features: Cell | None = None) -> dict:
    """ELF's arguments for one evaluation cell: the loss and the feature model's snapshot (`features`, a trajectory
    cell, replaces the profile's feature model); eval_cell turns the snapshot into a features cell of its set."""
    epoch = p.feature_epoch if epoch is None else epoch
    features = features or feature_cell(p, seed, arch, source=source, epoch=epoch, snapshots=snapshots)
    return {"mode": mode, "kind": kind, "lam_front": lam_front, "lam_rear": lam_rear, "on_augmented": on_augmented,
            "trajectory": features, "epoch": epoch}


def synset_cell(p, seed: int, method: str, ipc: int, *, guidance: dict | None = None, iterations: int = 0) -> Cell:
    """One set of `method` at `ipc` on the distillation network with the method's profile section; MTT takes
    the profile's expert trajectories; `guidance` (a CLoM spec) and `iterations` (> 0 replaces the section's)."""
    data = data_spec(mtt_dataset(p) if method == "MTT" else p.dataset)
    if guidance is not None and data["dataset"].endswith("+zca"):
        from ..errors import ElfkitError

        raise ElfkitError("CLoM cannot guide a set in ZCA space (its PTMs see images in the target's normalisation); "
                          "take MTT out of ptm_cross_methods/ptm_methods or set mtt_zca False for it")
    if method == "random_real":
        return Cell("synset", {"method": method, "ipc": ipc, "data": data, "seed": seed})
    from ..distill import METHODS

    settings = METHODS[method].profile_kwargs(p, iterations)
    args = {"method": method, "ipc": ipc, "data": data, "arch": p.distill_arch, "seed": seed, "settings": settings,
            "guidance": guidance}
    if method == "MTT":
        args["experts"] = expert_cells(p, seed)
    return Cell("synset", args)


def evaluations(plan: Plan, syn: Cell, test: dict, archs, protocol, seed: int, *, elf: Callable | None = None,
                fields: tuple | None = None, **labels) -> None:
    """One evaluation cell per (architecture, model seed) of the protocol, as rows with `labels`.
    `elf(arch)` -> the ELF arguments of that architecture (None: the baseline)."""
    for arch in archs:
        for s in protocol.seeds(seed):
            plan.row(eval_cell(syn, test, arch, s, protocol, elf(arch) if elf else None), fields, **labels)


def schedule(p, epochs: int = 0, models: int = 0):
    """The standard protocol, `epochs` long with `models` models where they are set (0 = the profile's): an
    experiment's own evaluation schedule (cross_*, ablation_*, study_*, ptm_eval_* fields)."""
    from ..protocol import EvalProtocol

    changes = {k: v for k, v in (("epochs", epochs), ("n_models", models)) if v}
    return EvalProtocol.of(p, **changes)


def distinct_seeds(field: str, seeds: tuple) -> None:
    """Refuse a repeated distillation seed: each seed gives one set, and a repeat would count one set twice."""
    if len(set(seeds)) != len(seeds):
        from ..errors import ElfkitError

        raise ElfkitError(f"{field} {seeds} repeats a seed: each distillation seed gives one set")


def feature_spec(spec: str) -> tuple[int, int, int]:
    """A feature model written 'per_class:epochs:snapshot' (regime_features, cross_feature): train images per class
    (0 = all), trajectory epochs, the snapshot ELF reads."""
    from ..errors import ElfkitError

    try:
        per_class, epochs, epoch = (int(v) for v in spec.split(":"))
    except ValueError:
        raise ElfkitError(f"feature models are written 'per_class:epochs:snapshot', got {spec!r}") from None
    if not 0 <= epoch <= epochs:
        raise ElfkitError(f"feature model {spec!r}: the snapshot must lie in 0..{epochs}")
    return per_class, epochs, epoch


def regime_specs(p) -> list[tuple[int, int, int]]:
    """The 08 map's feature models (regime_features), in axis order."""
    return [feature_spec(s) for s in p.regime_features]


def spec_features(p, seed: int, arch: str, spec: tuple[int, int, int], extra: tuple = ()) -> Cell:
    """The trajectory cell of a feature spec: one training per (per_class, epochs) that keeps every snapshot the 08
    map lists for it, so 08 and the tables that take one of its feature models (cross_feature) share its cells.
    `extra` snapshots are kept too; one that 08 does not list makes it a training of its own."""
    per_class, epochs, epoch = spec
    shared = tuple(e for pc, ep, e in regime_specs(p) if (pc, ep) == (per_class, epochs))
    return feature_cell(p, seed, arch, epoch=epoch, snapshots=shared + tuple(extra), per_class=per_class,
                        epochs=epochs)


def cross_elf(p, seed: int, feature: str = "") -> tuple[Callable, dict]:
    """ELF's arguments per architecture for a cross-architecture table, and the labels of its ELF rows: the
    profile's feature model, or `feature` (03's cross_feature: one of 08's, its trajectory shared)."""
    if not feature:
        return (lambda a: elf_args(p, seed, a)), {}
    spec = feature_spec(feature)
    labels = dict(zip(("feature_per_class", "feature_train_epochs", "feature_epoch"), spec))
    return (lambda a: elf_args(p, seed, a, epoch=spec[2], features=spec_features(p, seed, a, spec))), labels


def baseline_and_elf(p, plan: Plan, syn: Cell, test: dict, archs, protocol, seed: int, fields: tuple,
                     feature: str = "", **labels) -> None:
    """Per architecture: the standard protocol's models, then ELF's (front_rear_task, channel-CE, λ = 1, the feature
    model of cross_elf) with the same model seeds — the cross-architecture tables' pair of rows."""
    elf, elf_labels = cross_elf(p, seed, feature)
    for arch in archs:
        named = {"feature_model": elf(arch)["trajectory"].args["arch"], **elf_labels} if feature else {}
        evaluations(plan, syn, test, [arch], protocol, seed, fields=fields, **labels, eval_mode="baseline")
        evaluations(plan, syn, test, [arch], protocol, seed, fields=fields, **labels, **named, elf=elf)


def feature_acc(cell: Cell, outputs: dict) -> dict:
    """{'feature_acc': test accuracy of the ELF feature-model snapshot an evaluation cell learns from}, or {} for a
    baseline cell or a trajectory that records no score at that snapshot."""
    elf = cell.args.get("elf") if isinstance(cell, Cell) else None
    if not elf:
        return {}
    score = outputs[elf["features"].args["trajectory"].key].get("score") or {}
    return {"feature_acc": score[str(elf["epoch"])]} if str(elf["epoch"]) in score else {}


def eval_cell(syn: Cell, test: dict, arch: str, model_seed: int, protocol, elf: dict | None = None) -> Cell:
    """One evaluation model of `arch` on the set, seeded `model_seed`, trained under the protocol (ELF: `elf`, whose
    feature-model snapshot becomes the input `features`: that set's features from that snapshot, computed once).
    A set in ZCA space is tested on the ZCA'd test set, and its ELF feature model trains on the ZCA'd data."""
    space = syn.args.get("data", {}).get("dataset", "")
    zca = space.endswith("+zca")
    if zca:
        test = {**test, "dataset": space}
    if elf:
        elf = dict(elf)
        traj = elf.pop("trajectory")
        if zca:
            traj = Cell(traj.kind, {**traj.args, "data": {**traj.args["data"], "dataset": space}})
        elf["features"] = Cell("features", {"trajectory": traj, "epoch": elf["epoch"], "synset": syn})
        if elf["on_augmented"]:      # features of each augmented batch: the network itself is an input too
            elf["model"] = traj
    return Cell("evaluate", {"synset": syn, "test": test, "arch": arch, "model_seed": model_seed,
                             "protocol": protocol.training(), "elf": elf})


def run(ctx, plan_fn: Callable, assemble: Callable | None = None) -> Output:
    """Plan through a tracked profile, compute the pending cells with ctx's executor, assemble the records."""
    from .. import cell_kinds, executors, profiles

    tracked = profiles.Tracked(ctx.profile)
    plan = plan_fn(tracked, ctx.seed)
    env = env_of(ctx)
    stats = executors.execute(plan, env, ctx.executor)
    outputs = {c.key: env.store.get(c)["output"] for c in plan.cells()}
    out = assemble(plan, outputs, ctx, env) if assemble else Output(plan.records(outputs))
    if not out.data_source and plan.data:
        out.data_source = cell_kinds.load_data(plan.data, ctx.device).source
    out.reads, out.cells, out.stats = tuple(sorted(tracked.reads)), plan.keys(), stats
    return out


def finished_part(plan: Plan, store) -> tuple[Plan, dict]:
    """The rows of `plan` whose cell and every input of it have a record in `store`, as a plan of their own, with
    the outputs they need: a long grid's partial table (elfkit cells --peek), never its records."""
    outputs = {}
    for c in plan.cells():
        doc = store.get(c)
        if doc is not None:
            outputs[c.key] = doc["output"]

    def done(c: Cell) -> bool:
        return c.key in outputs and all(done(i) for i in c.inputs)

    rows = [r for r in plan.rows if not isinstance(r[1], Cell) or done(r[1])]
    return Plan(rows=rows, extra=[c for c in plan.extra if done(c)], data=plan.data), outputs


def env_of(ctx):
    """The cells' environment of a run: its device, the profile's cell store and runs folder, the runtime fields."""
    from .. import cell_kinds, executors

    p = ctx.profile
    return cell_kinds.Env(device=ctx.device, store=executors.store_for(ctx.label), runs_dir=ctx.runs_dir,
                          progress=ctx.progress, test_batch=p.test_batch, checkpoint_every=p.checkpoint_every,
                          threads=p.threads, deterministic=p.deterministic, precision=p.precision,
                          want_gpu=str(ctx.device_spec) != "cpu")


def plan_of(module, profile, seed: int = 0) -> tuple[Plan, tuple[str, ...]]:
    """(plan, fields read) of an experiment module for a profile — what the key tests and the CLI inspect."""
    from .. import profiles

    tracked = profiles.Tracked(profile)
    plan = module.plan(tracked, seed)
    return plan, tuple(sorted(tracked.reads))
