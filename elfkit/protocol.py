"""The evaluation protocol as one object (docs/base-methods.md §8): how every evaluation model is trained and tested —
evaluate_synset, ELF and every experiment take it from here instead of repeating the profile's eval fields."""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class EvalProtocol:
    epochs: int             # E: the loop runs E+1 epochs, lr x0.1 after epoch E//2+1
    lr: float               # SGD lr (a set that carries a learned step size, MTT's syn_lr, is trained with that)
    batch: int              # minibatch over the synthetic set
    dsa: bool               # DSA augmentation per batch (independent per-sample parameters)
    n_models: int           # fresh models per (set, architecture); model i is seeded seed + i
    test_per_class: int     # test images per class (0 = the whole test set)
    name: str = ""          # "dsa" | "none": how the tables label it

    @classmethod
    def of(cls, p, **changes) -> EvalProtocol:
        """The profile's standard protocol (DSA as eval_dsa says), with `changes` applied."""
        fields = {"epochs": "eval_epochs", "lr": "eval_lr", "batch": "eval_batch", "dsa": "eval_dsa",
                  "n_models": "n_eval_models", "test_per_class": "test_per_class"}
        # a field that `changes` replaces is not read: the plan does not depend on it (profiles.Tracked)
        values = {k: changes.pop(k) if k in changes else getattr(p, f) for k, f in fields.items()}
        prot = replace(cls(**values), **changes)
        return replace(prot, name="dsa" if prot.dsa else "none")

    @classmethod
    def published(cls, method: str, p) -> EvalProtocol:
        """The evaluation each method is published with (§8): DC (and the DC paper's random-real row) without
        augmentation for eval_epochs_noaug epochs; DSA, DM and MTT with DSA for eval_epochs. eval_dsa=False turns
        DSA off for all. The whole test set (the papers' tables)."""
        if method in ("DC", "random_real"):
            return cls.of(p, dsa=False, epochs=p.eval_epochs_noaug, test_per_class=0)
        return cls.of(p, test_per_class=0)

    def seeds(self, seed: int) -> range:
        return range(seed, seed + self.n_models)

    def training(self) -> dict:
        """What one model's training receives (a cell's argument): nothing about how many models or which test set."""
        return {"epochs": self.epochs, "lr": self.lr, "batch": self.batch, "dsa": self.dsa}
