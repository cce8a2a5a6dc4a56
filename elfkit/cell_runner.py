"""`elfkit cells`: compute one or several experiments' pending cells and stop, without assembling records — how a grid
longer than a session is run: each finished cell's record is written as it finishes, a rerun continues where the last
one stopped, `--hours` ends a slice cleanly, and `--next` computes the values pending in profile_next before the
profile takes them. The notebook (recompute=True) then assembles the records from the finished cells in seconds."""
from __future__ import annotations

import functools
import time

ORDERS = ("plan", "cheap")


def ordered(todo: list, order: str) -> list:
    """plan: dependency order. cheap: every non-evaluation cell first (they feed the rest; feature_trainings_last),
    with the evaluations that read a pending training's network themselves right after it, then the other
    evaluations by estimated cost, so a slice finishes as many as it can."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if order == "plan":
        return list(todo)
    trajectories = {c.key for c in todo if c.kind == "trajectory"}
    direct = {c.key for c in todo if c.kind == "evaluate" and read_trajectory(c, trajectories)}
    feeders = feature_trainings_last([c for c in todo if c.kind != "evaluate"] +
                                     [c for c in todo if c.key in direct])
    return feeders + sorted((c for c in todo if c.kind == "evaluate" and c.key not in direct), key=cost)


def read_trajectory(cell, trajectories: set) -> str | None:
    """The key of the pending trajectory whose weights `cell` reads from runs/: a features cell's network, or an
    evaluation's own (ELF on augmented batches computes its features as it trains); None otherwise."""
    if cell.kind == "features":
        key = cell.args["trajectory"].key
        return key if key in trajectories else None
    if cell.kind == "evaluate":
        return next((i.key for i in cell.inputs if i.kind == "trajectory" and i.key in trajectories), None)
    return None


def feature_trainings_last(feeders: list) -> list:
    """The feeding cells with every pending trajectory whose weights other cells read moved after the rest (the
    sets), each directly followed by all its readers (its features cells, then the evaluations that read the network
    itself): its weights live in runs/, which a session does not keep, and this way a slice ends between a training
    and the cells it feeds only if it stops right after the training — a later slice on a fresh machine would train
    it again. Readers of a trajectory that is not pending stay with the rest. The whole list stays in its given order
    if the reordering would put a cell before one of its inputs."""
    trajectories = {c.key for c in feeders if c.kind == "trajectory"}
    readers: dict = {}
    for c in feeders:
        key = read_trajectory(c, trajectories)
        if key:
            readers.setdefault(key, []).append(c)
    grouped = {f.key for fs in readers.values() for f in fs}
    rest = [c for c in feeders if c.key not in readers and c.key not in grouped]
    out = rest + [x for c in feeders if c.key in readers for x in (c, *readers[c.key])]
    pending, seen = {c.key for c in feeders}, set()
    for c in out:
        if any(i.key in pending and i.key not in seen for i in c.inputs):
            return list(feeders)
        seen.add(c.key)
    assert sorted(c.key for c in out) == sorted(pending), "reordering lost or doubled a cell"
    return out


def cost(cell) -> float:
    """An evaluation cell's relative cost: epochs × synthetic images × the architecture's work per image."""
    a, syn = cell.args, cell.args["synset"].args
    spec = _spec(syn["data"]["dataset"])
    return a["protocol"]["epochs"] * syn["ipc"] * spec.num_classes * image_work(a["arch"], spec.channel,
                                                                               tuple(spec.im_size))


# training images per class of a whole training set ("train_per_class": 0), where a trajectory's cost needs it
FULL_PER_CLASS = {"fashion_mnist": 6000, "mnist": 6000, "cifar10": 5000, "cifar100": 500}


def training_cost(cell) -> float | None:
    """A trajectory cell's relative cost, in the evaluation's units: epochs × training images × work per image (None
    where the training set's size is not known here)."""
    a = cell.args
    name = a["data"]["dataset"].removesuffix("+zca")
    from .data import canonical

    per_class = a["data"]["train_per_class"] or FULL_PER_CLASS.get(canonical(name))
    if not per_class:
        return None
    spec = _spec(name)
    return a["epochs"] * per_class * spec.num_classes * image_work(a["arch"], spec.channel, tuple(spec.im_size))


def units(cell) -> float | None:
    """What a slice predicts a cell's time from: evaluations and trajectories (each kind at its own measured rate)."""
    return cost(cell) if cell.kind == "evaluate" else training_cost(cell) if cell.kind == "trajectory" else None


def known_rates(plans: list, store, device_label: str, threads: int) -> dict:
    """Seconds per cost unit of the plans' cells already recorded on this kind of device (same device description
    and thread count), the median per `rate_kinds` key: so a slice predicts even its first cell of a kind from the
    sessions before it. A cell recorded under load (another job beside it) runs slow; the median keeps a few such
    from setting the rate."""
    import statistics

    from .executors import rate_kinds

    seen, found = set(), {}
    for plan in plans:
        for c in plan.cells():
            if c.key in seen or not units(c):
                continue
            seen.add(c.key)
            prov = (store.get(c) or {}).get("provenance", {})
            if prov.get("device") == device_label and prov.get("threads") == threads and prov.get("wall_s"):
                for k in rate_kinds(c):
                    found.setdefault(k, []).append(prov["wall_s"] / units(c))
    return {k: statistics.median(v) for k, v in found.items()}


def reference_plans(profile: str, *, dataset: str, seed: int, device: str) -> list:
    """Every experiment's plan at the profile as it stands (no pending values): the cells already recorded that a
    slice's rates can come from, when its own plans have none of a kind yet (a redo's first slice)."""
    from . import profiles
    from .context import start
    from .errors import ElfkitError
    from .experiments import BY_SLUG

    plans = []
    for slug, module in BY_SLUG.items():
        if not hasattr(module, "plan"):
            continue
        try:
            ctx = start(slug, profile, seed=seed, device=device, progress="off", dataset=dataset, quiet=True)
            plans.append(module.plan(profiles.Tracked(ctx.profile), ctx.seed))
        except ElfkitError:      # a plan that cannot be made here (e.g. one that needs another's records) times nothing
            continue
    return plans


def forecast(todo: list, known: dict) -> str:
    """How long the pending evaluations and trainings should take at the rates recorded on this device (cells of a
    kind none of which is recorded yet are counted apart)."""
    from .executors import predicted_rate

    hours, blind = 0.0, 0
    for c in todo:
        u, r = units(c), predicted_rate(known, c)
        if u and r:
            hours += u * r / 3600
        elif u:
            blind += 1
    unknown = f", plus {blind} cell{'s' * (blind != 1)} of a kind not yet timed here" if blind else ""
    return (f"  at the rates recorded on this device: ~{hours:.1f} h for the evaluations and trainings{unknown} "
            "(distillations and feature extractions not counted)")


def recorded_compute(plans: list, store) -> tuple[float, int]:
    """(seconds, cells): the sum of the recorded wall times of the plans' finished cells, each shared cell once, on
    whatever device they ran — a grid's measured compute, which its experiment's own records (assembled from the
    cells) cannot show."""
    seen, total, n = set(), 0.0, 0
    for plan in plans:
        for c in plan.cells():
            if c.key in seen:
                continue
            seen.add(c.key)
            s = ((store.get(c) or {}).get("provenance") or {}).get("wall_s")
            if s:
                total, n = total + s, n + 1
    return total, n


def _spec(dataset: str):
    from .data import SPECS, canonical

    return SPECS[canonical(dataset.removesuffix("+zca"))]


# FLOP-equivalents per activation element in image_work. Normalisation, activation and pooling over large feature
# maps are memory-bound and cost on 2 CPU cores about as much per element as ~1,000 matmul FLOPs: a least-squares fit
# of seconds per image to (FLOPs, elements) over seven full-data ConvNet feature trainings (D1, W32 … W512) gave
# ~1,100. By FLOPs alone their seconds per unit were 40x apart (ConvNetD1, 3 MFLOP: 828 s/TFLOP; W512: 20), and a
# slice predicted a 22-min ConvNetD2 training at 194 min; with the elements counted they are ~3x apart.
ELEMENT_FLOPS = 1000.0


def image_work(arch: str, channel: int, im_size: tuple) -> float:
    """One image's forward work in FLOP-equivalents: FLOPs + ELEMENT_FLOPS × activation elements."""
    flops, elements = forward_counts(arch, channel, im_size)
    return flops + ELEMENT_FLOPS * elements


@functools.lru_cache(maxsize=None)
def forward_counts(arch: str, channel: int, im_size: tuple) -> tuple[float, int]:
    """(FLOPs, activation elements: the outputs of every leaf module) of one image's forward pass, once per
    architecture and input shape."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from . import models

    net = models.create(arch, channel, 10, im_size).eval()
    elements = [0]

    def count(module, inputs, output):
        elements[0] += output.numel() if torch.is_tensor(output) else 0

    hooks = [m.register_forward_hook(count) for m in net.modules() if not any(True for _ in m.children())]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(torch.zeros(1, channel, *im_size))
    for h in hooks:
        h.remove()
    return float(counter.get_total_flops()), elements[0]


def describe(todo: list) -> str:
    """Pending cells by kind, and evaluations by (architecture, epochs, standard/ELF)."""
    kinds: dict = {}
    evals: dict = {}
    for c in todo:
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
        if c.kind == "evaluate":
            k = (c.args["arch"], c.args["protocol"]["epochs"], "ELF" if c.args["elf"] else "standard")
            evals[k] = evals.get(k, 0) + 1
    lines = [", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "nothing pending"]
    lines += [f"  evaluate {a} {e} ep. {m}: {n}" for (a, e, m), n in sorted(evals.items())]
    return "\n".join(lines)


def pending(experiment: str, profile: str, *, dataset: str, seed: int, overrides, use_next: bool, device: str,
            progress: str):
    """(slug, plan, ctx, env, pending cells) of one experiment, its status line printed."""
    from . import cells, profiles
    from .cell_kinds import materialised
    from .context import parse_overrides, start
    from .errors import ElfkitError
    from .experiments import BY_SLUG, grid
    from .profile_next import overrides_for
    from .reproduce import notebooks

    found = notebooks([experiment])
    if len(found) != 1 or found[0].stem not in BY_SLUG:
        raise ElfkitError(f"no single experiment matches {experiment!r}; use a notebook slug or number, e.g. 06")
    slug = found[0].stem
    changes = {**(overrides_for(profile, slug) if use_next else {}), **parse_overrides(overrides)}
    if use_next and not overrides_for(profile, slug):
        raise ElfkitError(f"profile_next has no pending values for {slug} at profile {profile!r}; drop --next")
    ctx = start(slug, profile, seed=seed, device=device, progress=progress, overrides=changes, dataset=dataset)
    plan = BY_SLUG[slug].plan(profiles.Tracked(ctx.profile), ctx.seed)
    env = grid.env_of(ctx)
    todo = cells.pending(plan, env.store, materialised(env.store, env.runs_dir))
    n, redo = len(plan.cells()), sum(env.store.get(c) is not None for c in todo)
    again = f" ({redo} of them recorded, but their artefacts are not on this machine)" if redo else ""
    print(f"{slug}: {n} cells planned, {n - len(todo) + redo} finished, {len(todo)} to compute{again}: "
          f"{describe(todo)}", flush=True)
    return slug, plan, ctx, env, todo


# what the cells of one slice must agree on to run in one process
SHARED_ENV = ("device", "runs_dir", "test_batch", "checkpoint_every", "threads", "deterministic", "precision")


def union(jobs: list) -> list:
    """The pending cells of several experiments, each once (cells are content-keyed, so a training two grids share
    is one cell), in the order the experiments were named — each cell still after its inputs."""
    from .errors import ElfkitError

    jobs = [j for j in jobs if j[4]] or jobs[:1]        # an experiment with nothing pending constrains nothing
    first = jobs[0][3]
    for slug, _, _, env, _ in jobs[1:]:
        differ = [k for k in SHARED_ENV if getattr(env, k) != getattr(first, k)]
        if differ or env.store.root != first.store.root:
            raise ElfkitError(f"{slug} runs under other settings ({', '.join(differ) or 'cell store'}) than "
                              f"{jobs[0][0]}; run it in a slice of its own")
    seen: dict = {}
    for *_, todo in jobs:
        for c in todo:
            seen.setdefault(c.key, c)
    return list(seen.values())


def run(experiment: str | list[str], profile: str = "cpu", *, dataset: str = "", seed: int = 0,
        overrides: dict | None = None, use_next: bool = False, order: str = "cheap", hours: float = 0.0,
        device: str = "auto", progress: str = "rows", status_only: bool = False, peek: str = "") -> int:
    """Plan each experiment (slug or number) at the profile (+ profile_next's pending values with use_next,
    + overrides), print what is pending, and compute it in `order` for at most `hours` (0 = until done) — several
    experiments as one slice, so a feature model their grids share trains once and feeds all of them in the session
    that trains it; with `peek`, write one experiment's finished rows to that CSV file and compute nothing."""
    from . import executors
    from .errors import ElfkitError

    names = [experiment] if isinstance(experiment, str) else list(experiment)
    if peek and len(names) != 1:
        raise ElfkitError(f"--peek writes one experiment's rows; name one, not {len(names)}")
    jobs = [pending(e, profile, dataset=dataset, seed=seed, overrides=overrides, use_next=use_next, device=device,
                    progress=progress) for e in names]
    if peek:
        slug, plan, ctx, env, _ = jobs[0]
        return write_peek(peek, slug, plan, ctx, env)
    todo, env = union(jobs), jobs[0][3]
    slug = " + ".join(j[0] for j in jobs)
    if len(jobs) > 1:
        print(f"{slug}: {len(todo)} distinct cells to compute: {describe(todo)}", flush=True)
    if status_only:
        spent, n = recorded_compute([j[1] for j in jobs], env.store)
        print(f"  recorded so far: {spent / 3600:.1f} h ({spent:,.0f} s) of compute over {n} finished cells "
              "(their wall times)", flush=True)
    if not todo:
        return 0
    import torch

    from .provenance import describe_device

    plans = [j[1] for j in jobs] + reference_plans(profile, dataset=dataset, seed=seed, device=device)
    known = known_rates(plans, env.store, describe_device(env.device), torch.get_num_threads())
    print(forecast(todo, known), flush=True)
    if status_only:
        return 0
    todo = ordered(todo, order)
    t0 = time.perf_counter()
    done = executors.serial(todo, env, stop_after_s=hours * 3600, cost=units, known=known)
    left = len(todo) - done
    print(f"{slug}: computed {done} cells in {time.perf_counter() - t0:.0f} s; {left} still pending"
          f"{' (rerun to continue)' if left else ''}", flush=True)
    return 0


def write_peek(path: str, slug: str, plan, ctx, env) -> int:
    """The finished part of the grid assembled by the experiment's own code (artefacts it writes go to a temporary
    folder), written as CSV: a look at a grid in progress; the records come from the notebook once it is done."""
    import tempfile
    from pathlib import Path

    import pandas as pd

    from .experiments import BY_SLUG, grid
    from .results import Output
    from .safefile import atomic

    part, outputs = grid.finished_part(plan, env.store)
    assemble = getattr(BY_SLUG[slug], "assemble", None)
    with tempfile.TemporaryDirectory() as tmp:
        ctx.staging = Path(tmp)
        out = assemble(part, outputs, ctx, env) if assemble else Output(part.records(outputs))
    with atomic(path) as f:
        pd.DataFrame(out.records).to_csv(f, index=False)
    print(f"{slug}: {len(part.rows)} of {len(plan.rows)} rows finished, {len(out.records)} records -> {path} "
          "(a partial table, not the experiment's records)", flush=True)
    return 0


def add_arguments(parser) -> None:
    from .cli_checks import SIZE

    parser.add_argument("experiment", nargs="+", help="notebook slug or number, e.g. 06_ptm_options or 06; several "
                        "run as one slice (a feature model their grids share trains once)")
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"], help="scale (default: cpu)")
    parser.add_argument("--dataset", default="", help="run the profile on another dataset, e.g. cifar10")
    parser.add_argument("--seed", type=SIZE, default=0, help="base seed (evaluation model i uses seed+i)")
    parser.add_argument("--overrides", default=None, help="profile fields as JSON, e.g. '{\"n_eval_models\": 2}'")
    parser.add_argument("--next", action="store_true", dest="use_next",
                        help="take the values profile_next holds for this experiment (a redo being computed)")
    parser.add_argument("--order", default="cheap", choices=ORDERS,
                        help="cheap (default): feeding cells, then evaluations cheapest first; plan: dependency order")
    parser.add_argument("--hours", type=float, default=0.0,
                        help="start no cell once this many hours have passed since the first one started, nor an "
                        "evaluation or training predicted (from this slice's measured ones of its kind) to end past "
                        "them; the first of each kind and unpredicted ones may still run over by one cell; 0 = until "
                        "done; rerun to continue")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    parser.add_argument("--status", action="store_true", dest="status_only",
                        help="only print what is planned, finished and pending; runs nothing")
    parser.add_argument("--peek", default="", metavar="CSV",
                        help="write the records of the rows finished so far to this CSV file and compute nothing")
    parser.set_defaults(func=from_args)


def from_args(a) -> int:
    if a.hours < 0:
        from .errors import ElfkitError

        raise ElfkitError(f"--hours must be >= 0 (got {a.hours}); 0 runs until every cell is done")
    return run(a.experiment, a.profile, dataset=a.dataset, seed=a.seed, overrides=a.overrides, use_next=a.use_next,
               order=a.order, hours=a.hours, device=a.device, status_only=a.status_only, peek=a.peek)
