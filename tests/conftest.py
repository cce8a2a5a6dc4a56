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


def write_cifar(root: Path, key: str = "cifar10", per_batch: int = 12, seed: int = 0) -> dict:
    """A CIFAR-10/100 folder in torchvision's own on-disk layout (pickled batches + meta) under `root`, with
    `per_batch` random images per batch file and labels i % classes; returns the batches by file name. Tests
    bypass only the MD5 check of the real archive (tv.datasets.cifar.check_integrity)."""
    import pickle

    import numpy as np

    from elfkit.torchvision_compat import torchvision

    cls = torchvision().datasets.CIFAR10 if key == "cifar10" else torchvision().datasets.CIFAR100
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    n_cls, label_key = (10, "labels") if key == "cifar10" else (100, "fine_labels")
    rng = np.random.default_rng(seed)
    batches = {}
    for name, _md5 in cls.train_list + cls.test_list:
        y = list(np.arange(per_batch) % n_cls)
        batches[name] = {"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8), label_key: y}
        with open(folder / name, "wb") as f:
            pickle.dump(batches[name], f, protocol=2)
    with open(folder / cls.meta["filename"], "wb") as f:
        pickle.dump({cls.meta["key"]: [f"class{i}" for i in range(n_cls)]}, f, protocol=2)
    return batches


@pytest.fixture
def cifar_on_disk(tmp_path, monkeypatch):
    """write_cifar into ELFKIT_DATA, the MD5 check of the real archives bypassed."""
    from elfkit.torchvision_compat import torchvision

    monkeypatch.setattr(torchvision().datasets.cifar, "check_integrity", lambda *a, **k: True)
    monkeypatch.setenv("ELFKIT_DATA", str(tmp_path / "data"))
    return lambda key="cifar10", per_batch=12: write_cifar(tmp_path / "data", key, per_batch)
