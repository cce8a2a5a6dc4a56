"""Run a plan's pending cells: `serial` (in this process, plan order) or `ray` (a local Ray instance, or an existing
cluster by address). Either way each finished cell is persisted the moment it finishes, by this process only, so a
killed run loses at most the cells in flight; the same seeds give the same bits on CPU whichever executor runs them."""
from __future__ import annotations

import time
from dataclasses import dataclass

from typing import TYPE_CHECKING

from . import log
from .cells import GPU_KINDS, Cell, CellStore, Plan, pending
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
        _serial(todo, env)
    elif todo:
        _ray(todo, env, address)
    return Stats(n, len(todo), executor)


def _provenance(env, wall_s: float, started: str, executor: str) -> dict:
    from .provenance import environment

    return {**environment(env.device), "started_utc": started, "wall_s": round(wall_s, 2), "executor": executor}


def _compute(cell: Cell, env) -> tuple[dict, dict]:
    """(output, provenance) of one cell: the unit both executors run."""
    from . import cell_kinds
    from .provenance import utc_now

    started, t0 = utc_now(), time.perf_counter()
    out = cell_kinds.run(cell, env)
    return out, _provenance(env, time.perf_counter() - t0, started, env.executor)


def _serial(todo: list[Cell], env) -> None:
    env.executor = "serial"
    with log.Progress(len(todo), "cells", env.progress) as bar:
        for cell in todo:
            out, prov = _compute(cell, env)
            env.store.put(cell, out, prov)
            bar.update(1)
            if env.progress == "rows":
                print(f"  cell {bar.n}/{len(todo)} {cell.describe()} {prov['wall_s']:.1f} s", flush=True)


def _ray_task(cell: Cell, env) -> tuple[dict, dict]:
    import ray
    import torch

    env.executor = "ray"
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
    gpus = ray.cluster_resources().get("GPU", 0) > 0 and env.device.type != "cpu"
    task = ray.remote(max_retries=3, retry_exceptions=False)(_ray_task)
    left = {c.key: c for c in todo}
    done: set[str] = set()
    running: dict = {}
    with log.Progress(len(todo), "cells (ray)", env.progress) as bar:
        while left or running:
            for key, c in list(left.items()):
                if all(i.key not in left and i.key not in _keys(running) for i in c.inputs):
                    opts = {"num_cpus": max(1, env.threads), "num_gpus": 1 if gpus and c.kind in GPU_KINDS else 0}
                    running[task.options(**opts).remote(c, env)] = c
                    del left[key]
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                c = running.pop(ref)
                out, prov = ray.get(ref)
                env.store.put(c, out, prov)
                done.add(c.key)
                bar.update(1)
                if env.progress == "rows":
                    print(f"  cell {bar.n}/{len(todo)} {c.describe()} {prov['wall_s']:.1f} s on {prov['host']}",
                          flush=True)


def _keys(running: dict) -> set[str]:
    return {c.key for c in running.values()}


def _local_cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _forwarded_env() -> dict:
    """Where results and data live: workers must read and write the same folders as the driver."""
    import os

    keys = ("ELFKIT_RESULTS_DIR", "ELFKIT_FIGURES_DIR", "ELFKIT_DATA", "XDG_CACHE_HOME")
    return {k: os.environ[k] for k in keys if k in os.environ}


def store_for(profile: str) -> CellStore:
    from . import paths

    return CellStore(paths.results_dir(profile) / "cells")
