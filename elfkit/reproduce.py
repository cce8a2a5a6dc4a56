"""python -m elfkit.reproduce --profile {smoke|cpu|paper} [--only NN_slug] [--recompute]: papermill every notebook."""
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
        device: str = "auto") -> int:
    """Execute each notebook into results/<profile>/runs/<slug>.ipynb; print status, wall time and products."""
    import papermill as pm

    from .experiments import BY_SLUG

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
        out = paths.runs_dir(profile) / nb.name
        t0 = time.perf_counter()
        print(f"== {nb.stem} [{profile}{', recompute' if recompute else ', replay'}] -> {out}", flush=True)
        try:
            pm.execute_notebook(str(nb), str(out), cwd=str(paths.repo_root()), kernel_name="python3",
                                progress_bar=False, log_output=True, stdout_file=sys.stdout, stderr_file=sys.stderr,
                                parameters=dict(profile=profile, recompute=recompute, seed=seed, device=device,
                                                progress="rows"))
            status = "ok"
        except Exception as e:  # papermill raises PapermillExecutionError with the cell's traceback
            status, failures = f"FAILED: {failure_reason(e)}", failures + 1
        mod = BY_SLUG.get(nb.stem)
        products = [p.format(profile=profile) for p in getattr(mod, "PRODUCTS", [])]
        missing = [p for p in products if not (paths._base() / p).exists()]
        print(f"== {nb.stem}: {status} in {time.perf_counter() - t0:.1f} s; products: {len(products) - len(missing)}"
              f"/{len(products)}{' missing ' + ', '.join(missing) if missing else ''}", flush=True)
        failures += bool(missing) and status == "ok"
    if recompute and profile != "smoke" and not failures:
        from .results import environment_freeze

        environment_freeze(profile)
    return 1 if failures else 0


def main(argv=None) -> int:
    from .cli import main as cli_main

    return cli_main(["reproduce", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
