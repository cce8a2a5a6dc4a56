"""Tests for elfkit.data: the synthetic set, the IDX reader, finding Fashion-MNIST offline, the not-found error."""
import gzip
import struct
from pathlib import Path

import pytest
import torch

from elfkit import data as D
from elfkit.errors import DataNotFoundError, ElfkitError


def idx_bytes(t: torch.Tensor) -> bytes:
    """IDX encoding of a uint8 tensor: magic 2051 for [N, H, W] images, 2049 for [N] labels, big-endian dims."""
    magic = {3: 2051, 1: 2049}[t.ndim]
    return struct.pack(f">I{t.ndim}I", magic, *t.shape) + t.numpy().tobytes()


def write_idx(path: Path, t: torch.Tensor) -> Path:
    raw = idx_bytes(t)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return path


def u8(*shape, seed=0):
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def fake_fashion_folder(folder: Path, n_train=6, n_test=4, gz=True) -> Path:
    """The four Fashion-MNIST IDX files with tiny contents (right layout, wrong counts)."""
    folder.mkdir(parents=True, exist_ok=True)
    sfx = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{sfx}", u8(n_train, 28, 28, seed=1))
    write_idx(folder / f"train-labels-idx1-ubyte{sfx}", torch.arange(n_train, dtype=torch.uint8) % 10)
    write_idx(folder / f"t10k-images-idx3-ubyte{sfx}", u8(n_test, 28, 28, seed=2))
    write_idx(folder / f"t10k-labels-idx1-ubyte{sfx}", torch.arange(n_test, dtype=torch.uint8) % 10)
    return folder


@pytest.fixture
def no_fashion(tmp_path, monkeypatch):
    """No Fashion-MNIST anywhere: empty ELFKIT_DATA, no Debian folder, empty cache, and the download fails."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("ELFKIT_DATA", str(empty))
    monkeypatch.setattr(D, "DEBIAN_DIR", tmp_path / "no-such-debian-dir")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ELFKIT_NO_DATA", raising=False)
    calls = []

    def offline():
        calls.append(1)
        raise OSError("no network")

    monkeypatch.setattr(D, "_download_fashion_mnist", offline)
    return calls


# --- synthetic ---------------------------------------------------------------------------------------------------

def test_synthetic_shapes_and_classes():
    d = D.synthetic()
    assert d.name == "synthetic" and d.num_classes == 10
    assert d.x_train.shape == (640, 1, 28, 28) and d.x_test.shape == (200, 1, 28, 28)
    assert d.y_train.dtype == torch.int64 and d.x_train.dtype == torch.float32
    assert torch.bincount(d.y_train).tolist() == [64] * 10
    assert torch.bincount(d.y_test).tolist() == [20] * 10
    assert len(d.class_names) == 10
    assert torch.isfinite(d.x_train).all()


def test_synthetic_custom_sizes():
    d = D.synthetic(num_classes=3, n_train=5, n_test=2, seed=1)
    assert d.x_train.shape == (15, 1, 28, 28) and d.x_test.shape == (6, 1, 28, 28)
    assert torch.bincount(d.y_train).tolist() == [5, 5, 5]
    assert len(d.class_names) == 3


def test_synthetic_is_deterministic_per_seed():
    a, b, c = D.synthetic(seed=0), D.synthetic(seed=0), D.synthetic(seed=1)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_test, b.x_test)
    assert not torch.allclose(a.x_train, c.x_train)


def test_synthetic_classes_are_separable_by_their_template():
    """Same-class images are closer to their class mean than to other class means (the set carries signal)."""
    d = D.synthetic()
    means = torch.stack([d.x_train[d.y_train == c].mean(0) for c in range(10)]).flatten(1)
    dist = torch.cdist(d.x_test.flatten(1), means)
    assert (dist.argmin(1) == d.y_test).float().mean() > 0.9


# --- IDX reader --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".gz", ""])
def test_read_idx_round_trips_images_and_labels(tmp_path, suffix):
    imgs = u8(3, 5, 4)
    labels = torch.tensor([7, 0, 9], dtype=torch.uint8)
    pi = write_idx(tmp_path / f"images{suffix}", imgs)
    pl = write_idx(tmp_path / f"labels{suffix}", labels)
    ri, rl = D.read_idx(pi), D.read_idx(pl)
    assert ri.shape == (3, 5, 4) and ri.dtype == torch.uint8 and torch.equal(ri, imgs)
    assert rl.shape == (3,) and torch.equal(rl, labels)


def test_read_idx_bad_magic(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(struct.pack(">IIII", 2052, 1, 2, 2) + bytes(4))
    with pytest.raises(ElfkitError, match="not an IDX.*magic 2052"):
        D.read_idx(p)


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_read_idx_truncated_body(tmp_path, suffix):
    p = tmp_path / f"images{suffix}"
    raw = idx_bytes(u8(4, 6, 6))[:-10]
    if suffix:
        with gzip.open(p, "wb") as f:
            f.write(raw)
    else:
        p.write_bytes(raw)
    with pytest.raises(ElfkitError, match=r"truncated \(134 of 144 values\)"):
        D.read_idx(p)


def test_read_idx_truncated_header(tmp_path):
    p = tmp_path / "images"
    p.write_bytes(idx_bytes(u8(4, 6, 6))[:10])   # magic + 1.5 of the 3 dims
    with pytest.raises(ElfkitError):
        D.read_idx(p)


def test_read_idx_truncated_gzip_stream(tmp_path):
    p = write_idx(tmp_path / "images.gz", u8(4, 6, 6))
    p.write_bytes(p.read_bytes()[:-20])           # a download cut off mid-stream
    with pytest.raises(ElfkitError):
        D.read_idx(p)


# --- finding and loading Fashion-MNIST -----------------------------------------------------------------------------

def test_find_fashion_mnist_in_elfkit_data(tmp_path, monkeypatch):
    root = fake_fashion_folder(tmp_path / "data")
    monkeypatch.setenv("ELFKIT_DATA", str(root))
    assert D.find_fashion_mnist() == root


def test_find_fashion_mnist_in_subfolder(tmp_path, monkeypatch):
    root = tmp_path / "data"
    sub = fake_fashion_folder(root / "fashion-mnist", gz=False)   # raw (uncompressed) files are found too
    monkeypatch.setenv("ELFKIT_DATA", str(root))
    assert D.find_fashion_mnist() == sub


def test_find_fashion_mnist_needs_all_four_files(tmp_path, monkeypatch, no_fashion):
    root = fake_fashion_folder(tmp_path / "data")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("ELFKIT_DATA", str(root))
    assert D.find_fashion_mnist() is None


def test_load_fake_folder_with_wrong_counts_raises(tmp_path, monkeypatch):
    root = fake_fashion_folder(tmp_path / "data", n_train=6, n_test=4)
    monkeypatch.setenv("ELFKIT_DATA", str(root))
    monkeypatch.delenv("ELFKIT_NO_DATA", raising=False)
    with pytest.raises(ElfkitError, match="6/4 images, expected 60000/10000"):
        D.load("fashion_mnist")


def test_not_found_error_names_both_options_and_the_download(no_fashion):
    with pytest.raises(DataNotFoundError) as e:
        D.load("fashion_mnist")
    msg = str(e.value)
    assert "ELFKIT_DATA" in msg
    assert "dataset-fashion-mnist" in msg
    assert "download" in msg and "no network" in msg
    assert no_fashion == [1]                       # the download was tried once
    assert isinstance(e.value, FileNotFoundError)  # also catchable as the builtin
    assert e.value.__cause__ is None and e.value.__suppress_context__


def test_no_data_flag_blocks_real_datasets_only(monkeypatch):
    monkeypatch.setenv("ELFKIT_NO_DATA", "1")
    with pytest.raises(ElfkitError, match="ELFKIT_NO_DATA"):
        D.load("fashion_mnist")
    with pytest.raises(ElfkitError, match="ELFKIT_NO_DATA"):
        D.load("cifar10")
    d = D.load("synthetic")
    assert d.x_train.shape == (640, 1, 28, 28)


def test_unknown_dataset_lists_choices():
    with pytest.raises(ElfkitError, match="unknown dataset 'imagenet21k'") as e:
        D.load("imagenet21k")
    for name in D.SPECS:
        assert name in str(e.value)


@pytest.mark.parametrize("alias,key", [("Fashion-MNIST", "fashion_mnist"), ("fmnist", "fashion_mnist"),
                                       ("CIFAR-10", "cifar10"), ("tiny", "tinyimagenet"), ("synthetic", "synthetic")])
def test_canonical_aliases(alias, key):
    assert D.canonical(alias) == key


# --- Data helpers --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fashion_mnist", "cifar10"])
def test_denormalise_inverts_normalisation(name):
    spec = D.SPECS[name]
    raw = u8(5, spec.channel, 8, 8)
    x = D._normalise(raw, spec)
    assert not torch.allclose(x, raw.float() / 255)   # normalisation did something
    d = D.Data(name, x, torch.zeros(5, dtype=torch.long), x, torch.zeros(5, dtype=torch.long), spec, ())
    torch.testing.assert_close(d.denormalise(x), raw.float() / 255, atol=1e-6, rtol=0)


def test_denormalise_clamps_to_unit_range():
    d = D.synthetic(num_classes=2, n_train=4, n_test=2)
    out = d.denormalise(torch.tensor([-5.0, 0.5, 5.0]).view(3, 1, 1, 1))
    assert out.flatten().tolist() == [0.0, 0.5, 1.0]


def test_class_indices():
    y = torch.tensor([2, 0, 1, 2, 0, 2])
    idx = D.class_indices(y, 4)
    assert len(idx) == 4
    assert [t.tolist() for t in idx] == [[1, 4], [2], [0, 3, 5], []]
    for c, t in enumerate(idx):
        assert (y[t] == c).all()


def test_class_indices_on_synthetic():
    d = D.synthetic(num_classes=3, n_train=4, n_test=1)
    idx = D.class_indices(d.y_train, 3)
    assert sorted(torch.cat(idx).tolist()) == list(range(12))
    assert [len(t) for t in idx] == [4, 4, 4]


@pytest.mark.slow
@pytest.mark.skipif(not D.DEBIAN_DIR.is_dir(), reason=f"{D.DEBIAN_DIR} is not installed")
def test_real_fashion_mnist_from_debian(monkeypatch):
    monkeypatch.delenv("ELFKIT_DATA", raising=False)
    monkeypatch.delenv("ELFKIT_NO_DATA", raising=False)
    d = D.load("fashion_mnist")
    assert len(d.x_train) == len(d.y_train) == 60000 and len(d.x_test) == len(d.y_test) == 10000
    assert d.x_train.shape[1:] == (1, 28, 28)
    assert abs(d.x_train.mean().item()) < 0.01
    assert abs(d.x_train.std().item() - 1) < 0.01
    assert torch.bincount(d.y_train).tolist() == [6000] * 10
    assert set(d.source["files"]) == {s + ".gz" for s in D.IDX_FILES}
