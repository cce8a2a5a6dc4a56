"""SynSet: a synthetic set (images, labels, metadata) saved as safetensors; foreign *_best.pt pairs load safely."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ElfkitError

if TYPE_CHECKING:   # torch loads on first use: reading a set's arrays for a figure needs none
    import torch


@dataclass
class SynSet:
    """Images in the dataset's normalised space [N, C, H, W]; hard class-major labels [N]; metadata + provenance."""
    images: torch.Tensor
    labels: torch.Tensor
    meta: dict = field(default_factory=dict)   # method, dataset, ipc, config, seed, provenance, ...

    def __post_init__(self):
        import torch

        if self.images.ndim != 4 or self.labels.ndim != 1 or len(self.images) != len(self.labels):
            raise ElfkitError(f"a SynSet needs images [N,C,H,W] and labels [N]; got {tuple(self.images.shape)} "
                              f"and {tuple(self.labels.shape)}")
        if not torch.isfinite(self.images).all():
            raise ElfkitError("the synthetic images contain NaN or inf; the distillation diverged (lower lr_img)")

    @property
    def ipc(self) -> int:
        import torch

        return int(torch.bincount(self.labels).max())

    def save(self, path: str | Path) -> Path:
        """Atomic write of a .safetensors file with the metadata as JSON and the tensors' SHA-256 (elfkit.safefile)."""
        from .safefile import save_tensors

        return save_tensors(path, {"images": self.images, "labels": self.labels},
                            {"elfkit_meta": json.dumps(self.meta, sort_keys=True, default=str)})


@dataclass(frozen=True)
class SynSetArrays:
    """A saved SynSet read as numpy arrays (figures and replay: no torch)."""
    images: object    # np.ndarray [N, C, H, W], float32
    labels: object    # np.ndarray [N], int64
    meta: dict

    @property
    def ipc(self) -> int:
        import numpy as np

        return int(np.bincount(self.labels).max())


def read_arrays(path: str | Path) -> SynSetArrays:
    """The images, labels and metadata of an elfkit .safetensors set as numpy arrays, without importing torch."""
    from safetensors import safe_open

    from .safefile import unpack_metadata

    path = Path(path)
    if not path.is_file():
        raise ElfkitError(f"no synthetic set at {path}")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads(unpack_metadata(f.metadata()).get("elfkit_meta", "{}"))
            images, labels = f.get_tensor("images"), f.get_tensor("labels")
    except Exception as e:
        raise ElfkitError(f"{path} is not a readable SynSet ({type(e).__name__}: {str(e)[:100]}); "
                          "re-run the distillation that produced it") from None
    return SynSetArrays(images.astype("float32"), labels.astype("int64"), meta)


def load(path: str | Path) -> SynSet:
    """Load an elfkit .safetensors SynSet (never unpickles). A corrupt, truncated or bit-flipped file raises one
    clear error."""
    from .safefile import load_tensors

    path = Path(path)
    if not path.is_file():
        raise ElfkitError(f"no synthetic set at {path}")
    t, meta = load_tensors(path, "synthetic set", "re-run the distillation that produced it")
    if set(t) != {"images", "labels"}:
        raise ElfkitError(f"{path} is not an elfkit SynSet (tensors {sorted(t)}); load_foreign() reads other sets")
    return SynSet(t["images"].float(), t["labels"].long(), json.loads(meta.get("elfkit_meta", "{}")))


def _reason(e: Exception) -> str:
    """Why torch.load(weights_only=True) refused a file, in one phrase (its own message spans many lines)."""
    import re

    text = str(e)
    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if m:
        return f"it holds a pickled Python object ({m.group(1)}), not only tensors, and is never unpickled"
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(e).__name__)
    return f"{type(e).__name__}: {first.split('. ')[0]}"


def load_foreign(images_path: str | Path, labels_path: str | Path, **meta) -> SynSet:
    """A set saved by the published DD codebases: `images_best.pt` / `labels_best.pt`, already normalised with the
    dataset's statistics. Loaded with weights_only=True (plain tensors only, no arbitrary code)."""
    import torch

    try:
        images = torch.load(images_path, map_location="cpu", weights_only=True)
        labels = torch.load(labels_path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise ElfkitError(f"{e.filename} does not exist (a foreign set needs images_best.pt and labels_best.pt; "
                          "--labels names the second)") from None
    except Exception as e:
        raise ElfkitError(f"could not load {images_path} / {labels_path} as plain tensors: {_reason(e)}") from None
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise ElfkitError("images_best.pt / labels_best.pt must each hold one tensor")
    if labels.ndim == 2:  # soft labels are not supported by the standard protocol
        raise ElfkitError("soft labels ([N, C]) are not supported; pass hard labels [N]")
    return SynSet(images.float(), labels.long(), {"source": str(images_path), **meta})
