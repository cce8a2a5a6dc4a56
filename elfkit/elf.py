"""ELF — evaluation with distillation features (docs/elf.md §2–§6): the four feature losses, the loss modes, features
computed once, and the ELF training of a split evaluation network. Baseline = loss mode `task`, everything else equal.
Decision ids (D1, D2, ...) are explained in docs/decisions.md."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import models
from .data import Data
from .errors import ElfkitError
from .evaluate import evaluate_synset
from .synset import SynSet

FEATURE_LOSSES = ("CE", "L2", "L1", "COS")
LOSS_MODES = ("task", "front_task", "rear_task", "front_rear", "front_rear_task")


def feature_loss(kind: str, s: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """s = front output, f = stored feature, both [B, C, H, W] (docs/elf.md §4.2).
    CE:  probability-target CE over channels with the *unnormalised* f: -(f * log_softmax(s, 1)).sum(1).mean().
    L2/L1: mean over all B·C·H·W elements.  COS: ONE cosine distance over the whole flattened batch, eps on the
    product of norms: 1 - <u, v> / (|u| |v| + 1e-6)."""
    kind = kind.upper()
    if s.shape != f.shape:
        raise ElfkitError(f"feature shapes differ: front {tuple(s.shape)} vs feature {tuple(f.shape)}")
    if kind == "CE":
        return -(f * F.log_softmax(s, dim=1)).sum(dim=1).mean()
    if kind == "L2":
        return F.mse_loss(s, f)
    if kind == "L1":
        return F.l1_loss(s, f)
    if kind == "COS":
        u, v = s.reshape(-1), f.reshape(-1)
        return 1 - (u * v).sum() / (u.norm() * v.norm() + 1e-6)
    raise ElfkitError(f"unknown feature loss {kind!r}; choose one of {FEATURE_LOSSES}")


@torch.no_grad()
def compute_features(feature_model: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """The feature model's front output for every image, once, in eval mode, no augmentation, no gradient."""
    front, _ = models.split(feature_model)
    was = feature_model.training
    feature_model.eval()
    out = torch.cat([front(c).float() for c in x.split(batch)])
    feature_model.train(was)
    return out


def check_shapes(eval_arch: str, data: Data, feats: torch.Tensor) -> None:
    want = models.feature_shape(eval_arch, data.spec.channel, data.spec.im_size)
    if tuple(feats.shape[1:]) != tuple(want):
        hint = models.matching_feature_model(eval_arch, data.spec.channel, data.spec.im_size)
        raise ElfkitError(f"the feature model gives {tuple(feats.shape[1:])} features but {eval_arch}'s split needs "
                          f"{tuple(want)}; train a matching feature model ({hint})")


def irreducible_ce(f: torch.Tensor) -> torch.Tensor:
    """The part of the channel-CE front term no student can remove: with F = Σ_c f_c ≥ 0 at each position and
    p = f / F, -(f · log q).sum(1) = F·H(p) + F·KL(p ‖ q), so the minimum over q is mean(F·H(p)) (docs/elf.md §4.2)."""
    f = f.detach().float()
    total = f.sum(1)
    p = f / total.clamp_min(1e-30)[:, None]
    entropy = -(p * p.clamp_min(1e-30).log()).sum(1)
    return (total * entropy).mean()


class ElfLoss:
    """loss_fn(model, x_aug, y, idx) for train.train_and_eval. Each term is a batch mean, so the loss of a
    micro-batch weighted by its share equals the full-batch loss, except for the batch-wide COS."""

    def __init__(self, feats: torch.Tensor, mode: str = "front_rear_task", kind: str = "CE", lam_front: float = 1.0,
                 lam_rear: float = 1.0, feature_model: nn.Module | None = None, log_terms: bool = False):
        if mode not in LOSS_MODES:
            raise ElfkitError(f"unknown loss mode {mode!r}; choose one of {LOSS_MODES}")
        self.feats, self.mode, self.kind = feats, mode, kind.upper()
        self.lam_front, self.lam_rear = lam_front, lam_rear
        self.feature_model = feature_model       # set: features of the augmented batch (a flagged deviation, decision D2)
        if self.kind not in FEATURE_LOSSES:
            raise ElfkitError(f"unknown feature loss {kind!r}; choose one of {FEATURE_LOSSES}")
        self.decomposable = self.kind != "COS" or "front" not in mode or mode == "front_task"
        # log_terms: per call [front, front's irreducible part, rear, task, batch size], kept on the device
        self.log: list[torch.Tensor] | None = [] if log_terms else None

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        front, rear = models.split(model)
        s = front(x)
        task = F.cross_entropy(rear(s), y)
        if self.mode == "task":
            return task
        if self.feature_model is not None:
            with torch.no_grad():
                f = models.split(self.feature_model)[0](x).float()
        else:
            f = self.feats[idx]
        if self.mode == "front_task":                      # the release always uses channel-CE here (decision D5)
            return self.lam_front * feature_loss("CE", s, f) + task
        rear_term = F.cross_entropy(rear(f), y)          # f is a constant: this term trains the rear only
        if self.mode == "rear_task":
            return self.lam_rear * rear_term + task
        front_term = feature_loss(self.kind, s, f)
        if self.log is not None:
            self.log.append(torch.stack([front_term.detach(), irreducible_ce(f), rear_term.detach(), task.detach(),
                                         torch.tensor(float(len(y)), device=y.device)]))
        if self.mode == "front_rear":                      # no task term; λ_rear ignored (weight 1), as released
            return self.lam_front * front_term + rear_term
        return self.lam_front * front_term + self.lam_rear * rear_term + task

    def terms_by_epoch(self, epochs: int) -> dict:
        """The logged terms as per-epoch means (weighted by batch size) over the E+1 epochs of training."""
        if not self.log or len(self.log) % epochs:       # not E+1 epochs of equal calls: nothing to split
            return {}
        t = torch.stack(self.log).cpu().double()
        t = t.reshape(epochs, -1, t.shape[1])                  # every epoch makes the same calls
        w = t[:, :, 4]
        mean = (t[:, :, :4] * w[..., None]).sum(1) / w.sum(1)[:, None]
        names = ("front", "front_irreducible", "rear", "task")
        return {"epoch": list(range(epochs)), **{n: mean[:, i].tolist() for i, n in enumerate(names)}}


def evaluate(
    synset: SynSet, data: Data, archs, feature_model_for, *, mode: str = "front_rear_task", kind: str = "CE",
    lam_front: float = 1.0, lam_rear: float = 1.0, on_augmented: bool = False, n_models: int = 3, seed: int = 0,
    epochs: int = 300, lr: float = 0.01, batch_size: int = 256, dsa: bool = True, test_batch: int = 256,
    device: str | torch.device = "cpu", progress: str = "off", terms: list | None = None, protocol=None,
    features: torch.Tensor | None = None,
) -> list[dict]:
    """ELF evaluation: identical to evaluate.evaluate_synset (same seeds, schedule, augmentation, test pass) except
    for the loss. `feature_model_for(arch)` returns the (trained) feature ConvNet whose split output matches arch's
    split. Mode `task` takes exactly the baseline code path. `terms` (a list): each architecture's ElfLoss is
    appended to it and logs its terms (read them with terms_by_epoch(epochs + 1); one model per call).
    `features`: the set's features, computed before (compute_features); then `feature_model_for` is only needed for
    on_augmented, and may be None."""
    device = torch.device(device)
    x = synset.images.to(device)

    def loss_for(arch: str):
        if mode == "task":
            return None
        fm = feature_model_for(arch).to(device) if feature_model_for is not None else None
        if features is not None:
            feats = features.to(device)
        else:
            feats = compute_features(fm, x, test_batch)     # once, un-augmented (the release's behaviour)
        check_shapes(arch, data, feats)
        if on_augmented and fm is None:
            raise ElfkitError("on_augmented needs the feature model itself (features of each augmented batch)")
        loss = ElfLoss(feats, mode, kind, lam_front, lam_rear, fm if on_augmented else None,
                       log_terms=terms is not None)
        if terms is not None:      # the caller reads each model's terms_by_epoch(epochs + 1) afterwards
            terms.append(loss)
        return loss

    recs = evaluate_synset(synset, data, archs, n_models=n_models, seed=seed, epochs=epochs, lr=lr,
                           batch_size=batch_size, dsa=dsa, test_batch=test_batch, device=device, progress=progress,
                           loss_for=loss_for, label="ELF", protocol=protocol)
    return [{**r, "eval_mode": "elf" if mode != "task" else "baseline", "loss_mode": mode, "feature_loss": kind}
            for r in recs]


def unavailable(arch: str, data: Data, source: str = "wide", distill_arch: str = "ConvNet") -> str:
    """Why ELF cannot evaluate `arch` with features from `source` ("" if it can): no split point, no ConvNet
    feature model of the split's shape, or (source="distill") distillation features of another shape."""
    c, hw = data.spec.channel, data.spec.im_size
    try:
        want = models.feature_shape(arch, c, hw)
        if source == "distill":
            have = models.feature_shape(distill_arch, c, hw)
            return "" if have == want else (f"{distill_arch} gives {have} features but {arch}'s split needs {want}; "
                                            "the release has no adapter")
        models.matching_feature_model(arch, c, hw)
        return ""
    except models.ModelError as e:
        return str(e)


def feature_models(data: Data, root, *, epoch: int = 100, seed: int = 3407, epochs: int | None = None,
                   source: str = "wide", distill_arch: str = "ConvNet", device="cpu", train_missing: bool = False,
                   progress: str = "off", snapshots: tuple[int, ...] = ()):
    """`arch -> feature model` for ELF, trained on the real data and cached under `root` by config hash.
    source="wide" (the release, decision D1): a ConvNet whose split output matches arch's split (width 128 for the ConvNet
    family, 512 for ResNet-18/VGG-11, 192 for AlexNet), ELF_buffer.sh recipe, seed 3407, snapshot `epoch`.
    source="distill" (the paper's wording): the distillation ConvNet itself, trained as an MTT expert (plain SGD,
    50 epochs by default). Its 128×4×4 features fit only ConvNet-family splits; other architectures would need an
    adapter that the release does not have, so they raise.
    `snapshots`: further epochs to keep on the same trajectory, so that getters for several epochs of one training
    run share it (the feature-epoch ablation); () keeps the trajectory of the default (cached) configuration."""
    from . import experts

    if source not in ("wide", "distill"):
        raise ElfkitError(f"feature source must be 'wide' or 'distill', got {source!r}")
    recipe = "elf_feature" if source == "wide" else "mtt_expert"
    cache: dict[str, nn.Module] = {}

    def get(arch: str) -> nn.Module:
        if source == "distill":
            name = distill_arch
            want = models.feature_shape(arch, data.spec.channel, data.spec.im_size)
            have = models.feature_shape(name, data.spec.channel, data.spec.im_size)
            if want != have:
                raise ElfkitError(f"feature_source='distill': the distillation network {name} gives {have} features "
                                  f"but {arch}'s split needs {want}; the release has no adapter. Use "
                                  "feature_source='wide' for this architecture.")
        else:
            name = models.matching_feature_model(arch, data.spec.channel, data.spec.im_size)
        if name not in cache:
            rec = experts.recipe_of(recipe, epochs)
            n_ep = rec.epochs
            snaps = sorted({epoch, n_ep, *snapshots})
            cfg_folder = experts.folder_for(root, experts.trajectory_config(data, name, rec, seed, snaps))
            if not (cfg_folder / f"epoch_{epoch:04d}.safetensors").is_file() and not train_missing:
                raise ElfkitError(f"no {name} feature model (epoch {epoch} of {n_ep}, seed {seed}) under {root}; "
                                  f"train it: elfkit train-feature-model --arch {name} --recipe {recipe} "
                                  f"--epochs {n_ep} --snapshots {epoch} --seed {seed} --root {root}")
            traj = experts.train(data, name, recipe=recipe, seed=seed, root=root, snapshot_epochs=snaps,
                                 epochs=n_ep, device=device, progress=progress)
            cache[name] = traj.model(epoch, data.spec.channel, data.num_classes, data.spec.im_size, device)
        return cache[name]

    return get
