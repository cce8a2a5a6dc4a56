"""`elfkit bench`: DM seconds/iteration and evaluation seconds, ours vs the published code's structure, in GFLOP/s
beside the machine's measured fp32 matmul rate. Measured in one run on one machine; never a timed test."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from . import augment, data as datasets, models, paths, seeding
from .context import resolve_device
from .provenance import describe_device, git_sha
from .distill import dm
from .evaluate import random_real
from .train import accuracy, train_and_eval


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(device, n: int = 2048, reps: int = 10) -> float:
    """Best-of fp32 GEMM GFLOP/s: the machine's practical peak for the ops these nets are made of."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(3):
        a @ b
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


class _TotalFlops(FlopCounterMode):
    """FlopCounterMode without its per-module tracker (its hooks trip over no_grad passes on grad-carrying input)."""

    def __enter__(self):
        from torch.utils.flop_counter import _FlopCounterMode

        self.flop_counts.clear()
        self.mode = _FlopCounterMode(self)
        self.mode.__enter__()
        return self

    def __exit__(self, *args):
        b, self.mode = self.mode.__exit__(*args), None
        return b


def count_flops(fn) -> float:
    with _TotalFlops(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def _time(fn, reps, device) -> float:
    fn()  # warm-up
    _sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    _sync(device)
    return (time.perf_counter() - t) / reps


def dm_step_ours(d, images, y_syn, g, device, batch_real, it=[0]):
    """One DM iteration exactly as elfkit.distill.dm runs it (vectorised classes, chunked real pass, channels_last)."""
    cpu = device.type == "cpu"
    net = models.create("ConvNet", d.spec.channel, d.num_classes, d.spec.im_size).to(device).train().requires_grad_(False)
    if cpu:
        net = net.to(memory_format=torch.channels_last)
    cls = dm.class_indices(d.y_train.cpu(), d.num_classes)
    ridx = torch.cat([c[torch.randperm(len(c), generator=g)[:batch_real]] for c in cls]).to(device)
    xr, yr = d.x_train[ridx], d.y_train[ridx]
    xr, xs = augment.siamese_by_class(xr, yr, images, y_syn, d.num_classes, augment.strategy_for(d.name), g)
    loss = dm.dm_loss(net, dm.layout(xr, cpu), yr, dm.layout(xs, cpu), y_syn, d.num_classes, False, cpu)
    loss.backward()


def dm_step_reference(d, images, y_syn, g, device, batch_real):
    """The published main_DM.py structure: a per-class loop, one Siamese draw per class, default memory format."""
    net = models.create("ConvNet", d.spec.channel, d.num_classes, d.spec.im_size).to(device).train().requires_grad_(False)
    strategy = augment.strategy_for(d.name)
    cls = dm.class_indices(d.y_train.cpu(), d.num_classes)
    ipc = len(y_syn) // d.num_classes
    loss = torch.zeros((), device=device)
    for c in range(d.num_classes):
        xr = d.x_train[cls[c][torch.randperm(len(cls[c]), generator=g)[:batch_real]].to(device)]
        xs = images[c * ipc:(c + 1) * ipc]
        xr, xs = augment.siamese([xr, xs], strategy, g)
        er = net.embed(xr).detach()
        es = net.embed(xs)
        loss = loss + ((er.mean(0) - es.mean(0)) ** 2).sum()
    loss.backward()


def eval_reference(x, y, xt_u8, yt, d, epochs, device, g):
    """The published evaluate_synset structure: DataLoader batches, DSA per batch, contiguous tensors, and a test
    set read through a per-item transform (uint8 → float → normalise, like ToTensor + Normalize)."""
    from torch.utils.data import DataLoader, Dataset, TensorDataset

    class PerItem(Dataset):
        def __len__(self):
            return len(yt)

        def __getitem__(self, i):
            return (xt_u8[i].float() / 255 - d.spec.mean[0]) / d.spec.std[0], yt[i]

    net = models.create("ConvNet", d.spec.channel, d.num_classes, d.spec.im_size).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loader = DataLoader(TensorDataset(x, y), batch_size=256, shuffle=True, generator=g)
    t0 = time.perf_counter()
    for ep in range(epochs + 1):
        for xb, yb in loader:
            xb = augment.dsa(xb.to(device), augment.strategy_for(d.name), g)
            loss = F.cross_entropy(net(xb), yb.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
    _sync(device)
    train_s = time.perf_counter() - t0
    net.eval()
    correct = 0
    with torch.no_grad():
        for xb, yb in DataLoader(PerItem(), batch_size=256, shuffle=False):
            correct += (net(xb.to(device)).argmax(1).cpu() == yb).sum().item()
    return train_s, time.perf_counter() - t0 - train_s, correct / len(yt)


def elf_overhead(d, syn, dev, epochs: int) -> dict:
    """Wall time of an ELF evaluation (features once + front/rear/task loss) over the baseline evaluation of the same
    architecture, same seeds and epochs, test pass included (issue target: at most 1.3x)."""
    from . import elf
    from .evaluate import evaluate_synset

    out = {}
    for arch in ("ConvNet", "ResNet18"):
        fm = models.create(models.matching_feature_model(arch, 1, (28, 28)), 1, 10, (28, 28))
        t = time.perf_counter()
        evaluate_synset(syn, d, [arch], n_models=1, epochs=epochs, device=dev)
        base = time.perf_counter() - t
        t = time.perf_counter()
        elf.evaluate(syn, d, [arch], lambda a: fm, n_models=1, epochs=epochs, device=dev)
        e = time.perf_counter() - t
        out[arch] = {"epochs": epochs, "baseline_s": round(base, 2), "elf_s": round(e, 2), "ratio": round(e / base, 2)}
        print(f"ELF {arch:<10} {epochs} epochs + test: baseline {base:6.1f} s, ELF {e:6.1f} s  → x{e / base:.2f}")
    return out


def run(quick: bool = False, out: str | None = None, device: str = "auto", part: str = "all") -> dict:
    """part: all | base (DM step, evaluation, ELF overhead) | distill (DSA, MTT time and memory, CLoM overhead);
    each part writes its own file by default (bench/<device>-<threads>threads[-distill].json)."""
    dev = resolve_device(device)
    seeding.seed_all(0, deterministic=False)
    d = datasets.load("fashion_mnist", device=dev)
    rate = matmul_rate(dev)
    res = {"device": describe_device(dev), "platform": platform.platform(), "torch": torch.__version__,
           "threads": torch.get_num_threads(), "git_sha": git_sha(), "matmul_gflops": round(rate, 1)}
    print(f"{describe_device(dev)}: fp32 matmul {rate:.1f} GFLOP/s")
    if part in ("all", "base"):
        _base_rows(res, d, dev, rate, quick)
    if part in ("all", "distill"):
        from .bench_distill import clom_rows, dsa_rows, mtt_rows

        res.update(dsa_rows(d, dev, quick))
        res.update(mtt_rows(dev, quick))
        res.update(clom_rows(d, dev, quick))
    suffix = "-distill" if part == "distill" else ""
    path = Path(out) if out else (paths.repo_root() / "bench" /
                                  f"{dev.type}-{torch.get_num_threads()}threads{suffix}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {path}")
    return res


def _base_rows(res: dict, d, dev, rate: float, quick: bool) -> None:
    ipc, batch_real = 10, 256
    g = seeding.generator(0)
    images = dm.init_real(d, ipc, g).to(dev).requires_grad_(True)
    y_syn = torch.arange(10, device=dev).repeat_interleave(ipc)
    reps = 2 if quick else 5

    def step_row(name, fn):
        fl = count_flops(lambda: fn(d, images, y_syn, g, dev, batch_real))
        s = _time(lambda: fn(d, images, y_syn, g, dev, batch_real), reps, dev)
        res[name] = {"s_per_iter": round(s, 3), "gflop": round(fl / 1e9, 1), "gflops": round(fl / s / 1e9, 1),
                     "of_matmul": round(fl / s / 1e9 / rate, 2)}
        print(f"{name:<24} {s:8.3f} s/iter  {fl / s / 1e9:7.1f} GFLOP/s  ({fl / s / 1e9 / rate:4.0%} of matmul)")

    step_row("dm_step_ours", dm_step_ours)
    step_row("dm_step_reference", dm_step_reference)
    res["dm_speedup"] = round(res["dm_step_reference"]["s_per_iter"] / res["dm_step_ours"]["s_per_iter"], 2)

    epochs = 30 if quick else 300
    syn = random_real(d, ipc, 0)
    x, y = syn.images.to(dev), syn.labels.to(dev)
    net = models.create("ConvNet", 1, 10, (28, 28)).to(dev)
    step_fl = count_flops(lambda: F.cross_entropy(net(x), y).backward())
    test_fl = count_flops(lambda: accuracy(net, d.x_test[:1000], d.y_test[:1000])) * len(d.y_test) / 1000
    m = train_and_eval(models.create("ConvNet", 1, 10, (28, 28)).to(dev), x, y, d.x_test, d.y_test, epochs=epochs,
                       g=seeding.generator(1), dsa_strategy=augment.strategy_for(d.name))
    xt_u8 = ((d.x_test.cpu() * d.spec.std[0] + d.spec.mean[0]) * 255).round().to(torch.uint8)
    tr_s, te_s, _ = eval_reference(x, y, xt_u8, d.y_test.cpu(), d, epochs, dev, seeding.generator(1))
    for name, (a, b) in {"eval_ours": (m["train_s"], m["test_s"]), "eval_reference": (tr_s, te_s)}.items():
        ep = a / (epochs + 1)
        res[name] = {"epochs": epochs, "s_per_epoch": round(ep, 4), "test_pass_s": round(b, 2),
                     "s_300_epochs_plus_test": round(ep * 301 + b, 1),
                     "train_gflops": round(step_fl / ep / 1e9, 1), "test_gflops": round(test_fl / b / 1e9, 1)}
        print(f"{name:<24} {ep:8.4f} s/epoch  test pass {b:6.2f} s  → 300 epochs + test {ep * 301 + b:6.1f} s  "
              f"(train {step_fl / ep / 1e9:6.1f}, test {test_fl / b / 1e9:6.1f} GFLOP/s)")
    res["eval_speedup"] = round(res["eval_reference"]["s_300_epochs_plus_test"] /
                                res["eval_ours"]["s_300_epochs_plus_test"], 2)
    print(f"speed-up: DM x{res['dm_speedup']}, evaluation x{res['eval_speedup']}")
    res["elf_overhead"] = elf_overhead(d, syn, dev, epochs=10 if quick else 40)
