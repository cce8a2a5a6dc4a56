"""Cells: the units an experiment's grid is made of. A cell is one pure function call (distil one set, train one
evaluation model, train one trajectory, compute one set's ELF features) with explicit, JSON-able arguments; its key
is the SHA-256 of exactly those arguments (upstream cells enter by their keys), its kind and the kind's code version.
Only the run's setup (device, threads, deterministic kernels: provenance) lies outside the key, so a finished cell is
not recomputed (unless a pending cell needs its local artefacts back) and a new profile field invalidates nothing.

Torch-free: plans are built, keyed and stored without it (the functions themselves live in elfkit.cell_kinds)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import ElfkitError

# bump a kind's version when its code changes what it returns: every key of that kind (and downstream) changes
# evaluate 2: ELF cells log their loss terms; features: one set's ELF features from one feature-model snapshot
VERSIONS = {"synset": 1, "evaluate": 2, "trajectory": 1, "features": 1, "calibration": 1}
GPU_KINDS = ("synset", "evaluate", "trajectory", "features")   # they run networks: on a cluster each asks for a GPU


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_ref_key).encode()


def _ref_key(obj):
    if isinstance(obj, Cell):
        return {"cell": obj.key}
    raise TypeError(f"cell arguments must be JSON values or cells, not {type(obj).__name__}: {obj!r}")


@dataclass(frozen=True, eq=False)
class Cell:
    """One call: `kind` names the function (cell_kinds.KINDS), `args` its whole input. Cells inside `args` (at any
    depth of dicts and lists) are inputs: they run first and enter the key by their own keys."""
    kind: str
    args: dict
    key: str = field(init=False)

    def __post_init__(self):
        if self.kind not in VERSIONS:
            raise ElfkitError(f"unknown cell kind {self.kind!r}; one of {sorted(VERSIONS)}")
        digest = hashlib.sha256(canonical({"kind": self.kind, "version": VERSIONS[self.kind], "args": self.args}))
        object.__setattr__(self, "key", "sha256:" + digest.hexdigest())

    @property
    def inputs(self) -> list[Cell]:
        return list(_cells_in(self.args))

    @property
    def short(self) -> str:
        return self.key.split(":", 1)[1][:20]

    def describe(self) -> str:
        a = self.args
        bits = [str(a[k]) for k in ("method", "arch", "ipc", "model_seed", "recipe", "epoch") if k in a]
        if "trajectory" in a:
            bits.insert(0, str(a["trajectory"].args["arch"]))
        if a.get("elf"):
            bits.append("ELF")
        return f"{self.kind}({', '.join(bits)})"


def _cells_in(obj):
    if isinstance(obj, Cell):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _cells_in(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _cells_in(v)


@dataclass
class Plan:
    """An experiment's grid: `rows` are (labels, cell or literal records, fields) whose records become the table's
    rows (labels first); every cell they depend on is part of the plan too; `extra` cells are needed for their
    artefacts (sets copied beside the records, trajectories whose accuracy is reported)."""
    rows: list[tuple[dict, Cell | list, tuple | None]] = field(default_factory=list)
    extra: list[Cell] = field(default_factory=list)      # cells needed for artefacts only (no rows)
    data: dict = field(default_factory=dict)             # the main data spec (its files' hashes go in provenance)

    def row(self, cell: Cell, fields: tuple | None = None, **labels) -> Cell:
        """The cell's output records become rows: labels first, then the records' `fields` (None: all)."""
        self.rows.append((labels, cell, fields))
        return cell

    def literal(self, records: list[dict], **labels) -> None:
        """Rows known without computing (e.g. 'ELF cannot evaluate this architecture', with the reason)."""
        self.rows.append((labels, list(records), None))

    def records(self, outputs: dict, extra: Callable[[dict, Cell | list], dict] | None = None) -> list[dict]:
        """The table's rows from the cells' outputs ({key: output}), in plan order; `extra(labels, cell)` adds
        columns measured elsewhere (an ELF feature model's accuracy) after the labels."""
        out = []
        for labels, cell, fields in self.rows:
            recs = cell if isinstance(cell, list) else outputs[cell.key]["records"]
            more = extra(labels, cell) if extra else {}
            out += [{**labels, **more, **(r if fields is None else {k: r[k] for k in fields if k in r})} for r in recs]
        return out

    def cells(self) -> list[Cell]:
        """Every cell once, each after all of its inputs (a stable topological order: plan order, inputs first)."""
        seen: dict[str, Cell] = {}

        def visit(c: Cell):
            if c.key in seen:
                return
            for i in c.inputs:
                visit(i)
            seen[c.key] = c

        for _, c, _ in self.rows:
            if isinstance(c, Cell):
                visit(c)
        for c in self.extra:
            visit(c)
        return list(seen.values())

    def keys(self) -> list[str]:
        return [c.key for c in self.cells()]


class CellStore:
    """results/<profile>/cells/<kind>/<hash>.json (+ the kind's artefacts beside it): each finished cell's output,
    written atomically the moment it finishes, with its arguments and provenance; verified on every read."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, cell: Cell) -> Path:
        return self.root / cell.kind / f"{cell.short}.json"

    def artefact(self, cell: Cell, suffix: str) -> Path:
        return self.root / cell.kind / f"{cell.short}{suffix}"

    def get(self, cell: Cell) -> dict | None:
        """The stored document of a finished cell, or None; a corrupt or foreign file raises with the fix."""
        p = self.path(cell)
        if not p.is_file():
            return None
        try:
            doc = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ElfkitError(f"cell record {p} is unreadable ({e}); delete it and rerun") from None
        if doc.get("key") != cell.key or doc.get("sha256") != doc_digest(doc):
            raise ElfkitError(f"cell record {p} does not match its key or checksum (edited, corrupt, or a hash "
                              "collision of the file name); delete it and rerun")
        return doc

    def put(self, cell: Cell, output: dict, provenance: dict) -> dict:
        from .safefile import write_json

        doc = {"key": cell.key, "kind": cell.kind, "version": VERSIONS[cell.kind],
               "args": json.loads(canonical(cell.args)), "output": output, "provenance": provenance}
        doc["sha256"] = doc_digest(doc)
        write_json(self.path(cell), doc)
        return doc


def doc_digest(doc: dict) -> str:
    return "sha256:" + hashlib.sha256(canonical({k: v for k, v in doc.items() if k != "sha256"})).hexdigest()


def pending(plan: Plan, store: CellStore, materialised) -> list[Cell]:
    """The cells a run must compute, in dependency order: those without a record, and — only when some pending
    cell needs them — inputs whose record exists but whose local artefacts (`materialised(cell, doc, reader)`, the
    reader being the pending cell that needs them, or None) are gone (trajectories live in runs/, which is not
    committed: a fresh clone retrains one only if it is still needed and its snapshots were not pinned)."""
    order = plan.cells()
    docs = {c.key: store.get(c) for c in order}
    need = {c.key for c in order if docs[c.key] is None}
    need |= {c.key for c in plan.extra if not materialised(c, docs[c.key])}   # assembling reads their artefacts
    changed = True
    while changed:
        changed = False
        for c in order:
            if c.key in need:
                for i in c.inputs:
                    if i.key not in need and not materialised(i, docs[i.key], c):
                        need.add(i.key)
                        changed = True
    return [c for c in order if c.key in need]
