"""`elfkit gpu-check`: one prepared device check that turns a lent GPU (about 10 minutes) into paper-scale
evidence — benchmark rows, then the paper-profile fidelity slice on Fashion-MNIST: DM IPC 10, its ConvNet
evaluation beside the published 83.5 ± 0.3, an ELF feature model (ConvNetW512) on the full training set, and
baseline vs ELF on ResNet-18 and VGG-11. `--dataset cifar10` runs the same slice on CIFAR-10 where the device
holds its files (torchvision's layout in $ELFKIT_DATA; the device machines have no network), beside 48.9 ± 0.6.

Every part is sized before it runs: one small unit of it is timed on the device and the part gets as many
iterations / epochs as its share of the budget allows, up to the published count (the plan, with its estimates,
is written first and printed as an ETA). Each part's record is written to <out>/<part>.json as it finishes, and a
rerun skips finished parts and continues an interrupted DM run from its checkpoint: a check cut short by the
device's time limit resumes on the next lease."""
from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

from .errors import ElfkitError

SCALES = {   # paper: the published settings (docs/base-methods.md §4, §8; docs/elf.md §3, §6); smoke: CI on CPU
    "paper": {"dataset": "fashion_mnist", "ipc": 10, "dm_iterations": 20000, "dm_batch_real": 256,
              "eval_epochs": 1000, "n_models": 5, "feature_epochs": 200, "feature_epoch": 100,
              "elf_archs": ["ResNet18", "VGG11"], "elf_models": 3, "bench": True},
    "smoke": {"dataset": "synthetic", "ipc": 2, "dm_iterations": 4, "dm_batch_real": 8, "eval_epochs": 2,
              "n_models": 2, "feature_epochs": 2, "feature_epoch": 1, "elf_archs": ["ConvNetW32"], "elf_models": 1,
              "bench": False},
}
SHARES = {"dm": 0.35, "dm_eval": 0.05, "feature_model": 0.25, "elf": 0.35}   # of the budget left after the bench
PARTS = ("bench", "dm", "dm_eval", "feature_model", "elf")


def published_dm(dataset: str, ipc: int) -> dict | None:
    """The published DM ConvNet accuracy at `ipc` on `dataset` (elfkit/reference/base_methods.json; Fashion-MNIST
    IPC 10: 83.5 ± 0.3), or None where none is published."""
    from .paths import PACKAGE_DIR

    doc = json.loads((PACKAGE_DIR / "reference" / "base_methods.json").read_text())
    hit = [e for e in doc["entries"] if (e["dataset"], e["method"], e["ipc"]) == (dataset, "DM", ipc)]
    return {k: hit[0][k] for k in ("mean", "std", "source", "status")} if hit else None


def device_facts(dev) -> dict:
    """GPU name, driver, CUDA and torch versions (what a record must carry to be compared across machines)."""
    import torch

    facts = {"device": str(dev), "torch": torch.__version__, "cuda": torch.version.cuda}
    if dev.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(dev)
        try:
            facts["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                             capture_output=True, text=True, timeout=20).stdout.strip() or "unknown"
        except (OSError, subprocess.TimeoutExpired):
            facts["driver"] = "unknown"
    return facts


def _timed(fn, dev) -> tuple[float, object]:
    """(seconds, result) of fn(), synchronised on CUDA."""
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


def plan(cfg: dict, data, dev, budget_s: float) -> dict:
    """Counts per part that fit the budget, from one measured unit each (timed after a warm-up)."""
    from .distill import dm
    from .evaluate import evaluate_synset, random_real

    syn = random_real(data, cfg["ipc"], 0)
    dm_kw = dict(ipc=cfg["ipc"], batch_real=cfg["dm_batch_real"], device=dev, seed=0)
    dm.distill(data, iterations=1, **dm_kw)                                               # warm-up
    t_dm = _timed(lambda: dm.distill(data, iterations=3, **dm_kw), dev)[0] / 3
    def per_epoch(arch):   # (seconds per epoch, fixed seconds per model: init + test pass) from E=2 and E=6 runs
        t = [_timed(lambda e=e: evaluate_synset(syn, data, [arch], n_models=1, epochs=e, device=dev,
                                                test_batch=1000), dev)[0] for e in (2, 6)]
        epoch = max((t[1] - t[0]) / 4, 1e-6)
        return epoch, max(t[0] - 3 * epoch, 0.0)

    t_eval, f_eval = per_epoch("ConvNet")
    elf_costs = [per_epoch(a) for a in cfg["elf_archs"]]
    t_elf, f_elf = sum(c[0] for c in elf_costs), sum(c[1] for c in elf_costs)
    t_feat = _feature_epoch_seconds(data, dev, cfg)
    left = budget_s * (0.8 if cfg["bench"] else 1.0)
    n_eval, n_elf = cfg["n_models"], 2 * cfg["elf_models"]                      # ELF: baseline + ELF per model
    fit = {"dm": int(SHARES["dm"] * left / t_dm),
           "dm_eval": int((SHARES["dm_eval"] * left - n_eval * f_eval) / (n_eval * t_eval)),
           "feature_model": int(SHARES["feature_model"] * left / t_feat),
           "elf": int((SHARES["elf"] * left - n_elf * f_elf) / (n_elf * t_elf))}
    p = {"dm_iterations": max(1, min(cfg["dm_iterations"], fit["dm"])),
         "eval_epochs": max(1, min(cfg["eval_epochs"], fit["dm_eval"])),
         "feature_epochs": max(2, min(cfg["feature_epochs"], fit["feature_model"])),
         "elf_epochs": max(1, min(cfg["eval_epochs"], fit["elf"])),
         "unit_seconds": {"dm_iteration": t_dm, "convnet_epoch": t_eval, "convnet_fixed": f_eval,
                          "elf_archs_epoch": t_elf, "elf_archs_fixed": f_elf, "feature_epoch": t_feat}}
    p["feature_epoch"] = min(cfg["feature_epoch"], p["feature_epochs"] // 2) if p["feature_epochs"] < \
        cfg["feature_epochs"] else cfg["feature_epoch"]    # the release reads epoch 100 of 200: keep the proportion
    p["eta_s"] = {"dm": p["dm_iterations"] * t_dm, "dm_eval": n_eval * (p["eval_epochs"] * t_eval + f_eval),
                  "feature_model": p["feature_epochs"] * t_feat, "elf": n_elf * (p["elf_epochs"] * t_elf + f_elf)}
    return p


def _feature_epoch_seconds(data, dev, cfg) -> float:
    """One training epoch of the feature model, timed on a 2,000-image slice and scaled to the training set."""
    from . import data as datasets, experts, models

    name = models.matching_feature_model(cfg["elf_archs"][0], data.spec.channel, data.spec.im_size)
    part = datasets.subset(data, max(1, 2000 // data.num_classes), 1, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        t, _ = _timed(lambda: experts.train(part, name, recipe="elf_feature", root=tmp, epochs=1, device=dev), dev)
    return t * len(data.y_train) / len(part.y_train)


def _write(out: Path, part: str, doc: dict) -> None:
    from .results import atomic_write_json

    atomic_write_json(out / f"{part}.json", doc)
    print(f"gpu-check: {part} done in {doc['wall_s']:.0f} s -> {out / (part + '.json')}", flush=True)


def run(out: str | Path | None = None, device: str = "auto", scale: str = "paper", budget_s: float = 540.0,
        progress: str = "rows", dataset: str = "") -> dict:
    """Run (or continue) the check; returns {part: record}. Records land in `out` (default results/<scale>/gpu_check,
    results/<scale>-<dataset>/gpu_check on another `dataset`, e.g. cifar10 where the device has its files)."""
    import torch

    from . import data as datasets, elf, paths, seeding
    from .context import resolve_device
    from .provenance import git_sha
    from .distill import dm
    from .evaluate import evaluate_synset
    from .synset import load

    if scale not in SCALES:
        raise ElfkitError(f"--scale must be one of {sorted(SCALES)}, got {scale!r}")
    cfg = dict(SCALES[scale])
    if dataset:
        cfg["dataset"] = datasets.canonical(dataset)
    where = scale if cfg["dataset"] == SCALES[scale]["dataset"] else f"{scale}-{cfg['dataset']}"
    dev = resolve_device(device)
    if scale == "paper" and dev.type != "cuda":
        raise ElfkitError("gpu-check at the paper scale needs a CUDA GPU; use --scale smoke --device cpu to try "
                          "the command here")
    # records in `out` (committed for the paper scale); checkpoint and feature models in `work` (never committed)
    work = Path(out) / "work" if out else paths.runs_dir(scale) / f"gpu_check{where[len(scale):]}"
    out = Path(out) if out else paths.results_dir(where, "gpu_check")
    out.mkdir(parents=True, exist_ok=True)
    seeding.seed_all(0, deterministic=False, threads=None)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True       # the paper profile is not bit-deterministic anyway (docs)
    data = datasets.load(cfg["dataset"], device=dev)
    plan_file = out / "plan.json"
    if plan_file.is_file():
        the_plan = json.loads(plan_file.read_text())
    else:
        the_plan = plan(cfg, data, dev, budget_s)
        _write_plan(plan_file, the_plan, cfg, budget_s)
    eta = sum(the_plan["eta_s"].values())
    print(f"gpu-check [{scale}] on {device_facts(dev).get('gpu', dev)}: plan {json.dumps(the_plan['eta_s'])} "
          f"-> ETA {eta:.0f} s (+ benchmark)", flush=True)
    base = {"scale": scale, "config": cfg, "plan": the_plan, "git_sha": git_sha(), **device_facts(dev)}
    done = {p: json.loads((out / f"{p}.json").read_text()) for p in PARTS if (out / f"{p}.json").is_file()}
    if cfg["bench"] and "bench" not in done:
        from . import bench
        from .bench_distill import mtt_rows

        t0 = time.perf_counter()
        rows = bench.run(quick=True, out=str(out / "bench_rows.json"), device=str(dev), part="base")
        rows.update(mtt_rows(dev, quick=True))
        rows["bf16_matmul_gflops"] = _bf16_rate(dev)
        done["bench"] = {**base, "part": "bench", "rows": rows, "wall_s": time.perf_counter() - t0}
        _write(out, "bench", done["bench"])
    syn_path = out / f"dm_ipc{cfg['ipc']}.safetensors"
    if "dm" not in done:
        t0 = time.perf_counter()
        n = the_plan["dm_iterations"]
        syn = dm.distill(data, ipc=cfg["ipc"], iterations=n, batch_real=cfg["dm_batch_real"], device=dev, seed=0,
                         checkpoint=work / "dm.ckpt", checkpoint_every=max(1, n // 10), resume=True, progress=progress)
        syn.save(syn_path)
        done["dm"] = {**base, "part": "dm", "iterations": n, "published_iterations": cfg["dm_iterations"],
                      "loss_curve": syn.meta["loss_curve"], "wall_s": time.perf_counter() - t0}
        _write(out, "dm", done["dm"])
    syn = load(syn_path)
    common = dict(seed=0, device=dev, progress=progress, test_batch=1000)
    if "dm_eval" not in done:
        t0 = time.perf_counter()
        recs = evaluate_synset(syn, data, ["ConvNet"], n_models=cfg["n_models"], epochs=the_plan["eval_epochs"],
                               **common)
        done["dm_eval"] = {**base, "part": "dm_eval", "epochs": the_plan["eval_epochs"], "records": recs,
                           "published": published_dm(cfg["dataset"], cfg["ipc"]),
                           "wall_s": time.perf_counter() - t0}
        _write(out, "dm_eval", done["dm_eval"])
    getter = elf.feature_models(data, work / "feature_models", epoch=the_plan["feature_epoch"],
                                epochs=the_plan["feature_epochs"], device=dev, train_missing=True, progress=progress)
    if "feature_model" not in done:
        from .train import accuracy

        t0 = time.perf_counter()
        fm = getter(cfg["elf_archs"][0])
        done["feature_model"] = {**base, "part": "feature_model", "epochs": the_plan["feature_epochs"],
                                 "snapshot": the_plan["feature_epoch"], "published_epochs": cfg["feature_epochs"],
                                 "test_acc": accuracy(fm.to(dev), data.x_test, data.y_test),
                                 "wall_s": time.perf_counter() - t0}
        _write(out, "feature_model", done["feature_model"])
    if "elf" not in done:
        t0 = time.perf_counter()
        kw = dict(n_models=cfg["elf_models"], epochs=the_plan["elf_epochs"], **common)
        recs = [dict(r, eval_mode="baseline") for r in evaluate_synset(syn, data, cfg["elf_archs"], **kw)]
        recs += elf.evaluate(syn, data, cfg["elf_archs"], getter, mode="front_rear_task", kind="CE", **kw)
        done["elf"] = {**base, "part": "elf", "epochs": the_plan["elf_epochs"], "records": recs,
                       "wall_s": time.perf_counter() - t0}
        _write(out, "elf", done["elf"])
    return done


def _write_plan(path: Path, the_plan: dict, cfg: dict, budget_s: float) -> None:
    from .results import atomic_write_json

    atomic_write_json(path, {**the_plan, "budget_s": budget_s, "published": {k: cfg[k] for k in (
        "dm_iterations", "eval_epochs", "feature_epochs", "feature_epoch")}})


def _bf16_rate(dev, n: int = 4096, reps: int = 10) -> float:
    import torch

    a, b = (torch.randn(n, n, device=dev, dtype=torch.bfloat16) for _ in range(2))
    best = float("inf")
    for _ in range(reps + 3):
        dt, _ = _timed(lambda: a @ b, dev)
        best = min(best, dt)
    return round(2 * n**3 / best / 1e9, 1)


SET_SIZES = {"fashion_mnist": (60000, 10000), "cifar10": (50000, 10000), "cifar100": (50000, 10000)}  # train, test


def estimate(sustained_tflops: float = 13.4, dataset: str = "fashion_mnist") -> dict:
    """Seconds each paper-scale part would take at `sustained_tflops` (default: 20 % of the H200's ~67 TFLOP/s
    plain-fp32 datasheet rate — small convolutions at batch 100-256 stay far below peak), from FLOPs counted on
    this machine by torch.utils.flop_counter for one unit of each part. FLOPs depend on shapes only, so the units
    run on random stand-in images of the dataset's shape (no files needed). An estimate, not a measurement."""
    import torch
    import torch.nn.functional as F

    from . import models, seeding
    from .bench import count_flops, dm_step_ours
    from .data import SPECS, Data, canonical

    cfg, key = SCALES["paper"], canonical(dataset)
    if key not in SET_SIZES:
        raise ElfkitError(f"--estimate knows {sorted(SET_SIZES)}, not {dataset!r}")
    spec, (n_train, n_test) = SPECS[key], SET_SIZES[key]
    C, g = spec.num_classes, seeding.generator(0)
    y = torch.arange(C).repeat_interleave(cfg["dm_batch_real"])
    d = Data(key, torch.randn(len(y), spec.channel, *spec.im_size, generator=g), y,
             torch.randn(500, spec.channel, *spec.im_size, generator=g), torch.arange(500) % C, spec,
             tuple(map(str, range(C))), {"stand_in": "random tensors of the dataset's shape"})
    syn = d.x_train[:cfg["ipc"] * C].clone().requires_grad_(True)
    y_syn = torch.arange(C).repeat_interleave(cfg["ipc"])

    def train_epoch(arch, n):      # one epoch on n images (batch 256), forward + backward
        net = models.create(arch, spec.channel, C, spec.im_size)
        x, yy = d.x_train[:min(n, 256)], d.y_train[:min(n, 256)]
        return count_flops(lambda: F.cross_entropy(net(x), yy).backward()) * n / len(yy)

    def test_pass(arch):
        net = models.create(arch, spec.channel, C, spec.im_size).eval()
        with torch.no_grad():
            return count_flops(lambda: net(d.x_test)) * n_test / len(d.x_test)

    n_syn, epochs = cfg["ipc"] * C, cfg["eval_epochs"] + 1
    flops = {"dm": cfg["dm_iterations"] * count_flops(
                 lambda: dm_step_ours(d, syn, y_syn, g, torch.device("cpu"), cfg["dm_batch_real"])),
             "dm_eval": cfg["n_models"] * (epochs * train_epoch("ConvNet", n_syn) + test_pass("ConvNet")),
             "feature_model": cfg["feature_epochs"] * train_epoch(
                 models.matching_feature_model("ResNet18", spec.channel, spec.im_size), n_train),
             "elf": sum(2 * cfg["elf_models"] * (epochs * train_epoch(a, n_syn) + test_pass(a))
                        for a in cfg["elf_archs"])}
    return {part: {"tflop": round(f / 1e12, 1), "seconds": round(f / (sustained_tflops * 1e12), 1)}
            for part, f in flops.items()}


def estimate_table(sustained_tflops: float = 13.4, dataset: str = "fashion_mnist") -> str:
    """estimate() as the lines `elfkit gpu-check --estimate` prints."""
    est = estimate(sustained_tflops, dataset)
    lines = [f"{part:14s} {e['tflop']:10.1f} TFLOP  ~{e['seconds']:8.1f} s at {sustained_tflops:g} TFLOP/s"
             for part, e in est.items()]
    lines.append(f"{'total':14s} {sum(e['tflop'] for e in est.values()):10.1f} TFLOP  "
                 f"~{sum(e['seconds'] for e in est.values()):8.1f} s")
    return "\n".join(lines)


def add_arguments(gc) -> None:
    """The `elfkit gpu-check` options (cli.py builds the subcommand)."""
    from .cli_checks import RATE

    gc.add_argument("--scale", default="paper", choices=["paper", "smoke"],
                    help="paper: published settings, needs CUDA; smoke: seconds on any device (CI)")
    gc.add_argument("--budget-s", type=RATE, default=540.0, help="seconds the parts may take together (default 540)")
    gc.add_argument("--out", help="records folder (default: results/<scale>[-<dataset>]/gpu_check)")
    gc.add_argument("--dataset", default="", help="cifar10 | cifar100: the slice on that dataset (its files in "
                    "$ELFKIT_DATA; default Fashion-MNIST)")
    gc.add_argument("--device", default="auto", help="auto | cpu | cuda")
    gc.add_argument("--progress", default="rows", choices=["auto", "bar", "rows", "off"], help="progress display")
    gc.add_argument("--estimate", action="store_true", help="print each part's FLOPs, time at --tflops; runs nothing")
    gc.add_argument("--tflops", type=RATE, default=13.4, help="--estimate: sustained TFLOP/s (20%% of H200 fp32)")
    gc.set_defaults(func=from_args)


def from_args(a) -> int:
    if a.estimate:
        print(estimate_table(a.tflops, a.dataset or "fashion_mnist"))
        return 0
    done = run(out=a.out, device=a.device, scale=a.scale, budget_s=a.budget_s, progress=a.progress, dataset=a.dataset)
    print(f"gpu-check: {len(done)}/{len(PARTS) - (a.scale == 'smoke')} parts recorded")
    return 0
