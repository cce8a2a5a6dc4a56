"""Benchmark rows for DSA and MTT (`elfkit bench`): seconds per iteration beside a straightforward implementation
that follows the published code's structure, and MTT's peak memory at syn_steps 10 and 40, bounded vs full unroll.
Peak memory on CPU is the child process's peak RSS above its RSS before the iteration (each case in a fresh
process); on CUDA, torch.cuda.max_memory_allocated."""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from . import augment, models, seeding
from .distill import dc, state


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def dsa_outer_step(d, images, ipc, g, device, batch_real, reference: bool):
    """One DSA outer step at IPC `ipc`: matching over all classes + one image update + one inner epoch.
    reference=True: the published structure (per-class real batches re-indexed from a python list of indices, the
    network in default memory format, the inner epoch through a DataLoader); ours: dc.distill's code path."""
    from torch.utils.data import DataLoader, TensorDataset

    strategy = augment.strategy_for(d.name)
    net = models.create("ConvNet", d.spec.channel, d.num_classes, d.spec.im_size).to(device).train()
    cl = device.type == "cpu" and not reference
    if cl:
        net = net.to(memory_format=torch.channels_last)
    params = list(net.parameters())
    cls = dc.class_indices(d.y_train.cpu(), d.num_classes)
    if reference:
        idx_lists = [c.tolist() for c in cls]
        reals = [d.x_train[torch.tensor(il)[torch.randperm(len(il), generator=g)[:batch_real]].to(device)]
                 for il in idx_lists]
    else:
        reals = [d.x_train[c[torch.randperm(len(c), generator=g)[:batch_real]].to(device)] for c in cls]
    loss = dc.gm_loss(net, params, reals, list(images.split(ipc)), "ours", strategy, g, cl)
    loss.backward()
    y = state.hard_labels(d.num_classes, ipc, device)
    opt = torch.optim.SGD(params, lr=0.01)
    x_det = images.detach().clone()
    if reference:
        for xb, yb in DataLoader(TensorDataset(x_det, y), batch_size=256, shuffle=True, generator=g):
            opt.zero_grad()
            F.cross_entropy(net(augment.dsa(xb, strategy, g)), yb).backward()
            opt.step()
    else:
        for _i, xb, yb in dc.minibatches(x_det, y, g, 256, strategy, cl):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(xb), yb).backward()
            opt.step()


def dsa_rows(d, device, quick: bool) -> dict:
    ipc, batch_real = 10, 256
    g = seeding.generator(0)
    images = state.init_real(d, ipc, g).to(device).requires_grad_(True)
    out = {}
    for name, ref in (("dsa_ours", False), ("dsa_reference", True)):
        dsa_outer_step(d, images, ipc, g, device, batch_real, ref)        # warm-up
        reps = 2 if quick else 4
        _sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            dsa_outer_step(d, images, ipc, g, device, batch_real, ref)
        _sync(device)
        s = (time.perf_counter() - t) / reps
        out[name] = {"ipc": ipc, "batch_real": batch_real, "s_per_outer_step": round(s, 3)}
        print(f"{name:<24} {s:8.3f} s per outer step (matching {d.num_classes} classes + 1 inner epoch), IPC {ipc}")
    out["dsa_speedup"] = round(out["dsa_reference"]["s_per_outer_step"] / out["dsa_ours"]["s_per_outer_step"], 2)
    return out


_CHILD = r"""
import json, resource, sys, time, torch
from elfkit import models, seeding
from elfkit.distill import mtt
steps_n, unroll, dev, threads, n = int(sys.argv[1]), sys.argv[2], torch.device(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)

torch.manual_seed(0)
net = models.create("ConvNet", 1, 10, (28, 28)).to(dev).train()
names = [k for k, _ in net.named_parameters()]
start = [p.detach().clone() for p in net.parameters()]
target = [p + 0.01 * torch.randn_like(p) for p in start]
images, labels = torch.randn(n, 1, 28, 28, device=dev), torch.arange(10, device=dev).repeat_interleave(n // 10)
lr = torch.tensor(0.01, device=dev)
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
plan = mtt.plan_steps(n, steps_n, n, "color_crop_cutout_flip_scale_rotate", (28, 28), seeding.generator(0))
warm = mtt.plan_steps(10, 1, 10, "color_crop_cutout_flip_scale_rotate", (28, 28), seeding.generator(1))
mtt.trajectory_loss(net, names, start, target, images[:10], labels[:10], lr, warm, unroll)   # warm-up kernels
if dev.type == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
else:
    base = rss()
t = time.perf_counter()
mtt.trajectory_loss(net, names, start, target, images, labels, lr, plan, unroll)
if dev.type == "cuda":
    torch.cuda.synchronize(); peak = torch.cuda.max_memory_allocated() - base
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
print(json.dumps({"s_per_iter": time.perf_counter() - t, "peak_mib": peak / 2**20}))
"""


def mtt_rows(device, quick: bool, steps_pair: tuple[int, int] = (10, 40), n: int = 100) -> dict:
    """MTT at IPC 10 (n = 100 images, batch_syn = all, ConvNet, DSA): one iteration per fresh process."""
    out = {}
    lo, hi = steps_pair
    for unroll in ("bounded", "full"):
        for steps in steps_pair:
            if quick and steps == hi and unroll == "full":
                continue
            p = subprocess.run([sys.executable, "-c", _CHILD, str(steps), unroll, device.type,
                                str(torch.get_num_threads()), str(n)], capture_output=True, text=True, timeout=1800)
            if p.returncode != 0:     # e.g. the full unroll killed for memory: recorded, not fatal
                why = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1][:300]
                out[f"mtt_{unroll}_steps{steps}"] = {"syn_steps": steps, "batch_syn": n, "failed": why,
                                                     "returncode": p.returncode}
                print(f"MTT {unroll:<8} syn_steps {steps:<3} failed: {why}")
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            out[f"mtt_{unroll}_steps{steps}"] = {"syn_steps": steps, "batch_syn": n,
                                                 "s_per_iter": round(r["s_per_iter"], 2),
                                                 "peak_mib": round(r["peak_mib"], 1)}
            print(f"MTT {unroll:<8} syn_steps {steps:<3} {r['s_per_iter']:7.2f} s/iter  peak +{r['peak_mib']:8.1f} MiB")
    for unroll in ("bounded", "full"):
        if all("peak_mib" in out.get(f"mtt_{unroll}_steps{k}", {}) for k in steps_pair):
            out[f"mtt_{unroll}_peak_ratio_{hi}_vs_{lo}"] = round(out[f"mtt_{unroll}_steps{hi}"]["peak_mib"] /
                                                                 out[f"mtt_{unroll}_steps{lo}"]["peak_mib"], 2)
            print(f"MTT {unroll} peak ratio syn_steps {hi}/{lo}: x{out[f'mtt_{unroll}_peak_ratio_{hi}_vs_{lo}']}"
                  f"{' (target <= 1.5)' if unroll == 'bounded' else ''}")
    return out


def clom_rows(d, device, quick: bool) -> dict:
    """CLoM's cost on a DM iteration at the cpu profile's settings (IPC 10, 128 real images/class): without
    guidance, with a ConvNet pool (ce_code and cos with 2,048 cached real embeddings), and with the 4-architecture
    pool (one architecture drawn per call, so its cost is the pool's average). Target: at most +25 %."""
    from . import clom
    from .distill import dm

    def pool(archs):
        out = {}
        for a in archs:
            with seeding.forked(0):
                out[a] = [models.create(a, d.spec.channel, d.num_classes, d.spec.im_size).to(device)]
        return out

    cases = {"none": None,
             "ConvNet ce_code": clom.Guidance(pool(["ConvNet"]), 100.0),
             "ConvNet cos": clom.Guidance(pool(["ConvNet"]), 100.0, distance="cos", real=d, batch=2048),
             "4-arch ce_code": clom.Guidance(pool(["ConvNet", "AlexNet", "VGG11", "ResNet18"]), 100.0)}
    n, rounds = (4, 1) if quick else (12, 3)
    for g in cases.values():
        if g is not None and g.distance == "cos":
            g.real_embeddings("ConvNet", 0)          # the one-off cache fill is not per-iteration cost

    def per_iter(g) -> float:
        times = []
        for iters in (1, 1 + n):
            _sync(device)
            t = time.perf_counter()
            dm.distill(d, ipc=10, iterations=iters, batch_real=128, guidance=g, device=device, seed=0)
            _sync(device)
            times.append(time.perf_counter() - t)
        return (times[1] - times[0]) / n

    # the cases run interleaved, round after round, and each keeps its median: on the shared 2-core machine one
    # pass per case moved DM alone by up to 35 % between runs, more than the overhead being measured
    samples = {name: [] for name in cases}
    for _ in range(rounds):
        for name, g in cases.items():
            samples[name].append(per_iter(g))
    out = {}
    base = statistics.median(samples["none"])
    for name, ss in samples.items():
        s = statistics.median(ss)
        out[name] = {"s_per_iter": round(s, 3), "overhead": round(s / base - 1, 3),
                     "rounds_s": [round(x, 3) for x in ss]}
        print(f"DM + CLoM {name:<16} {s:7.3f} s/iter  ({s / base - 1:+.0%} over DM alone; rounds "
              f"{', '.join(f'{x:.3f}' for x in ss)})")
    return {"clom_dm": out}
