"""The `elfkit` console script: argument parsing only; every command calls the functions the notebooks use."""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .errors import ElfkitError


def _context(name: str, seed: int, device: str, progress: str):
    from . import log, profiles
    from .context import Context, resolve_device

    return Context(name, profiles.CPU, seed, resolve_device(device), log.resolve_progress(progress),
                   datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))


def _write_record(path: Path, kind: str, config: dict, records: list, ctx, wall: float, data_source: dict) -> None:
    from .context import provenance
    from .results import atomic_write_json, config_hash, records_sha256

    atomic_write_json(path, {"schema": 1, "experiment": kind, "profile": "cli", "config": config,
                             "config_hash": config_hash(config), "records_sha256": records_sha256(records),
                             "provenance": provenance(ctx, wall, data_source), "records": records})
    print(f"wrote {path}")


def cmd_distill(a) -> int:
    from . import data as datasets
    from .distill import METHODS

    method = a.method.upper()
    if method not in METHODS:
        raise ElfkitError(f"method {a.method!r} is not available; choose one of {sorted(METHODS)}")
    ctx = _context("cli_distill", a.seed, a.device, a.progress)
    data = datasets.load(a.dataset, device=ctx.device)
    t0 = time.perf_counter()
    syn = METHODS[method].distill(data, ipc=a.ipc, arch=a.arch, iterations=a.iterations, batch_real=a.batch_real,
                                  lr_img=a.lr_img, seed=a.seed, device=ctx.device, checkpoint=a.checkpoint,
                                  checkpoint_every=a.checkpoint_every, resume=a.resume, progress=ctx.progress)
    out = Path(a.out or f"{method.lower()}_{data.name}_ipc{a.ipc}_seed{a.seed}.safetensors")
    syn.save(out)
    print(f"wrote {out}")
    cfg = {k: v for k, v in vars(a).items() if k not in ("func", "progress", "out")}
    recs = [{"method": method, "ipc": a.ipc, "metric": "dm_loss", "iteration": i, "value": v}
            for i, v in syn.meta.get("loss_curve", [])]
    _write_record(out.with_suffix(".json"), "distill", cfg, recs, ctx, time.perf_counter() - t0, data.source)
    return 0


def cmd_evaluate(a) -> int:
    from . import data as datasets
    from .evaluate import evaluate_synset
    from .synset import load, load_foreign

    ctx = _context("cli_evaluate", a.seed, a.device, a.progress)
    path = Path(a.synset)
    if path.suffix == ".pt":
        labels = Path(a.labels) if a.labels else path.with_name(path.name.replace("images", "labels"))
        syn = load_foreign(path, labels)
    else:
        syn = load(path)
    data = datasets.load(a.dataset or syn.meta.get("dataset", "fashion_mnist"), device=ctx.device)
    if tuple(syn.images.shape[1:]) != (data.spec.channel, *data.spec.im_size):
        raise ElfkitError(f"{path}: images are {tuple(syn.images.shape[1:])} but {data.name} needs "
                          f"{(data.spec.channel, *data.spec.im_size)}; pass the right --dataset")
    t0 = time.perf_counter()
    recs = evaluate_synset(syn, data, a.arch, n_models=a.n_models, seed=a.seed, epochs=a.epochs, lr=a.lr,
                           batch_size=a.batch, dsa=not a.no_dsa, device=ctx.device, progress=ctx.progress)
    for r in recs:
        r.update(synset=str(path), ipc=syn.ipc, method=syn.meta.get("method", "foreign"))
    import pandas as pd

    from .tables import mean_std, pivot_pm

    print(pivot_pm(mean_std(pd.DataFrame(recs), ["method", "eval_arch"]), "method", "eval_arch").to_string())
    cfg = {k: v for k, v in vars(a).items() if k not in ("func", "progress", "out")}
    _write_record(Path(a.out or path.with_suffix(".eval.json")), "evaluate", cfg, recs, ctx,
                  time.perf_counter() - t0, data.source)
    return 0


def cmd_reproduce(a) -> int:
    from .reproduce import run

    return run(profile=a.profile, only=a.only, recompute=a.recompute, seed=a.seed, device=a.device)


def cmd_bench(a) -> int:
    from .bench import run

    run(quick=a.quick, out=a.out, device=a.device)
    return 0


def cmd_list_models(a) -> int:
    from .models import list_models

    names = list_models(a.pattern)
    if not names:
        raise ElfkitError(f"no registered model matches {a.pattern!r}; `elfkit list-models` lists all")
    print("\n".join(names))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="elfkit", description="Dataset distillation companion for ELF and CLoM.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, progress=True):
        sp.add_argument("--seed", type=int, default=0, help="base seed (evaluation model i uses seed+i)")
        sp.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
        if progress:
            sp.add_argument("--progress", default="auto", choices=["auto", "bar", "rows", "off"],
                            help="progress display (default: bar in a terminal, rows when redirected)")

    d = sub.add_parser("distill", help="distil a synthetic set and save it as .safetensors (+ a .json record)")
    d.add_argument("--method", default="dm", help="distillation method (available: DM)")
    d.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist | mnist | cifar10 | cifar100 | svhn | "
                   "tinyimagenet | synthetic")
    d.add_argument("--ipc", type=int, default=10, help="images per class")
    d.add_argument("--arch", default="ConvNet", help="distillation network (see `elfkit list-models`)")
    d.add_argument("--iterations", type=int, default=20000, help="outer iterations (DM paper: 20000)")
    d.add_argument("--batch-real", type=int, default=256, help="real images per class per iteration")
    d.add_argument("--lr-img", type=float, default=1.0, help="SGD learning rate on the pixels (momentum 0.5)")
    d.add_argument("--checkpoint", help="checkpoint file (safetensors); with --resume, continue from it")
    d.add_argument("--checkpoint-every", type=int, default=500, help="iterations between checkpoints")
    d.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    d.add_argument("--out", help="output .safetensors path (default: <method>_<dataset>_ipc<N>_seed<S>.safetensors)")
    common(d)
    d.set_defaults(func=cmd_distill)

    e = sub.add_parser("evaluate", help="train fresh models on a synthetic set and test them (standard protocol)")
    e.add_argument("synset", help="an elfkit .safetensors SynSet, or images_best.pt from the published codebases")
    e.add_argument("--labels", help="labels_best.pt for a foreign images_best.pt (default: next to it)")
    e.add_argument("--dataset", help="dataset of the test set (default: from the SynSet metadata)")
    e.add_argument("--arch", nargs="+", default=["ConvNet"], help="evaluation architectures")
    e.add_argument("--n-models", type=int, default=5, help="fresh models per architecture")
    e.add_argument("--epochs", type=int, default=1000, help="E (runs E+1 epochs; lr x0.1 after E//2+1)")
    e.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (momentum 0.9, wd 5e-4)")
    e.add_argument("--batch", type=int, default=256, help="minibatch size")
    e.add_argument("--no-dsa", action="store_true", help="train without DSA augmentation (DC protocol)")
    e.add_argument("--out", help="records file (default: <synset>.eval.json)")
    common(e)
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("reproduce", help="run the notebooks through papermill at a profile")
    r.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"], help="scale (default: cpu)")
    r.add_argument("--only", nargs="+", help="notebook slugs or numbers, e.g. 00_quickstart or 00")
    r.add_argument("--recompute", action="store_true", help="rerun for real (default: replay committed results)")
    common(r, progress=False)
    r.set_defaults(func=cmd_reproduce)

    b = sub.add_parser("bench", help="benchmark DM iterations and evaluation against a straightforward version")
    b.add_argument("--quick", action="store_true", help="fewer repetitions (a rough number in ~1 minute)")
    b.add_argument("--out", help="JSON output (default: bench/<device>.json)")
    b.add_argument("--device", default="auto", help="auto | cpu | cuda")
    b.set_defaults(func=cmd_bench)

    m = sub.add_parser("list-models", help="registered architectures")
    m.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'ConvNet*'")
    m.set_defaults(func=cmd_list_models)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ElfkitError as e:
        print(f"elfkit: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `elfkit list-models | head`
        return 0
    except KeyboardInterrupt:
        print("interrupted; checkpoints written so far are kept (rerun with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
