"""`start()`: resolve and validate a run (profile, seed, device, progress), seed it, and describe it."""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field

from . import __version__, log, paths, profiles, provenance
from .errors import ElfkitError

DEVICES = ("auto", "cpu", "cuda", "mps")
NOTEBOOK_PARAMETERS = ("profile", "recompute", "seed", "device", "progress", "overrides", "executor", "dataset")  # every notebook's


@dataclass
class Context:
    """One run. Torch is set up (seeds, threads, deterministic kernels, device) on first use of `device` or
    `activate()`, not at creation: a replay of committed records never needs torch."""
    experiment: str               # NN_slug, e.g. "00_quickstart"
    profile: profiles.Profile
    seed: int
    device_spec: object           # "auto" | "cpu" | "cuda[:N]" | a torch.device (None: resolved as "auto")
    progress: str                 # bar | rows | off
    started_utc: str = ""
    executor: str = "serial"      # serial | ray | ray:<address> (elfkit.executors)
    t0: float = field(default_factory=time.perf_counter)
    resolved: object = field(default=None, repr=False)   # the torch.device, once activated
    staging: object = field(default=None, repr=False)    # while recomputing: the folder results are written to

    @property
    def device(self):
        return self.activate()

    def activate(self):
        """Seed python/numpy/torch, fix threads and determinism, resolve the device (once); returns the device."""
        if self.resolved is None:
            from . import seeding

            seeding.seed_all(self.seed, deterministic=self.profile.deterministic, threads=self.profile.threads or None,
                             precision=self.profile.precision)
            spec = self.device_spec
            if hasattr(spec, "type"):           # already a torch.device
                self.resolved = spec
            else:
                self.resolved = resolve_device(spec if isinstance(spec, str) else "auto")
        return self.resolved

    @property
    def label(self) -> str:
        """The profile's folder name: 'cpu', or 'paper-cifar10' on a dataset other than the profile's own."""
        return profiles.label(self.profile)

    @property
    def results_dir(self):
        """results/<profile>[-<dataset>]/<experiment>; while results.cached recomputes, its staging folder."""
        return self.staging or paths.results_dir(self.label, self.experiment)

    @property
    def figures_dir(self):
        return paths.figures_dir(self.label)

    @property
    def runs_dir(self):
        return paths.runs_dir(self.profile.name)

    def config(self, fields=None) -> dict:
        """What an experiment's records depend on: the experiment, the seed and the values of the profile `fields`
        its plan read (measured by profiles.Tracked; None: every field), so a new profile field never invalidates
        other experiments' committed results. Not the device, not the executor, not the git sha (provenance)."""
        prof = dataclasses.asdict(self.profile)
        chosen = {k: prof[k] for k in sorted(prof if fields is None else fields) if k != "name"}
        return {"experiment": self.experiment, "seed": self.seed, "profile": {"name": self.profile.name, **chosen}}


def check_device(device: str) -> str:
    """Validate a device string without importing torch."""
    if not isinstance(device, str) or device.split(":")[0] not in DEVICES or device.count(":") > 1 or (
            ":" in device and not device.split(":")[1].isdigit()):
        raise ElfkitError(f"device must be one of auto, cpu, cuda, cuda:N, mps; got {device!r}")
    return device


def resolve_device(device: str):
    import torch

    check_device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ElfkitError("device='cuda' but CUDA is not available; use device='auto' or 'cpu'")
    return torch.device(device)


def start(experiment: str, profile: str = "cpu", *, seed: int = 0, device: str = "auto", progress: str = "auto",
          overrides: dict | None = None, executor: str = "serial", dataset: str = "", quiet: bool = False) -> Context:
    """Validate the profile (+dataset, +overrides), seed everything, pick the device and progress mode, print a
    header. `dataset` ("" = the profile's own) runs the profile on another dataset (profiles.for_dataset)."""
    unknown = injected_unknown_parameters()
    if unknown:
        raise ElfkitError(f"unknown notebook parameter(s) {unknown}; the notebooks take {', '.join(NOTEBOOK_PARAMETERS)}"
                          " (profile fields go in overrides, e.g. -p overrides '{\"n_eval_models\": 2}')")
    changes = parse_overrides(overrides)
    if "dataset" in changes:
        raise ElfkitError("choose the dataset with the dataset parameter (-p dataset cifar10), not in overrides: it "
                          "also sets that dataset's published settings and its results folder")
    prof = profiles.override(profiles.for_dataset(profiles.get(profile), dataset), **changes)
    from .executors import parse

    parse(executor)          # a typo stops here, before anything runs
    ctx = Context(experiment, prof, int(seed), check_device(device), log.resolve_progress(progress),
                  provenance.utc_now(), executor=executor)
    if sys.modules.get("torch") is not None:   # torch is loaded anyway: set it up now, as a script expects
        ctx.activate()
    if not quiet:
        where = provenance.describe_device(ctx.resolved) if ctx.resolved is not None else f"{device} (set up on first use)"
        print(f"elfkit {__version__} | {experiment} | profile {profiles.label(prof)} | seed {seed} | device {where}"
              f" | git {provenance.git_sha()[:10]}{' (dirty)' if provenance.git_dirty() else ''}")
    return ctx


def parse_overrides(overrides) -> dict:
    """A dict, or its JSON / Python-literal text (papermill's `-p overrides '{"n_eval_models": 2}'` passes text)."""
    if overrides is None or isinstance(overrides, dict):
        return dict(overrides or {})
    if isinstance(overrides, str):
        import ast
        import json

        for parse in (json.loads, ast.literal_eval):
            try:
                value = parse(overrides)
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, dict):
                return value
    raise ElfkitError(f"overrides must be a dict of profile fields, e.g. -p overrides '{{\"n_eval_models\": 2}}'; "
                      f"got {overrides!r}")


def injected_unknown_parameters() -> list[str]:
    """Names papermill injected (its '# Parameters' cell) that no notebook declares: papermill itself only warns,
    so a typo such as -p n_eval_model 2 would otherwise run the default silently."""
    try:
        from IPython import get_ipython
    except ImportError:
        return []
    ip = get_ipython()
    cells = [c for c in (ip.user_ns.get("In", []) if ip is not None else []) if c.startswith("# Parameters\n")]
    if not cells:
        return []
    import ast

    try:
        tree = ast.parse(cells[-1])
    except SyntaxError:
        return []
    names = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    return sorted(names - set(NOTEBOOK_PARAMETERS))
