"""Test setup: one thread, outputs redirected to a temporary folder, no dataset downloads."""
import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path_factory, monkeypatch):
    """Every test writes results/figures under a temporary ELFKIT_RESULTS_DIR, never into the checkout."""
    out = tmp_path_factory.mktemp("elfkit-out")
    monkeypatch.setenv("ELFKIT_RESULTS_DIR", str(out))
    monkeypatch.delenv("ELFKIT_FIGURES_DIR", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield out


@pytest.fixture
def results_root():
    return Path(os.environ["ELFKIT_RESULTS_DIR"])
