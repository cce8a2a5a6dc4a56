"""Run a plan's pending cells: `serial` (in this process, plan order) or `ray` (a local Ray instance, or an existing
cluster by address). Either way each finished cell's record is written the moment it finishes, by this (driver)
process only — workers write only the artefacts a record points to — so a killed run loses at most the cells in
flight; the same seeds give the same bits on CPU whichever executor runs them."""
from __future__ import annotations

import time
from dataclasses import dataclass

from typing import TYPE_CHECKING, Callable

from . import log, snapshot_pins
from .cells import GPU_KINDS, Cell, CellStore, Plan, canonical, pending
from .errors import ElfkitError

if TYPE_CHECKING:      # torch-side; imported where cells run, so parse() and the store stay torch-free
    from . import cell_kinds

EXECUTORS = ("serial", "ray")


@dataclass
class Stats:
    planned: int        # cells in the plan
    computed: int       # cells this run computed (the others were finished before)
    executor: str


def parse(executor: str) -> tuple[str, str | None]:
    """"serial" | "ray" | "ray:<address>" (e.g. ray:auto, ray:10.0.0.5:6379) -> (name, address)."""
    name, _, address = str(executor).partition(":")
    if name not in EXECUTORS or (name == "serial" and address):
        raise ElfkitError(f"executor must be 'serial', 'ray' or 'ray:<address of a running cluster>'; got {executor!r}")
    return name, address or None


def execute(plan: Plan, env: cell_kinds.Env, executor: str = "serial") -> Stats:
    from . import cell_kinds

    name, address = parse(executor)
    todo = pending(plan, env.store, cell_kinds.materialised(env.store, env.runs_dir))
    n = len(plan.cells())
    if todo:
        print(f"cells: {n} planned, {n - len(todo)} finished before, {len(todo)} to compute ({name})", flush=True)
    if name == "serial":
        serial(todo, env)
    elif todo:
        _ray(todo, env, address)
    return Stats(n, len(todo), executor)


def _provenance(env, wall_s: float, started: str, executor: str) -> dict:
    from .provenance import environment

    return {**environment(env.device), "started_utc": started, "wall_s": round(wall_s, 2), "executor": executor,
            "precision": env.precision}


def _compute(cell: Cell, env) -> tuple[dict, dict]:
    """(output, provenance) of one cell: the unit both executors run. A failure names the cell."""
    from . import cell_kinds
    from .provenance import utc_now

    started, t0 = utc_now(), time.perf_counter()
    try:
        out = cell_kinds.run(cell, env)
    except Exception as e:
        e.add_note(f"in cell {cell.describe()} [{cell.short}]; the cells finished before it are kept")
        raise
    return out, _provenance(env, time.perf_counter() - t0, started, env.executor)


def persist(store: CellStore, cell: Cell, out: dict, prov: dict) -> None:
    """Write a finished cell's record — unless the cell had one already (recomputed only because its artefacts,
    e.g. a training's weights in runs/, were not on this machine) and came out exactly as recorded: then the record
    and its provenance stay as committed. One that came out otherwise is written, with a warning, as the cells
    computed from its earlier artefacts may no longer agree with it."""
    old = store.get(cell)
    if old is not None and canonical(old["output"]) == canonical(out):
        print(f"  {cell.describe()} [{cell.short}]: recomputed to restore its artefacts, identical to its record",
              flush=True)
        return
    if old is not None:
        print(f"  WARNING: {cell.describe()} [{cell.short}] recomputed differently from its record (another CPU or "
              "library version?); the new record is written, but cells computed from its earlier artefacts (e.g. "
              "features of an earlier training) may not match it: delete those cells' records to recompute them",
              flush=True)
    store.put(cell, out, prov)


def rate_kinds(cell: Cell) -> tuple[tuple, tuple]:
    """The two groups of cells whose seconds per cost unit predict this one's: its own network, and — before one of
    those is measured — any network. Both by kind, recipe (a PTM pool, an MTT expert, a feature model) and ELF or
    not (an ELF evaluation also runs the feature losses: ~1.3-1.6x a standard one per unit); a network's rate per
    FLOP is its own (2.5x apart between ConvNet and ResNet-18 on 2 cores)."""
    general = (cell.kind, cell.args.get("recipe"), bool(cell.args.get("elf")))
    return (*general, cell.args.get("arch")), general


def predicted_rate(rates: dict, cell: Cell) -> float:
    """Seconds per cost unit for `cell` from `rates` (keyed by rate_kinds): its network's, else its group's, else 0."""
    own, general = rate_kinds(cell)
    return rates.get(own) or rates.get(general) or 0.0


def serial(todo: list[Cell], env, stop_after_s: float = 0.0,
           cost: Callable[[Cell], float | None] | None = None, known: dict | None = None) -> int:
    """Compute `todo` in order in this process, each record written as it finishes; with stop_after_s > 0 no cell
    starts once that many seconds have passed (a session-sized slice of a long grid). A cell that `cost` (relative
    units; None: unknown) predicts would end past it — at the slowest seconds per unit measured so far in this slice
    for cells of its `rate_kinds`, or `known`'s rate for them (earlier slices' cells on this device) before one is
    measured — is skipped, with every later cell that reads it, and the slice goes on with the cells that fit: an
    evaluation keeps no checkpoint, and a trajectory's checkpoints live in runs/, which a fresh machine lacks, so
    one cut off by the session's end is lost whole. Returns the cells computed."""
    env.executor = "serial"
    snapshot_pins.pin(todo, env.store, env.runs_dir)      # trainings already here: their readers' snapshots travel
    t0 = time.perf_counter()
    rates: dict[tuple, float] = dict(known or {})   # per rate_kinds key: the slowest seconds per cost unit so far
    skipped: set[str] = set()                       # keys of cells predicted to overrun, and of their readers
    told: set[tuple] = set()                        # rate kinds whose skip was reported
    with log.Progress(len(todo), "cells", env.progress) as bar:
        for cell in todo:
            spent = time.perf_counter() - t0
            if stop_after_s and spent >= stop_after_s:
                break
            if any(i.key in skipped for i in cell.inputs):
                skipped.add(cell.key)
                continue
            units = cost(cell) if cost else None
            rate = predicted_rate(rates, cell)
            if stop_after_s and units and rate and spent + rate * units > stop_after_s:
                skipped.add(cell.key)
                if rate_kinds(cell)[0] not in told:
                    told.add(rate_kinds(cell)[0])
                    print(f"  skipped: {cell.describe()} would take ~{rate * units / 60:.0f} min, "
                          f"{(stop_after_s - spent) / 60:.0f} min are left", flush=True)
                continue
            out, prov = _compute(cell, env)
            if units:
                for k in rate_kinds(cell):
                    rates[k] = max(rates.get(k, 0.0), prov["wall_s"] / units)
            persist(env.store, cell, out, prov)
            if cell.kind == "trajectory":
                snapshot_pins.pin(todo, env.store, env.runs_dir)
            bar.update(1)
            if env.progress == "rows":
                print(f"  cell {bar.n}/{len(todo)} {cell.describe()} {prov['wall_s']:.1f} s", flush=True)
    if skipped:
        print(f"  {len(skipped)} cells skipped as predicted to end past the slice, or reading one that was: a "
              "slice with more hours computes them", flush=True)
    return bar.n


def _ray_task(cell: Cell, env) -> tuple[dict, dict]:
    import ray
    import torch

    env.executor = "ray"
    env.progress = "off"               # workers' bars would interleave in the driver's output; the driver reports
    if ray.get_gpu_ids():              # a GPU task runs on the GPU Ray gave it
        env.device = torch.device("cuda")
    return _compute(cell, env)


def _ray(todo: list[Cell], env, address: str | None) -> None:
    """Submit every cell whose inputs are finished; persist each result as it arrives; a worker that dies mid-cell
    is retried by Ray (max_retries), and the driver never writes a half-finished cell."""
    try:
        import ray
    except ImportError:
        raise ElfkitError("executor 'ray' needs Ray: pip install 'elfkit[ray]' (or use executor='serial')") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=env.progress != "off",
                 runtime_env={"env_vars": _forwarded_env()}, **({} if address else {"num_cpus": _local_cpus()}))
    gpus = ray.cluster_resources().get("GPU", 0) > 0 and env.want_gpu
    task = ray.remote(max_retries=3, retry_exceptions=False)(_ray_task)
    snapshot_pins.pin(todo, env.store, env.runs_dir)
    left = {c.key: c for c in todo}
    running: dict = {}
    with log.Progress(len(todo), "cells (ray)", env.progress) as bar:
        while left or running:
            busy = left.keys() | {c.key for c in running.values()}
            for key, c in list(left.items()):
                if not any(i.key in busy for i in c.inputs):
                    # a whole GPU per cell (Ray reuses GPU workers only within one device assignment)
                    opts = {"num_cpus": max(1, env.threads), "num_gpus": 1 if gpus and c.kind in GPU_KINDS else 0}
                    running[task.options(**opts).remote(c, env)] = c
                    del left[key]
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                c = running.pop(ref)
                try:
                    out, prov = ray.get(ref)
                except Exception as e:       # keep what finished, stop the rest, name the cell
                    _drain(running, env)
                    raise ElfkitError(f"cell {c.describe()} [{c.short}] failed on a Ray worker: "
                                      f"{str(e).strip().splitlines()[-1][:300]}; the cells finished before it are "
                                      "kept, a rerun continues from them") from e
                persist(env.store, c, out, prov)
                if c.kind == "trajectory":
                    snapshot_pins.pin(todo, env.store, env.runs_dir)
                bar.update(1)
                if env.progress == "rows":
                    print(f"  cell {bar.n}/{len(todo)} {c.describe()} {prov['wall_s']:.1f} s on {prov['host']}",
                          flush=True)


def _drain(running: dict, env) -> None:
    """After a failure: persist the cells that already finished, cancel the others."""
    import ray

    done, rest = ray.wait(list(running), num_returns=len(running), timeout=0) if running else ([], [])
    for ref in done:
        try:
            out, prov = ray.get(ref)
            persist(env.store, running[ref], out, prov)
        except Exception:   # noqa: BLE001  (a second failure: the first one is reported)
            pass
    for ref in rest:
        ray.cancel(ref, force=True)


def _local_cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _forwarded_env() -> dict:
    """Where results and data live: workers must read and write the same folders as the driver."""
    import os

    keys = ("ELFKIT_RESULTS_DIR", "ELFKIT_FIGURES_DIR", "ELFKIT_DATA", "XDG_CACHE_HOME")
    return {k: os.environ[k] for k in keys if k in os.environ}


def store_for(profile: str) -> CellStore:
    """results/<profile label>/cells: the cells of a profile on its own dataset and precision, or of a variant."""
    from . import paths

    return CellStore(paths.results_dir(profile) / "cells")
