"""python -m elfkit.reproduce --profile {smoke|cpu|paper} [--dataset cifar10] [--only NN_slug] [--recompute]
[--executor ray] [--status]:
papermill every notebook, or report their cells (also `elfkit reproduce`, which takes the same arguments)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from . import paths


def notebooks(only: list[str] | None = None) -> list[Path]:
    nbs = sorted((paths.repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if only:
        nbs = [n for n in nbs if any(n.stem == o or n.stem.startswith(o + "_") or n.stem[:2] == o for o in only)]
    return nbs


def failure_reason(e: Exception) -> str:
    """The failing cell's exception in one line (PapermillExecutionError's own text starts with a blank line)."""
    name, value = getattr(e, "ename", None), getattr(e, "evalue", None)
    if name:
        return f"{name}: {value}"[:300]
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:300]


def run(profile: str = "cpu", only: list[str] | None = None, recompute: bool = False, seed: int = 0,
        device: str = "auto", executor: str = "serial", dataset: str = "") -> int:
    """Execute each notebook into results/<profile>/runs/<slug>.ipynb; print status, wall time and products."""
    import papermill as pm

    from . import profiles
    from .experiments import BY_SLUG

    where = profiles.label(profiles.for_dataset(profiles.get(profile), dataset))   # results/<where>/, figures/<where>/
    selected = notebooks(only)
    if not selected:
        print(f"no notebook matches {only}", file=sys.stderr)
        return 2
    if profile == "paper" and recompute:
        from .context import resolve_device

        if resolve_device(device).type != "cuda":
            from .errors import ElfkitError

            raise ElfkitError("--profile paper --recompute runs only on a CUDA GPU (GPU hours) and none is "
                              "available here; use --profile cpu, or run on a GPU machine")
    failures = 0
    for nb in selected:
        out = paths.runs_dir(profile) / f"{nb.stem}{where[len(profile):]}.ipynb"
        t0 = time.perf_counter()
        print(f"== {nb.stem} [{where}{', recompute' if recompute else ', replay'}] -> {out}", flush=True)
        try:
            pm.execute_notebook(str(nb), str(out), cwd=str(paths.repo_root()), kernel_name="python3",
                                progress_bar=False, log_output=True, stdout_file=sys.stdout, stderr_file=sys.stderr,
                                parameters=dict(profile=profile, recompute=recompute, seed=seed, device=device,
                                                progress="rows", executor=executor, dataset=dataset))
            status = "ok"
        except Exception as e:  # papermill raises PapermillExecutionError with the cell's traceback
            status, failures = f"FAILED: {failure_reason(e)}", failures + 1
        mod = BY_SLUG.get(nb.stem)
        products = [p.format(profile=where) for p in getattr(mod, "PRODUCTS", [])]
        missing = [p for p in products if not (paths.base() / p).exists()]
        print(f"== {nb.stem}: {status} in {time.perf_counter() - t0:.1f} s; products: {len(products) - len(missing)}"
              f"/{len(products)}{' missing ' + ', '.join(missing) if missing else ''}", flush=True)
        failures += bool(missing) and status == "ok"
    if recompute and profile != "smoke" and not failures:
        from .results import environment_freeze

        environment_freeze(where)
    return 1 if failures else 0


def add_arguments(parser) -> None:
    from .cli_checks import SIZE

    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"], help="scale (default: cpu)")
    parser.add_argument("--dataset", default="", help="run the profile on another dataset, e.g. cifar10 (the paper "
                        "profile then takes its published settings; records go to results/<profile>-<dataset>/)")
    parser.add_argument("--only", nargs="+", help="notebook slugs or numbers, e.g. 00_quickstart or 00")
    parser.add_argument("--recompute", action="store_true",
                        help="compute the cells not finished yet (default: replay committed results)")
    parser.add_argument("--seed", type=SIZE, default=0, help="base seed (evaluation model i uses seed+i)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    parser.add_argument("--executor", default="serial",
                        help="serial | ray (a local Ray instance) | ray:<address> (a running cluster, e.g. ray:auto)")
    parser.add_argument("--status", action="store_true",
                        help="only print each notebook's cells: planned, finished, pending (by kind); runs nothing")


def from_args(a) -> int:
    from .executors import parse

    parse(a.executor)           # a typo stops here, not once per notebook
    if a.status:
        return status(profile=a.profile, only=a.only, seed=a.seed, dataset=a.dataset)
    return run(profile=a.profile, only=a.only, recompute=a.recompute, seed=a.seed, device=a.device,
               executor=a.executor, dataset=a.dataset)


def status(profile: str = "cpu", only: list[str] | None = None, seed: int = 0, dataset: str = "") -> int:
    """Per notebook: its cells planned / finished (a record exists) / pending, by kind, and whether its records
    file exists — how far a long grid (computed over several sessions) has come."""
    from . import profiles
    from .cell_kinds import materialised
    from .cells import pending
    from .executors import store_for
    from .experiments import BY_SLUG, grid

    prof = profiles.for_dataset(profiles.get(profile), dataset)
    store = store_for(profiles.label(prof))
    print(f"{'notebook':<20} {'records':<8} {'planned':>7} {'finished':>8} {'pending':>7}  pending by kind")
    for nb in notebooks(only):
        plan, _ = grid.plan_of(BY_SLUG[nb.stem], prof, seed)
        todo = pending(plan, store, materialised(store, paths.runs_dir(profile)))
        cells = plan.cells()
        kinds = {}
        for c in todo:
            kinds[c.kind] = kinds.get(c.kind, 0) + 1
        done = sum(store.get(c) is not None for c in cells)
        has = (paths.results_dir(profiles.label(prof), nb.stem) / "records.json").is_file()
        print(f"{nb.stem:<20} {'yes' if has else 'no':<8} {len(cells):>7} {done:>8} {len(todo):>7}  "
              f"{', '.join(f'{k} {n}' for k, n in sorted(kinds.items())) or '-'}")
    return 0


def main(argv=None) -> int:
    from .cli_checks import OneLineParser
    from .errors import ElfkitError

    parser = OneLineParser(prog="python -m elfkit.reproduce", description=__doc__.splitlines()[0])
    add_arguments(parser)
    a = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return from_args(a)
    except ElfkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
