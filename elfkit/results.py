"""Result files: tidy records + config + hash + provenance, written atomically, replayed with integrity checks."""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .context import Context
from .errors import ElfkitError, StaleResultsError
from .safefile import file_sha256

SCHEMA = 1
RECORDS_FILE = "records.json"


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def config_hash(config: dict) -> str:
    return "sha256:" + hashlib.sha256(_canonical(config)).hexdigest()


def records_sha256(records: list[dict]) -> str:
    return "sha256:" + hashlib.sha256(_canonical(records)).hexdigest()


def doc_sha256(doc: dict) -> str:
    """Covers everything a records file says (config, provenance, artefact hashes, records), so an edit anywhere
    in it is caught on replay."""
    return "sha256:" + hashlib.sha256(_canonical({k: v for k, v in doc.items() if k != "sha256"})).hexdigest()


def atomic_write_json(path: Path, obj) -> Path:
    """Write to a temporary sibling, then rename: readers never see half a file (elfkit.safefile.write_json)."""
    from .safefile import write_json

    return write_json(path, obj)


@dataclass
class Output:
    """What an experiment's run(ctx) returns: tidy records plus artefact files it wrote into ctx.results_dir."""
    records: list[dict]
    artefacts: list[str] = field(default_factory=list)   # file names relative to the experiment's results folder
    data_source: dict = field(default_factory=dict)
    reads: tuple[str, ...] | None = None   # the profile fields the plan read (None: all; a function without a plan)
    cells: list[str] = field(default_factory=list)       # keys of the cells the records come from
    stats: object = None              # executors.Stats of the run


@dataclass
class Results:
    path: Path
    experiment: str
    profile: str
    config: dict
    config_hash: str
    provenance: dict
    records: list[dict]
    artefacts: dict

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.records)

    def artefact(self, name: str) -> Path:
        return self.path.parent / name

    def describe(self) -> str:
        p = self.provenance
        return (f"{self.experiment} [{self.profile}] {len(self.records)} records | git {p.get('git_sha', '?')[:10]}"
                f"{' dirty' if p.get('git_dirty') else ''} | {p.get('device')} | torch {p.get('torch')} | "
                f"{p.get('wall_s', 0):.0f} s | {p.get('started_utc')}")


def _check_finite(records: list[dict]) -> None:
    for r in records:
        v = r.get("value")
        if isinstance(v, float) and not math.isfinite(v):
            raise ElfkitError(f"an experiment produced a non-finite value (NaN or inf: {v}) in record {r}; nothing "
                              "was written. Lower the learning "
                              "rate or check the input data, then rerun with recompute=True")


def load(path: Path, ctx: Context | None = None) -> Results:
    """Read a records file and verify schema, records checksum, artefact hashes and (with `ctx`) that the run's
    profile, overrides and seed agree with the configuration the records were computed with: the values of the
    profile fields the experiment's plan read (stored with the records), so no torch and no planning is needed."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ElfkitError(f"{path} is not a readable results file ({e}); rerun with recompute=True") from None
    if doc.get("schema") != SCHEMA:
        raise ElfkitError(f"{path}: schema {doc.get('schema')} is not {SCHEMA}; rerun with recompute=True")
    if doc.get("sha256") != doc_sha256(doc):
        raise ElfkitError(f"{path}: its content does not match its sha256 (hand-edited or corrupt); "
                          "rerun with recompute=True")
    if records_sha256(doc["records"]) != doc.get("records_sha256"):
        raise ElfkitError(f"{path}: records do not match records_sha256 (hand-edited or corrupt); "
                          "rerun with recompute=True")
    for name, digest in doc.get("artefacts", {}).items():
        f = path.parent / name
        if not f.is_file() or file_sha256(f) != digest:
            raise ElfkitError(f"{path}: artefact {name} is missing or changed; rerun with recompute=True")
    expected = ctx.config(fields_of(doc)) if ctx is not None else None
    if expected is not None and config_hash(expected) != doc.get("config_hash"):
        changed = sorted(k for k, v in expected["profile"].items() if doc["config"]["profile"].get(k, v) != v)
        what = f" (fields that differ: {', '.join(changed)})" if changed else ""
        raise StaleResultsError(
            f"stale results: {path} was computed with a different configuration than the current "
            f"profile {expected['profile']['name']!r} (+overrides, seed){what}. Rerun with -p recompute True, "
            "or use the committed profile and seed without overrides.")
    return Results(path, doc["experiment"], doc["profile"], doc["config"], doc["config_hash"], doc["provenance"],
                   doc["records"], doc.get("artefacts", {}))


def fields_of(doc: dict) -> list[str]:
    """The profile fields a records file's configuration covers (those its experiment's plan read)."""
    return [k for k in doc["config"]["profile"] if k != "name"]


def _recover(final: Path) -> None:
    """Finish or undo a swap that a kill interrupted (see _swap): the old results stay replayable."""
    old = final.with_name(f".{final.name}.old")
    if not old.is_dir():
        return
    if (final / RECORDS_FILE).is_file():
        shutil.rmtree(old)
    else:
        if final.is_dir():
            shutil.rmtree(final)
        os.replace(old, final)


def _swap(stage: Path, final: Path) -> None:
    """Replace results/<profile>/<experiment> by the staged folder as one unit: the records file and the artefacts
    it hashes never mix two runs. Files of the old folder that the new run did not write are carried over."""
    old = final.with_name(f".{final.name}.old")
    if final.is_dir():
        for f in final.iterdir():
            if not (stage / f.name).exists() and f.is_file():
                shutil.copy2(f, stage / f.name)
        os.replace(final, old)
    os.replace(stage, final)
    if old.is_dir():
        shutil.rmtree(old)


def cached(ctx: Context, fn: Callable[[Context], Output], recompute: bool = False) -> Results:
    """Replay results/<profile>/<experiment>/records.json, or (recompute=True) run fn(ctx) into a staging folder
    and swap it in whole: a killed recompute leaves the previous results intact and replayable."""
    final = ctx.results_dir
    _recover(final)
    path = final / RECORDS_FILE
    if not recompute:
        if not path.is_file():
            how = ("they come from a GPU run: -p recompute True on a machine with CUDA; the cpu profile's results "
                   "are committed" if ctx.profile.name == "paper" else "rerun with -p recompute True")
            raise ElfkitError(f"no committed results for profile {ctx.profile.name!r} ({path}); {how}")
        res = load(path, ctx)
        print(res.describe())
        if ctx.executor != "serial":
            print(f"(replayed: executor {ctx.executor!r} is used only with recompute=True)")
        return res
    on_cluster = ctx.executor.startswith("ray:")     # the cells run on the cluster's GPUs, not on this driver
    if ctx.profile.name == "paper" and ctx.device.type != "cuda" and not on_cluster:
        raise ElfkitError("profile 'paper' recomputes only on a CUDA GPU (GPU hours of work) and this run has none; "
                          "use profile 'cpu' here, a GPU machine (Colab: Runtime > Change runtime type > GPU), or "
                          "executor='ray:<address>' of a cluster with GPUs")
    from .provenance import describe_device, of_run

    print(f"recomputing on {describe_device(ctx.activate())}")
    stage = final.with_name(f".{final.name}.staging")
    shutil.rmtree(stage, ignore_errors=True)    # a killed earlier recompute's partial output
    try:
        stage.mkdir(parents=True)
    except OSError as e:
        from .safefile import write_error

        raise write_error(stage, e) from None
    t0 = time.perf_counter()
    ctx.staging = stage
    try:
        out = fn(ctx)
        _check_finite(out.records)
        config = ctx.config(out.reads)
        prov = of_run(ctx, time.perf_counter() - t0, out.data_source,
                      cells={"planned": len(out.cells), "computed": getattr(out.stats, "computed", None)})
        doc = {
            "schema": SCHEMA, "experiment": ctx.experiment, "profile": ctx.profile.name, "config": config,
            "config_hash": config_hash(config), "records_sha256": records_sha256(out.records),
            "provenance": prov, "artefacts": {a: file_sha256(stage / a) for a in out.artefacts},
            "cells": out.cells, "records": out.records,
        }
        doc["sha256"] = doc_sha256(doc)
        atomic_write_json(stage / RECORDS_FILE, doc)
        _swap(stage, final)
    finally:
        ctx.staging = None
        shutil.rmtree(stage, ignore_errors=True)
    res = load(path, ctx)
    print(res.describe())
    return res


def environment_freeze(profile: str) -> None:
    """pip freeze of the environment that produced committed runs → results/<profile>/ENVIRONMENT.txt."""
    import subprocess
    import sys

    import torch

    from . import paths

    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True,
                         text=True).stdout
    (paths.results_dir(profile) / "ENVIRONMENT.txt").write_text(
        f"# python {sys.version.split()[0]}, torch {torch.__version__}\n" + out)
