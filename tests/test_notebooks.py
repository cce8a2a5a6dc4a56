"""Notebooks: house conventions (static), every notebook at smoke through papermill, replay of committed results."""
import ast
import json
import os
import time
from pathlib import Path

import pytest

from elfkit.experiments import BY_SLUG

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PARAMS = ["profile", "recompute", "seed", "device", "progress", "overrides", "executor", "dataset"]


def test_notebook_parameters_are_the_ones_start_accepts():
    from elfkit.context import NOTEBOOK_PARAMETERS

    assert list(NOTEBOOK_PARAMETERS) == PARAMS


def _cells(nb):
    return json.loads(nb.read_text())["cells"]


def _src(cell):
    s = cell["source"]
    return "".join(s) if isinstance(s, list) else s


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_conventions(nb):
    doc = json.loads(nb.read_text())
    assert doc["metadata"]["kernelspec"]["name"] == "python3"
    cells = doc["cells"]
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    tree = ast.parse(_src(params[0]))
    names = [n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)]
    assert names == PARAMS
    assert all(isinstance(n.value, (ast.Constant, ast.Dict)) for n in tree.body), "literals only"
    import nbformat                                      # papermill reads each line by regex; one it cannot
    from papermill.translators import PythonTranslator   # parse warns on every run, missing from --help-notebook
    parsed = [q.name for q in PythonTranslator.inspect(nbformat.v4.new_code_cell(_src(params[0])))]
    assert parsed == PARAMS, f"papermill cannot parse {sorted(set(PARAMS) - set(parsed))}: plain comments only"
    first = _src(cells[0])
    assert cells[0]["cell_type"] == "markdown"
    assert "colab.research.google.com/github/" in first and f"notebooks/{nb.name}" in first
    assert f"labpath=notebooks%2F{nb.name}" in first
    for c in cells:
        if c["cell_type"] != "code":
            continue
        assert not c.get("outputs") and c.get("execution_count") is None, "outputs must be stripped"
        code = _src(c)
        assert len(code.splitlines()) <= 12, "code cells stay short (logic belongs in elfkit)"
        lines = [ln[:len(ln) - len(ln.lstrip())] + "pass" if ln.lstrip().startswith(("!", "%")) else ln
                 for ln in code.splitlines()]  # IPython magics are not Python
        for node in ast.walk(ast.parse("\n".join(lines))):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Lambda, ast.For, ast.While)), \
                f"no def/class/lambda/loops in notebooks: {code[:60]}"
    assert nb.stem in BY_SLUG, "each notebook has an experiment module declaring its PRODUCTS"


def _execute(nb, out, **params):
    import papermill as pm

    t0 = time.perf_counter()
    pm.execute_notebook(str(nb), str(out), cwd=str(ROOT), kernel_name="python3", progress_bar=False,
                        parameters=params, execution_timeout=300)
    return time.perf_counter() - t0


@pytest.mark.notebook
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_smoke(nb, tmp_path, results_root):
    wall = _execute(nb, tmp_path / nb.name, profile="smoke", recompute=True, progress="rows")
    print(f"{nb.stem}: smoke {wall:.1f} s")
    for p in BY_SLUG[nb.stem].PRODUCTS:
        assert (results_root / p.format(profile="smoke")).exists(), p


# notebooks whose cpu grid is still being computed, cell by cell, across sessions (results/cpu/cells): their bare
# replay must stop with the clear "no committed results" message until the records are committed
PENDING_CPU_RUNS: set[str] = set()


@pytest.mark.notebook
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_replays_committed_results(nb, tmp_path, monkeypatch):
    """A bare papermill run (no parameters) replays results/cpu from the checkout: no data, no network, fast."""
    import papermill as pm

    monkeypatch.delenv("ELFKIT_RESULTS_DIR")                  # read the committed results/ of the checkout
    monkeypatch.setenv("ELFKIT_FIGURES_DIR", str(tmp_path))    # ... but draw the figures elsewhere
    monkeypatch.setenv("ELFKIT_NO_DATA", "1")                  # any dataset load raises
    committed = (ROOT / "results" / "cpu" / nb.stem / "records.json").is_file()
    assert committed != (nb.stem in PENDING_CPU_RUNS), (
        f"{nb.stem}: records committed - remove it from PENDING_CPU_RUNS" if committed else
        f"{nb.stem}: no committed cpu records")
    if not committed:
        with pytest.raises(pm.PapermillExecutionError, match="no committed results for profile 'cpu'"):
            _execute(nb, tmp_path / nb.name)
        return
    wall = _execute(nb, tmp_path / nb.name)
    print(f"{nb.stem}: replay {wall:.1f} s")   # reported, not asserted: timings belong in the benchmark
    for p in BY_SLUG[nb.stem].PRODUCTS:
        if p.startswith("figures/"):
            assert (tmp_path / p.split("/", 1)[1].format(profile="cpu")).exists(), p
        else:
            assert (ROOT / p.format(profile="cpu")).exists(), p


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_replay_never_imports_torch(nb, tmp_path):
    """The replay path (records -> tables -> figures) runs without torch, so it stays fast on a cold machine.
    The notebook's code cells run in a fresh interpreter (IPython magics skipped) with torch made unimportable."""
    import subprocess
    import sys

    cells = []
    for c in _cells(nb):
        if c["cell_type"] == "code":
            cells.append("\n".join(ln[:len(ln) - len(ln.lstrip())] + "pass" if ln.lstrip().startswith(("!", "%"))
                                   else ln for ln in _src(c).splitlines()))
    script = ("import sys\nsys.modules['torch'] = None\n"   # any `import torch` now raises ImportError
              + "\n".join(cells))
    env = {**os.environ, "ELFKIT_FIGURES_DIR": str(tmp_path), "ELFKIT_NO_DATA": "1", "MPLBACKEND": "Agg"}
    env.pop("ELFKIT_RESULTS_DIR", None)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    if nb.stem in PENDING_CPU_RUNS:      # stops at the records, with the message and without having needed torch
        assert "no committed results for profile 'cpu'" in out.stderr and "ImportError" not in out.stderr, \
            out.stderr[-2000:]
        return
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.notebook
def test_unknown_or_textual_parameters_through_papermill(tmp_path, monkeypatch):
    """papermill only warns about a parameter the notebook lacks; elfkit stops. -p passes overrides as text."""
    import papermill as pm

    monkeypatch.delenv("ELFKIT_RESULTS_DIR")
    monkeypatch.setenv("ELFKIT_FIGURES_DIR", str(tmp_path))
    nb = ROOT / "notebooks" / "07_ptm_cross_arch.ipynb"
    with pytest.raises(pm.PapermillExecutionError, match="unknown notebook parameter.*n_eval_model"):
        _execute(nb, tmp_path / "a.ipynb", n_eval_model=2)
    with pytest.raises(pm.PapermillExecutionError, match="stale results"):   # parsed, applied, and so refused
        _execute(nb, tmp_path / "b.ipynb", overrides='{"n_eval_models": 2}')


def test_committed_results_are_clean_real_runs():
    """Committed records: produced from a clean tree, checksum intact, config hash of the current profile."""
    from elfkit import context, profiles, results
    from elfkit.experiments import BY_SLUG, grid

    files = sorted((ROOT / "results").glob("*/*/records.json"))
    for f in files:
        doc = json.loads(f.read_text())
        assert doc["provenance"]["git_dirty"] is False, f
        prof = profiles.for_dataset(profiles.get(doc["profile"]), doc["config"]["profile"].get("dataset", ""))
        assert f.parts[-3] == profiles.label(prof), f"{f}: records of {profiles.label(prof)} in the wrong folder"
        ctx = context.Context(doc["experiment"], prof, doc["config"]["seed"], None, "off")
        results.load(f, ctx)          # checksum, artefacts, config hash over the fields its plan read
        plan, _ = grid.plan_of(BY_SLUG[doc["experiment"]], prof, doc["config"]["seed"])
        assert doc["cells"] == plan.keys(), f"{f}: the records' cells are not the current plan's"
        for a in doc.get("artefacts", {}):
            assert (f.parent / a).stat().st_size < 2_000_000, f"{a}: committed artefacts stay small"
