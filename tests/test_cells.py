"""Cells: keys follow exactly what a cell receives; a killed serial run resumes with only its unfinished cells."""
import ast
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest

import elfkit as ek
from elfkit import cells, profiles
from elfkit.experiments import BY_SLUG, grid

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = set(profiles.SECTIONS["runtime"])
SPECIAL = {   # perturbations that keep the plan buildable: the first that differs from the profile's value
    "dataset": ["mnist"], "distill_arch": ["ConvNetW32"], "study_method": ["DC"], "dc_metric": ["mse"],
    "dc_init": ["noise"], "ptm_ood_source": ["mnist_5k"], "study_matrix_overrides": [("dm_iterations=7",)],
    "ptm_alpha_rule": ["calibrated", "fixed"], "ptm_alpha_scales": [(10.0,), (0.1, 1.0)],
    "ptm_seeds": [(0, 1, 2), (0, 1)], "ptm_eval_archs": [("ConvNetW32",), ()], "ptm_pool_from": ["06"],
    "ptm_cross_methods": [("DM", "MTT")],
}


def _perturbations(name: str, value, hint) -> list:
    """Changed values to try (a grid axis may need two: dropping VGG11 or ResNet18 alone keeps the W512 model)."""
    if name in SPECIAL:
        return [next((v for v in SPECIAL[name] if v != value), "synthetic")]
    if hint is bool:
        return [not value]
    if hint is int:
        return [value + 1] + ([value - 1] if value > 1 else [])
    if hint is float:
        return [value * 2 + 1]
    if typing.get_origin(hint) is tuple:
        if not value:
            return [(1, 1)] if name == "dc_loop_cap" else []
        if len(value) > 2:      # a middle entry too: 08's listed snapshots of a training shared with 03/05
            out = [tuple(value[:-1]), tuple(value[1:]), tuple(value[:1] + value[2:])]
            if name == "regime_features":   # and snapshot 0 of every training: 04 keeps 1/2/3 of 08's 0:3 training
                trainings = dict.fromkeys(v.rsplit(":", 1)[0] for v in value)   # itself, so only a new one moves it
                out.append(tuple(value) + tuple(f"{t}:0" for t in trainings if f"{t}:0" not in value))
            return out
        if len(value) > 1:
            return [tuple(value[:-1]), tuple(value[1:])]
        inner = typing.get_args(hint)[0]
        return [(value[0] + 1,)] if inner is int else [(value[0] * 2 + 1,)] if inner is float else []
    return []


def _values_in(obj):
    """Every value in a cell's own arguments (inputs count by their number: a pool of 3 experts says 3)."""
    if isinstance(obj, cells.Cell):
        yield from _values_in(obj.args)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _values_in(v)
    elif isinstance(obj, (list, tuple)):
        yield obj
        yield len(obj)
        for v in obj:
            if not isinstance(v, cells.Cell):
                yield from _values_in(v)
    else:
        yield obj


def _mentions(cell, value) -> bool:
    """The value, one member of a grid axis (cross_archs), the value of a "field=value" override, or a number
    inside a network name (ablation width 64 -> ConvNetW64) appears in the cell's own arguments."""
    items = [value, *value] if isinstance(value, (tuple, list)) else [value]
    items += [ast.literal_eval(v.split("=", 1)[1]) for v in items if isinstance(v, str) and "=" in v]
    wants = [json.loads(cells.canonical(v)) for v in items]
    have = [json.loads(cells.canonical(v)) for v in _values_in(cell)]
    if any(w in have for w in wants) or any(_keeps(cell, w) for w in wants):
        return True
    return any(isinstance(h, str) and str(w) in h for w in wants if isinstance(w, (int, str)) for h in have)


def _keeps(cell, spec) -> bool:
    """A training received a regime_features entry 'per_class:epochs:snapshot' when it is that (per_class, epochs)
    trajectory and keeps that snapshot: 08's list reaches 03/05 only as the kept snapshots of a shared training."""
    if not (isinstance(spec, str) and spec.count(":") == 2 and "snapshots" in cell.args):
        return False
    per_class, epochs, snapshot = (int(v) for v in spec.split(":"))
    return (cell.args["data"]["train_per_class"], cell.args["epochs"]) == (per_class, epochs) \
        and snapshot in cell.args["snapshots"]


def _identities(plan) -> dict:
    """Row cells by what they are in the table (labels, model seed, occurrence), so a cell that exists in both
    plans can be told apart from one that a smaller grid dropped."""
    out, count = {}, {}
    for labels, cell, _ in plan.rows:
        if isinstance(cell, cells.Cell):
            ident = json.dumps([labels, cell.args.get("model_seed")], sort_keys=True, default=str)
            count[ident] = count.get(ident, 0) + 1
            out[(ident, count[ident])] = cell
    return out


def _changed(old_plan, new_plan) -> list:
    """Cells of the old plan whose key changed: row cells present in both plans with another key, and the input
    cells they no longer share with the new plan."""
    a, b = _identities(old_plan), _identities(new_plan)
    new_keys = set(new_plan.keys())
    changed = {c.key: c for ident, c in a.items() if ident in b and b[ident].key != c.key}
    todo = list(changed.values())
    while todo:
        for i in todo.pop().inputs:
            if i.key not in new_keys and i.key not in changed:
                changed[i.key] = i
                todo.append(i)
    return list(changed.values())


def _unexplained(old_plan, moved: list, value) -> list:
    """Moved cells not explained by the change: explained are cells that mention the value, cells with an explained
    input (a changed set changes its evaluations), and cells whose every consumer is explained (a feature model
    only the dropped architecture used)."""
    users: dict = {}
    for c in old_plan.cells():
        for i in c.inputs:
            users.setdefault(i.key, []).append(c.key)
    moved_keys = {c.key for c in moved}
    ok = {c.key for c in moved if _mentions(c, value)}
    grew = True
    while grew:
        grew = False
        for c in moved:
            if c.key in ok:
                continue
            if any(i.key in ok for i in c.inputs) or (
                    users.get(c.key) and all(u in ok for u in users[c.key] if u in moved_keys)
                    and all(u in moved_keys for u in users[c.key])):
                ok.add(c.key)
                grew = True
    return [c.describe() for c in moved if c.key not in ok]


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
@pytest.mark.parametrize("slug", sorted(BY_SLUG))
def test_a_cell_key_changes_with_every_field_its_plan_reads_and_nothing_else(slug, profile):
    """Over every profile field: a field the plan reads changes some cell key; a field it does not read (and every
    runtime field) changes none; and a cell whose key changed carries the field's old value in its arguments
    (directly or through an input cell), so no key moves for a value it never received."""
    mod, base = BY_SLUG[slug], profiles.get(profile)
    plan, reads = grid.plan_of(mod, base)
    assert not (set(reads) & RUNTIME), "runtime fields must never shape a plan"
    old = {c.key: c for c in plan.cells()}
    hints = typing.get_type_hints(profiles.Profile)
    checked = 0
    for f in dataclasses.fields(profiles.Profile):
        if f.name == "name":
            continue
        value, any_moved = getattr(base, f.name), False
        for new_value in _perturbations(f.name, value, hints[f.name]):
            try:
                new_plan, _ = grid.plan_of(mod, profiles.override(base, **{f.name: new_value}))
            except (ek.ElfkitError, ValueError) as e:      # a value this profile cannot plan with
                assert f.name in reads, f"{f.name} is not read yet planning failed: {e}"
                any_moved = True
                continue
            new = set(new_plan.keys())
            moved = _changed(plan, new_plan)
            any_moved |= set(old) != new
            if f.name in reads:
                stray = _unexplained(plan, moved, value)
                assert not stray, f"{slug}/{profile}: changing {f.name} moved cells that never received it: {stray[:3]}"
            else:
                assert set(old) == new, f"{slug}/{profile}: {f.name} is not read but changed cell keys"
            checked += 1
        if f.name in reads and _perturbations(f.name, value, hints[f.name]):
            assert any_moved, f"{slug}/{profile}: {f.name} is read but changes no cell key"
    assert checked > 20


def test_every_profile_field_is_in_exactly_one_section():
    names = [f.name for f in dataclasses.fields(profiles.Profile)]
    placed = [f for fields in profiles.SECTIONS.values() for f in fields]
    assert sorted(placed) == sorted(names) and len(placed) == len(set(placed))


def test_cell_functions_see_arguments_and_setup_only():
    """A cell function receives (cell, env); the Env carries no profile, so nothing outside the key can reach it."""
    import inspect

    from elfkit import cell_kinds

    env_fields = {f.name for f in dataclasses.fields(cell_kinds.Env)}
    assert not env_fields & {"profile", "ctx", "config"}
    for fn in cell_kinds.KINDS.values():
        assert list(inspect.signature(fn).parameters) == ["cell", "env"]
    text = (ROOT / "elfkit" / "cell_kinds.py").read_text()
    assert ".profile" not in text and "import profiles" not in text and "ctx" not in text


def test_a_key_is_the_hash_of_the_arguments_and_inputs():
    a = cells.Cell("synset", {"method": "random_real", "ipc": 1, "seed": 0})
    b = cells.Cell("synset", {"seed": 0, "ipc": 1, "method": "random_real"})
    c = cells.Cell("synset", {"method": "random_real", "ipc": 2, "seed": 0})
    assert a.key == b.key != c.key
    e1 = cells.Cell("evaluate", {"synset": a, "model_seed": 0})
    e2 = cells.Cell("evaluate", {"synset": c, "model_seed": 0})
    assert e1.key != e2.key and e1.inputs == [a]
    with pytest.raises(TypeError):
        cells.Cell("evaluate", {"synset": object()})


def test_a_stored_cell_is_verified(tmp_path):
    store = cells.CellStore(tmp_path)
    c = cells.Cell("evaluate", {"x": 1})
    store.put(c, {"records": [{"value": 0.5}]}, {})
    assert store.get(c)["output"]["records"][0]["value"] == 0.5
    doc = json.loads(store.path(c).read_text())
    doc["output"]["records"][0]["value"] = 0.9
    store.path(c).write_text(json.dumps(doc))
    with pytest.raises(ek.ElfkitError, match="does not match its key or checksum"):
        store.get(c)


SCRIPT = """
import sys, elfkit as ek
ctx = ek.start("03_cross_arch", "smoke", progress="off", quiet=True, executor=sys.argv[1])
res = ek.results.cached(ctx, ek.experiments.cross_arch.run, recompute=True)
print("COMPUTED", res.provenance["cells"]["computed"], "PLANNED", res.provenance["cells"]["planned"])
"""


def _run(root: Path, executor: str = "serial") -> subprocess.CompletedProcess:
    env = {**os.environ, "ELFKIT_RESULTS_DIR": str(root)}
    return subprocess.run([sys.executable, "-c", SCRIPT, executor], env=env, capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


def _cell_files(root: Path) -> list[Path]:
    return sorted((root / "results" / "smoke" / "cells").glob("*/*.json"))


def _records(root: Path) -> list:
    return json.loads((root / "results" / "smoke" / "03_cross_arch" / "records.json").read_text())["records"]


def test_sigkill_mid_grid_then_rerun_computes_only_the_unfinished_cells(tmp_path):
    ref = _run(tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-2000:]
    planned = int(ref.stdout.split("PLANNED")[1])
    root = tmp_path / "killed"
    env = {**os.environ, "ELFKIT_RESULTS_DIR": str(root)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, "serial"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(_cell_files(root)) < 12 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(_cell_files(root))
    assert 12 <= finished < planned, f"the kill came too late to test anything ({finished} of {planned} finished)"
    assert not (root / "results" / "smoke" / "03_cross_arch" / "records.json").exists()
    again = _run(root)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"COMPUTED {planned - finished} PLANNED {planned}" in again.stdout
    assert _records(root) == _records(tmp_path / "ref")
    rerun = _run(root)                       # everything finished: nothing is computed again
    assert f"COMPUTED 0 PLANNED {planned}" in rerun.stdout and _records(root) == _records(tmp_path / "ref")


def test_status_counts_finished_and_pending_cells(capsys):
    from elfkit import reproduce

    reproduce.status("smoke", only=["00"])
    before = capsys.readouterr().out.splitlines()[-1].split()
    ctx = ek.start("00_quickstart", "smoke", progress="off", quiet=True)
    ek.results.cached(ctx, ek.experiments.quickstart.run, recompute=True)
    reproduce.status("smoke", only=["00"])
    after = capsys.readouterr().out.splitlines()[-1].split()
    planned = int(before[2])
    assert before[:5] == ["00_quickstart", "no", str(planned), "0", str(planned)]
    assert after[:5] == ["00_quickstart", "yes", str(planned), str(planned), "0"]
