"""The repository address lives in pyproject.toml; badges, the Colab bootstrap cell and Binder's environment agree."""
import json
import re
import shutil
import sys
import types
from pathlib import Path

import pytest

from elfkit import links
from elfkit.errors import ElfkitError

ROOT = Path(__file__).resolve().parents[1]


def test_badges_and_clone_urls_match_pyproject():
    assert links.repository() == "github.com/elfkit/elfkit"
    assert links.problems() == []


def test_a_fork_rewrites_every_link_in_one_command(tmp_path):
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    links.set_repository("github.com/someone/elfkit-fork", tmp_path)
    assert links.repository(tmp_path) == "github.com/someone/elfkit-fork"
    assert links.problems(tmp_path) == []
    text = "".join(p.read_text() for p in [tmp_path / "README.md", *links.notebooks(tmp_path)])
    assert "github.com/elfkit/elfkit" not in text and "gh/elfkit/elfkit" not in text
    assert text.count("https://github.com/someone/elfkit-fork.git") == len(links.notebooks(tmp_path))
    with pytest.raises(ElfkitError, match="OWNER/NAME"):
        links.set_repository("not a repo", tmp_path)


def _run_bootstrap(colab: bool, monkeypatch) -> list:
    """Execute the notebooks' bootstrap cell as IPython would, recording its shell commands and magics."""
    from IPython.core.inputtransformer2 import TransformerManager

    calls = []
    shell = types.SimpleNamespace(system=lambda cmd: calls.append(("!", cmd)),
                                  run_line_magic=lambda name, line, *a: calls.append(("%", name, line)))
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    code = TransformerManager().transform_cell(links.bootstrap(links.repository()))
    exec(compile(code, "bootstrap", "exec"), {"get_ipython": lambda: shell})
    return calls


def test_bootstrap_does_nothing_outside_colab(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)          # no elfkit/ folder here: only the Colab check keeps it quiet
    assert _run_bootstrap(False, monkeypatch) == []


def test_bootstrap_on_colab_clones_the_configured_repo_and_installs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    calls = _run_bootstrap(True, monkeypatch)
    assert calls[0] == ("!", f"git clone --depth 1 https://{links.repository()}.git elfkit-repo")
    assert calls[1] == ("%", "cd", "elfkit-repo")
    assert calls[2][:2] == ("%", "pip") and "-e ." in calls[2][2] and "mlxtend" in calls[2][2]


def test_bootstrap_is_skipped_inside_a_checkout(monkeypatch, tmp_path):
    (tmp_path / "elfkit").mkdir()        # rerunning the cell after the clone (cwd = the checkout)
    monkeypatch.chdir(tmp_path)
    assert _run_bootstrap(True, monkeypatch) == []


def test_binder_environment_pins_cpu_torch_matching_the_makefile():
    env = (ROOT / "environment.yml").read_text()
    pip = [re.sub(r"^\s{6}- ", "", ln).split("#")[0].strip().strip('"') for ln in env.splitlines()
           if re.match(r"\s{6}- ", ln)]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip
    pins = dict(p.split("==") for p in pip if p.startswith(("torch==", "torchvision==")))
    assert pins["torch"].endswith("+cpu") and pins["torchvision"].endswith("+cpu")
    make = re.search(r"^TORCH\s*\?=\s*(.*)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    want = dict(p.split("==") for p in make.split())
    for pkg, spec in want.items():      # e.g. torch==2.13.* in the Makefile admits 2.13.0+cpu here
        assert re.fullmatch(spec.replace(".", r"\.").replace("*", r"\d+") + r"\+cpu", pins[pkg]), (pkg, spec)
    assert "-e .[notebooks]" in pip


@pytest.mark.parametrize("nb", links.notebooks(ROOT), ids=lambda p: p.stem)
def test_notebooks_survive_a_jupyter_save_byte_identical(nb):
    """JupyterLab saves through nbformat: a committed notebook must already be in that layout, or opening it
    marks it modified and autosave rewrites it."""
    import nbformat

    raw = nb.read_text()
    assert nbformat.writes(nbformat.reads(raw, as_version=4)) + "\n" == raw
    assert json.loads(raw)["nbformat"] == 4
