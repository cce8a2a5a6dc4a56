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


def _torch_load(path: Path):
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise ElfkitError(f"{e.filename} does not exist (a foreign set is images_best.pt + labels_best.pt, or the "
                          "res_*.pt dict of the DC/DSA/DM code; --labels names labels_best.pt)") from None
    except Exception as e:
        raise ElfkitError(f"could not load {path} as plain tensors: {_reason(e)}") from None


def _checked(images, labels, path) -> SynSet | None:
    import torch

    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise ElfkitError(f"{path}: a synthetic set is one image tensor [N, C, H, W] and one label tensor [N]")
    if labels.ndim == 2:  # soft labels are not supported by the standard protocol
        raise ElfkitError("soft labels ([N, C]) are not supported; pass hard labels [N]")
    return SynSet(images.float(), labels.long(), {})


def official_name(path: Path) -> dict:
    """What res_<method>_<dataset>_<model>_<ipc>ipc.pt (the DC/DSA/DM code's output name) says about the set."""
    import re

    m = re.fullmatch(r"res_([A-Za-z]+)_([A-Za-z0-9]+)_([A-Za-z0-9_]+?)_(\d+)ipc\.pt", Path(path).name)
    if not m:
        return {}
    from .data import ALIASES, SPECS

    key = m.group(2).lower()
    dataset = ALIASES.get(key, key)
    return {"method": m.group(1), "distill_arch": m.group(3), "ipc": int(m.group(4)),
            **({"dataset": dataset} if dataset in SPECS else {})}


def load_official(path: str | Path, exp: int = 0) -> SynSet:
    """The dict the DC/DSA/DM code saves (res_*.pt, the only file a DM run writes): {'data': [[images, labels], ...]
    (one pair per experiment), 'accs_all_exps': {...}}. Set `exp` of it, loaded with weights_only=True."""
    path = Path(path)
    obj = _torch_load(path)
    pairs = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(pairs, (list, tuple)) or not pairs or not all(isinstance(p, (list, tuple)) and len(p) == 2
                                                                     for p in pairs):
        raise ElfkitError(f"{path} is not a DC/DSA/DM result dict (a 'data' list of [images, labels] pairs)")
    if not 0 <= exp < len(pairs):
        raise ElfkitError(f"{path} holds {len(pairs)} experiment(s); --exp must be 0..{len(pairs) - 1}, got {exp}")
    syn = _checked(*pairs[exp], path)
    syn.meta.update({"source": str(path), "experiment": exp, "experiments": len(pairs), **official_name(path)})
    return syn


def load_foreign(images_path: str | Path, labels_path: str | Path | None = None, exp: int = 0, **meta) -> SynSet:
    """A set saved by the published DD codebases, already normalised with the dataset's statistics: the res_*.pt
    dict of the DC/DSA/DM code (`load_official`), or `images_best.pt` / `labels_best.pt` (MTT and its followers;
    labels default to the file beside the images). weights_only=True: plain tensors only, never arbitrary code."""
    images_path = Path(images_path)
    obj = _torch_load(images_path)
    if isinstance(obj, dict):
        return load_official(images_path, exp)
    labels_path = Path(labels_path) if labels_path else images_path.with_name(images_path.name.replace("images",
                                                                                                        "labels"))
    syn = _checked(obj, _torch_load(labels_path), images_path)
    syn.meta.update({"source": str(images_path), **meta})
    return syn
