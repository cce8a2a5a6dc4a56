"""Tests for elfkit.log: progress-mode detection (terminal, redirected, Jupyter, papermill, Colab) and rows output."""
import re
import sys
import types

import pytest

from elfkit import log
from elfkit.errors import ElfkitError


class FakeStream:
    def __init__(self, tty: bool):
        self.tty = tty

    def isatty(self):
        return self.tty

    def write(self, s):
        return len(s)

    def flush(self):
        pass


@pytest.fixture
def env(monkeypatch):
    """A neutral environment: no Colab, no IPython shell, no JPY_SESSION_NAME; tests then switch one thing on."""
    import IPython

    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    monkeypatch.setattr(sys, "stderr", FakeStream(tty=False))

    def kernel():
        shell = types.SimpleNamespace(kernel=object())
        monkeypatch.setattr(IPython, "get_ipython", lambda: shell)

    def tty(value: bool):
        monkeypatch.setattr(sys, "stderr", FakeStream(tty=value))

    return types.SimpleNamespace(kernel=kernel, tty=tty, mp=monkeypatch)


@pytest.mark.parametrize("mode", ["bar", "rows", "off"])
def test_explicit_value_wins(env, mode):
    env.kernel()
    env.tty(True)
    env.mp.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert log.resolve_progress(mode) == mode


@pytest.mark.parametrize("bad", ["Bar", "tqdm", "", None])
def test_invalid_value_raises(bad):
    with pytest.raises(ElfkitError, match="progress must be one of"):
        log.resolve_progress(bad)


def test_auto_terminal_is_bar(env):
    env.tty(True)
    assert log.resolve_progress("auto") == "bar"
    assert log.resolve_progress() == "bar"   # auto is the default


def test_auto_redirected_is_rows(env):
    env.tty(False)
    assert log.resolve_progress("auto") == "rows"


def test_auto_without_ipython_installed(env):
    env.mp.setitem(sys.modules, "IPython", None)   # makes `from IPython import ...` raise ImportError
    env.tty(True)
    assert log.resolve_progress("auto") == "bar"
    env.tty(False)
    assert log.resolve_progress("auto") == "rows"


def test_ipython_shell_without_kernel_falls_back_to_tty(env):
    import IPython

    env.mp.setattr(IPython, "get_ipython", lambda: types.SimpleNamespace())   # terminal IPython: no .kernel
    env.tty(True)
    assert log.resolve_progress("auto") == "bar"


def test_kernel_without_jpy_session_is_rows(env):
    """papermill/nbclient kernels: rows, even when stderr claims to be a tty."""
    env.kernel()
    env.tty(True)
    assert log.resolve_progress("auto") == "rows"


def test_kernel_with_jpy_session_is_bar(env):
    """A notebook open in JupyterLab (jupyter_server sets JPY_SESSION_NAME): bar, even with redirected stderr."""
    env.kernel()
    env.mp.setenv("JPY_SESSION_NAME", "notebooks/00_quickstart.ipynb")
    env.tty(False)
    assert log.resolve_progress("auto") == "bar"


def test_colab_is_bar(env):
    env.mp.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    env.tty(False)
    assert log.resolve_progress("auto") == "bar"


# --- Progress -------------------------------------------------------------------------------------------------------

ROW = re.compile(r"^DM ipc10\s+(\d+)/100\s+loss\s+\S+\s+\d+\.\ds$")


def test_rows_mode_prints_about_rows_lines(capsys):
    with log.Progress(100, "DM ipc10", "rows", rows=10) as p:
        for i in range(100):
            p.update(loss=1.0 / (i + 1))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10
    assert all(ROW.match(ln) for ln in lines), lines
    assert [int(ROW.match(ln).group(1)) for ln in lines] == list(range(10, 101, 10))
    assert "0.01" in lines[-1]            # the last loss, 1/100, in the row


def test_rows_mode_always_prints_the_last_step(capsys):
    with log.Progress(7, "eval", "rows", rows=3) as p:
        for _ in range(7):
            p.update()
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[1] for ln in lines] == ["2/7", "4/7", "6/7", "7/7"]
    assert all(ln.startswith("eval") for ln in lines)


def test_rows_mode_small_total(capsys):
    with log.Progress(3, "tiny", "rows", rows=10) as p:
        for _ in range(3):
            p.update()
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_off_mode_prints_nothing(capsys):
    with log.Progress(50, "quiet", "off") as p:
        for _ in range(50):
            p.update(loss=0.5)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert p.n == 50


def test_bar_mode_uses_tqdm_on_stderr(capsys):
    with log.Progress(5, "barred", "bar") as p:
        for _ in range(5):
            p.update(loss=0.25)
    out = capsys.readouterr()
    assert out.out == ""
    assert "barred" in out.err and "5/5" in out.err
