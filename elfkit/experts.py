"""Networks trained on real data with per-epoch snapshots: ELF feature models, MTT experts, pre-trained pools.

One trainer, three recipes (`RECIPES`): each snapshot is a full state dict (parameters and buffers, decision D10) in a
safetensors file; the trajectory folder is keyed by the config hash (decision D11), so a stale file can never win, and an
interrupted run resumes from its last snapshot to the same final weights. Decision ids: docs/decisions.md."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from . import augment, log, models, seeding
from .data import Data
from .errors import DivergenceError, ElfkitError
from .train import CPU_MICRO_BATCH, accuracy, channels_last_on_cpu, minibatches


@dataclass(frozen=True)
class Recipe:
    epochs: int                 # snapshots 0..epochs (0 = initialisation)
    lr: float
    momentum: float
    weight_decay: float
    milestones: tuple[int, ...]  # lr x0.1 after finishing these epoch indices
    dsa: bool                   # DSA with independent per-sample parameters
    batch_size: int = 256
    rebuild: bool = True        # rebuild the optimiser at a milestone (momentum reset, DC/ELF code) or keep it
                                # (torch MultiStepLR, the PTM trainer)


RECIPES = {
    # ELF_buffer.sh: 200 epochs, SGD(0.01, 0.9, 5e-4), x0.1 after epoch index 101 (docs/elf.md §3.2)
    "elf_feature": Recipe(200, 0.01, 0.9, 5e-4, (101,), True),
    # MTT buffer.py: 50 epochs, plain SGD 0.01, no momentum, no weight decay, constant lr (docs/base-methods.md §6.1)
    "mtt_expert": Recipe(50, 0.01, 0.0, 0.0, (), True),
    # CLoM pre-trained models: 150 epochs, SGD(0.01, 0.9, 5e-3), milestones 50/100, no augmentation (docs/ptm.md §10)
    # (MultiStepLR([50, 100]) steps after each epoch: the decays follow epoch indices 49 and 99, momentum kept)
    "ptm": Recipe(150, 0.01, 0.9, 5e-3, (49, 99), False, rebuild=False),
}


def recipe_of(recipe: Recipe | str, epochs: int | None = None) -> Recipe:
    """A recipe, optionally shortened to `epochs` (cpu profile); milestones inside the shorter run are kept."""
    rec = RECIPES[recipe] if isinstance(recipe, str) else recipe
    if epochs is None:
        return rec
    return replace(rec, epochs=epochs, milestones=tuple(m for m in rec.milestones if m < epochs))


@dataclass
class Trajectory:
    folder: Path
    arch: str
    config: dict
    test_acc: dict = field(default_factory=dict)     # epoch -> accuracy on the test set (reported, never selected)

    def epochs(self) -> list[int]:
        return sorted(int(p.stem.split("_")[1]) for p in self.folder.glob("epoch_*.safetensors"))

    def state(self, epoch: int) -> dict[str, torch.Tensor]:
        from .safefile import load_tensors

        p = self.folder / f"epoch_{epoch:04d}.safetensors"
        if not p.is_file():
            raise ElfkitError(f"no snapshot for epoch {epoch} in {self.folder} (have {self.epochs()})")
        return load_tensors(p, "snapshot", f"delete {self.folder} to retrain this trajectory")[0]

    def model(self, epoch: int, channel: int, num_classes: int, im_size, device="cpu") -> torch.nn.Module:
        """The network with the snapshot's weights, in eval mode."""
        net = models.create(self.arch, channel=channel, num_classes=num_classes, im_size=im_size)
        net.load_state_dict(self.state(epoch))
        return net.to(device).eval()


def trajectory_config(data: Data, arch: str, recipe: Recipe, seed: int, snapshot_epochs) -> dict:
    return {"dataset": data.name, "n_train": len(data.y_train), "arch": arch, "recipe": asdict(recipe), "seed": seed,
            "snapshots": list(snapshot_epochs) if snapshot_epochs is not None else "all"}


def folder_for(root: Path, cfg: dict) -> Path:
    h = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
    return Path(root) / f"{cfg['arch']}_{cfg['dataset']}_seed{cfg['seed']}_{h}"


def _save(path: Path, tensors: dict, meta: dict) -> None:
    """Atomic and checksummed (elfkit.safefile): a killed run never leaves half a snapshot."""
    from .safefile import save_tensors

    save_tensors(path, tensors, {k: json.dumps(v) for k, v in meta.items()})


def train(
    data: Data, arch: str, *, recipe: Recipe | str = "elf_feature", seed: int = 0, root: str | Path,
    snapshot_epochs=None, epochs: int | None = None, device: str | torch.device = "cpu", progress: str = "off",
    test_every: int = 0,
) -> Trajectory:
    """Train `arch` on the whole real training set and keep snapshots (all epochs, or `snapshot_epochs`).
    `epochs` shortens the recipe (cpu profile); the milestones are kept where they fall inside it.
    Resumable: rerunning with the same arguments continues from the last complete epoch."""
    rec = recipe_of(recipe, epochs)
    device = torch.device(device)
    cfg = trajectory_config(data, arch, rec, seed, snapshot_epochs)
    folder = folder_for(root, cfg)
    folder.mkdir(parents=True, exist_ok=True)
    keep = set(range(rec.epochs + 1)) if snapshot_epochs is None else set(snapshot_epochs) | {0, rec.epochs}
    (folder / "config.json").write_text(json.dumps(cfg, indent=1))
    with seeding.forked(seed, device):
        net = models.create(arch, channel=data.spec.channel, num_classes=data.num_classes, im_size=data.spec.im_size)
    net = net.to(device)
    cl = device.type == "cpu" and channels_last_on_cpu(net)
    if cl:
        net = net.to(memory_format=torch.channels_last)
    micro = CPU_MICRO_BATCH * 4 if device.type == "cpu" and not models.has_batchnorm(net) else None
    g = seeding.generator(seeding.derive(seed, "expert", arch))
    lr = rec.lr
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=rec.momentum, weight_decay=rec.weight_decay)
    traj = Trajectory(folder, arch, cfg)
    state_file = folder / "resume.safetensors"
    start = 0
    if state_file.is_file():
        from .safefile import load_tensors

        t, raw = load_tensors(state_file, "resume state", f"delete {state_file} to restart this trajectory")
        meta = {k: json.loads(v) for k, v in raw.items()}
        start, lr, traj.test_acc = meta["epoch"], meta["lr"], {int(k): v for k, v in meta["test_acc"].items()}
        net.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("net.")})
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=rec.momentum, weight_decay=rec.weight_decay)
        bufs = [t.get(f"mom.{i}") for i in range(len(list(net.parameters())))]
        for p, b in zip(net.parameters(), bufs):
            if b is not None:
                opt.state[p]["momentum_buffer"] = b.to(device)
        g.set_state(t["rng"])
    elif 0 in keep:
        _save(folder / "epoch_0000.safetensors", net.state_dict(), {"epoch": 0})
    strategy = augment.strategy_for(data.name) if rec.dsa else None
    x, y = data.x_train.to(device), data.y_train.to(device)
    t0 = time.perf_counter()
    with log.Progress(rec.epochs, f"{arch} {data.name}", progress) as bar:
        bar.update(start)
        for ep in range(start, rec.epochs):
            net.train()
            total = torch.zeros((), device=device)
            for idx, xb, yb in minibatches(x, y, g, rec.batch_size, strategy, cl):
                opt.zero_grad(set_to_none=True)
                for xc, yc in (zip(xb.split(micro), yb.split(micro)) if micro else [(xb, yb)]):
                    loss = F.cross_entropy(net(xc), yc, reduction="sum") / len(idx)
                    loss.backward()
                    total += loss.detach() * len(idx)
                opt.step()
            mean_loss = float(total) / len(x)
            if mean_loss != mean_loss:
                raise DivergenceError(f"{arch}: training loss became NaN in epoch {ep}; the snapshots so far are "
                                      f"kept in {folder}")
            if ep in rec.milestones:
                lr *= 0.1
                if rec.rebuild:
                    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=rec.momentum,
                                          weight_decay=rec.weight_decay)
                else:
                    for group in opt.param_groups:
                        group["lr"] = lr
            if test_every and ((ep + 1) % test_every == 0 or ep + 1 == rec.epochs):
                traj.test_acc[ep + 1] = accuracy(net, data.x_test.to(device), data.y_test.to(device))
            if ep + 1 in keep:
                _save(folder / f"epoch_{ep + 1:04d}.safetensors", net.state_dict(), {"epoch": ep + 1})
            resume = {f"net.{k}": v for k, v in net.state_dict().items()}
            resume.update({f"mom.{i}": opt.state[p]["momentum_buffer"] for i, p in enumerate(net.parameters())
                           if "momentum_buffer" in opt.state.get(p, {})})
            resume["rng"] = g.get_state()
            _save(state_file, resume, {"epoch": ep + 1, "lr": lr, "test_acc": traj.test_acc})
            bar.update(1, loss=mean_loss)
    if start < rec.epochs:   # provenance of the run that finished the trajectory
        from .provenance import describe_device, git_dirty, git_sha

        (folder / "provenance.json").write_text(json.dumps({
            "git_sha": git_sha(), "git_dirty": git_dirty(), "torch": torch.__version__,
            "device": describe_device(device), "resumed_from_epoch": start, "wall_s": round(time.perf_counter() - t0, 1),
            "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "test_acc": traj.test_acc},
            indent=1))
    return traj


def pool(data: Data, arch: str, n: int, *, recipe: Recipe | str = "mtt_expert", seed: int = 0, root: str | Path,
         epochs: int | None = None, snapshot_epochs=None, device: str | torch.device = "cpu", progress: str = "off",
         test_every: int = 0) -> list[Trajectory]:
    """`n` trajectories of `arch` with truly distinct initialisations and data orders (member i: seed
    derive(seed, "pool", arch, i)); each is cached and resumable on its own, so an interrupted pool continues
    with the member it stopped in (the reference saves buffers in files of 10 trajectories; here one folder each)."""
    out = []
    for i in range(n):
        out.append(train(data, arch, recipe=recipe, seed=seeding.derive(seed, "pool", arch, i) % 2**31, root=root,
                         snapshot_epochs=snapshot_epochs, epochs=epochs, device=device, progress=progress,
                         test_every=test_every))
    return out


def load_pool(root: str | Path, arch: str, data: Data, make: str = "train-experts") -> list[Trajectory]:
    """The finished trajectories of `arch` on `data`'s dataset under `root` (as `pool` wrote them), oldest seed
    order kept stable by folder name."""
    out = []
    for cfg_file in sorted(Path(root).glob("*/config.json")):
        cfg = json.loads(cfg_file.read_text())
        folder = cfg_file.parent
        if cfg.get("arch") != arch or cfg.get("dataset") != data.name:
            continue
        traj = Trajectory(folder, arch, cfg)
        if traj.epochs() and max(traj.epochs()) == cfg["recipe"]["epochs"]:
            out.append(traj)
    if not out:
        how = (f"`elfkit pretrain --archs {arch} --source {data.name} --root {root}`" if make == "pretrain" else
               f"`elfkit train-experts --arch {arch} --dataset {data.name} --root {root}`")
        raise ElfkitError(f"no finished {arch} trajectories on {data.name} under {root}; train them with {how}")
    return out
