"""The torchvision and TinyImageNet loaders on fake datasets (no downloads): layout, normalisation, labels."""
import numpy as np
import pytest
import torch

from elfkit import data
from elfkit.errors import DataNotFoundError


class _FakeTV:
    """Stands in for a torchvision dataset class: the attributes elfkit reads (data, targets/labels, classes)."""

    def __init__(self, kind, n, shape):
        self.kind, self.n, self.shape, self.__name__ = kind, n, shape, f"Fake{kind}"

    def __call__(self, root, train=None, split=None, download=False):
        g = np.random.default_rng(0 if (train or split == "train") else 1)
        obj = type("DS", (), {})()
        obj.data = g.integers(0, 256, size=(self.n, *self.shape), dtype=np.uint8)
        labels = np.arange(self.n) % 10
        if self.kind == "svhn":
            obj.labels = labels
        else:
            obj.targets = torch.as_tensor(labels) if self.kind == "mnist" else list(labels)
            obj.classes = [f"c{i}" for i in range(10)]
        return obj


@pytest.mark.parametrize("key,shape", [("mnist", (28, 28)), ("cifar10", (32, 32, 3)), ("svhn", (3, 32, 32))])
def test_torchvision_datasets_become_normalised_nchw_tensors(key, shape, monkeypatch, tmp_path):
    from elfkit.torchvision_compat import torchvision

    tv = torchvision()
    cls = {"mnist": "MNIST", "cifar10": "CIFAR10", "svhn": "SVHN"}[key]
    monkeypatch.setattr(tv.datasets, cls, _FakeTV(key, 20, shape))
    monkeypatch.setenv("ELFKIT_DATA", str(tmp_path))
    d = data.load(key)
    spec = data.SPECS[key]
    assert d.x_train.shape == (20, spec.channel, *spec.im_size) and d.x_train.dtype == torch.float32
    assert d.y_train.tolist() == [i % 10 for i in range(20)]
    raw = _FakeTV(key, 20, shape)(None, train=True, split="train").data
    first = torch.as_tensor(raw[0]).float() / 255
    first = first[None] if key == "mnist" else (first.permute(2, 0, 1) if key == "cifar10" else first)
    want = (first - torch.tensor(spec.mean).view(-1, 1, 1)) / torch.tensor(spec.std).view(-1, 1, 1)
    assert torch.allclose(d.x_train[0], want, atol=1e-6)


def test_torchvision_failure_is_one_clear_error(monkeypatch, tmp_path):
    from elfkit.torchvision_compat import torchvision

    def offline(*a, **k):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision().datasets, "MNIST", offline)
    monkeypatch.setenv("ELFKIT_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="ELFKIT_DATA"):
        data.load("mnist")


def test_tinyimagenet_from_a_folder(tmp_path, monkeypatch):
    from PIL import Image

    root = tmp_path / "tiny-imagenet-200"
    wnids = ["n01", "n02"]
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids))
    ann = []
    for k, w in enumerate(wnids):
        (root / "train" / w / "images").mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((64, 64, 3), 40 * k + i, np.uint8)).save(root / "train" / w / "images" / f"{w}_{i}.JPEG")
        Image.fromarray(np.full((64, 64, 3), 100 + k, np.uint8)).save(root / "val" / "images" / f"val_{k}.JPEG")
        ann.append(f"val_{k}.JPEG\t{w}\t0\t0\t64\t64")
    (root / "val" / "val_annotations.txt").write_text("\n".join(ann))
    monkeypatch.setenv("ELFKIT_DATA", str(tmp_path))
    d = data.load("tinyimagenet")
    assert d.x_train.shape == (4, 3, 64, 64) and d.y_train.tolist() == [0, 0, 1, 1]
    assert d.x_test.shape == (2, 3, 64, 64) and d.y_test.tolist() == [0, 1] and d.class_names == ("n01", "n02")


def test_tinyimagenet_missing_names_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ELFKIT_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="tiny-imagenet-200"):
        data.load("tinyimagenet")


@pytest.mark.parametrize("key", ["cifar10", "cifar100"])
def test_cifar_from_torchvision_on_disk_format(key, cifar_on_disk):
    """The exact code a user with internet runs (torchvision's own CIFAR reader, elfkit's conversion), on a small
    fixture written in torchvision's on-disk layout; only the MD5 check of the real archive is bypassed."""
    from elfkit.torchvision_compat import torchvision

    tv = torchvision()
    cls = tv.datasets.CIFAR10 if key == "cifar10" else tv.datasets.CIFAR100
    n_cls = 10 if key == "cifar10" else 100
    batches = cifar_on_disk(key)
    d = data.load(key)
    spec = data.SPECS[key]
    n_train = 12 * len(cls.train_list)
    assert d.x_train.shape == (n_train, 3, 32, 32) and d.x_test.shape == (12, 3, 32, 32)
    assert d.class_names[:2] == ("class0", "class1")
    first = batches[cls.train_list[0][0]]["data"][0].reshape(3, 32, 32)          # CHW rows of the pickled batch
    want = (torch.as_tensor(first).float() / 255 - torch.tensor(spec.mean).view(3, 1, 1)) / torch.tensor(
        spec.std).view(3, 1, 1)
    assert torch.allclose(d.x_train[0], want, atol=1e-6)
    assert d.y_test.tolist() == [i % n_cls for i in range(12)]
