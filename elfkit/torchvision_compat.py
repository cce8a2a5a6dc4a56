"""Import torchvision even where its compiled ops cannot load.

A CUDA build of torchvision next to a CPU build of torch (pip's only torchvision wheel on Linux) fails at import:
its C extension needs libtorch_cuda, and `_meta_registrations` then registers fakes for ops that were never defined.
elfkit uses only the pure-Python parts (datasets, utils), so we define the two op schemas it trips on and go on.
"""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def torchvision():
    import torch

    try:
        import torchvision as tv  # noqa: F401
        return tv
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
    import sys

    for mod in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[mod]
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        try:
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        except RuntimeError:
            pass
    torchvision._lib = lib  # keep the library object alive
    import torchvision as tv

    return tv
