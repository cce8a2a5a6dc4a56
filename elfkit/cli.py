"""The `elfkit` console script: argument parsing only; every command calls the functions the notebooks use."""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .cli_checks import COUNT, RATE, SIZE, WEIGHT, OneLineParser, check_run_paths
from .errors import ElfkitError


def _context(name: str, seed: int, device: str, progress: str):
    from . import log, profiles
    from .context import Context, resolve_device

    dev = resolve_device(device)   # resolved: CLI commands seed from their own arguments, not the cpu profile's
    return Context(name, profiles.CPU, seed, dev, log.resolve_progress(progress),
                   datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), resolved=dev)


def _write_record(path: Path, kind: str, config: dict, records: list, ctx, wall: float, data_source: dict) -> None:
    from .provenance import of_run
    from .results import atomic_write_json, config_hash, doc_sha256, records_sha256

    doc = {"schema": 1, "experiment": kind, "profile": "cli", "config": config, "config_hash": config_hash(config),
           "records_sha256": records_sha256(records), "provenance": of_run(ctx, wall, data_source),
           "records": records}
    atomic_write_json(path, {**doc, "sha256": doc_sha256(doc)})
    print(f"wrote {path}")


# CLI option -> keyword of the distill functions; an option a method does not take is an error, not ignored
_DISTILL_OPTIONS = ("iterations", "batch_real", "lr_img", "metric", "init", "loops", "syn_steps", "expert_epochs",
                    "max_start_epoch", "lr_lr", "lr_teacher", "batch_syn")


def cmd_distill(a) -> int:
    import inspect

    from . import experts, zca
    from .distill import METHODS

    method = a.method.upper()
    if method not in METHODS:
        raise ElfkitError(f"method {a.method!r} is not available; choose one of {sorted(METHODS)}")
    fn = METHODS[method].distill
    takes = set(inspect.signature(fn).parameters) | (set(inspect.signature(METHODS["DC"].distill).parameters)
                                                     if method == "DSA" else set())
    kw = {k: getattr(a, k) for k in _DISTILL_OPTIONS if getattr(a, k, None) is not None}
    wrong = sorted(k for k in kw if k not in takes)
    if wrong:
        raise ElfkitError(f"--{', --'.join(w.replace('_', '-') for w in wrong)} does not apply to {method}; "
                          f"see `elfkit distill --help`")
    out = Path(a.out or f"{method.lower()}_{a.dataset}_ipc{a.ipc}_seed{a.seed}.safetensors")
    check_run_paths(a, out, kw.get("iterations"))
    ctx = _context("cli_distill", a.seed, a.device, a.progress)
    data = zca.load(a.dataset + ("+zca" if a.zca else ""), device=ctx.device)
    if a.clom:
        kw["guidance"] = _guidance(a, data, ctx)
    if method == "MTT":
        if not a.experts:
            raise ElfkitError("MTT needs expert trajectories: pass --experts DIR (trained with "
                              "`elfkit train-experts --root DIR`)")
        kw["experts"] = experts.load_pool(a.experts, a.arch, data)
    t0 = time.perf_counter()
    syn = fn(data, ipc=a.ipc, arch=a.arch, seed=a.seed, device=ctx.device, checkpoint=a.checkpoint,
             checkpoint_every=a.checkpoint_every, resume=a.resume, progress=ctx.progress, **kw)
    syn.save(out)
    print(f"wrote {out}")
    cfg = {k: v for k, v in vars(a).items() if k not in ("func", "progress", "out")}
    recs = [{"method": method, "ipc": a.ipc, "metric": "distill_loss", "iteration": c[0], "value": c[1]}
            for c in syn.meta.get("loss_curve", [])]
    _write_record(out.with_suffix(".json"), "distill", cfg, recs, ctx, time.perf_counter() - t0, data.source)
    return 0


_CLOM_NAMES = {"ce": "ce_code", "ce_code": "ce_code", "ce-ratio": "ce_ratio", "ce_ratio": "ce_ratio", "cos": "cos"}


def _guidance(a, target, ctx):
    """The CLoM term from --pool DIR (elfkit pretrain --root DIR) for `elfkit distill --clom ...`."""
    from . import experts, ptm

    if a.clom not in _CLOM_NAMES:
        raise ElfkitError(f"--clom {a.clom!r}: choose ce (= ce_code, the released code), ce-ratio or cos")
    if not a.pool:
        raise ElfkitError("--clom needs --pool DIR with pre-trained models (elfkit pretrain --root DIR)")
    if not Path(a.pool).is_dir():
        raise ElfkitError(f"--pool {a.pool}: no such folder; build a pool with `elfkit pretrain --root {a.pool}`")
    source = ptm.source_data(a.source or target.name, device=ctx.device)
    archs = a.pool_archs or ["ConvNet"]
    pools = {arch: experts.load_pool(a.pool, arch, source, make="pretrain") for arch in archs}
    return ptm.guidance(pools, source=source, target=target, epoch=a.ptm_epoch, alphas=a.alphas,
                        distance=_CLOM_NAMES[a.clom], model_num=a.model_num, batch=a.clom_batch, seed=a.seed,
                        device=ctx.device)


def cmd_pretrain(a) -> int:
    from . import ptm

    ctx = _context("cli_pretrain", a.seed, a.device, a.progress)
    src = ptm.source_data(a.source, a.per_class, a.seed, ctx.device)
    pools = ptm.train_pools(src, a.archs, a.model_num, root=a.root, epochs=a.epochs, seed=a.seed, device=ctx.device,
                            progress=ctx.progress)
    for arch, ts in pools.items():
        for t in ts:
            print(f"{t.folder}  seed {t.config['seed']}  final test_acc {t.test_acc.get(max(t.test_acc, default=0))}")
    return 0


def cmd_train_experts(a) -> int:
    from . import data as datasets, experts, zca

    ctx = _context("cli_train_experts", a.seed, a.device, a.progress)
    data = zca.load(a.dataset + ("+zca" if a.zca else ""), device=ctx.device)
    data = datasets.subset(data, a.per_class, 0, seed=a.seed)
    pool = experts.pool(data, a.arch, a.n, recipe="mtt_expert", seed=a.seed, root=a.root, epochs=a.epochs,
                        device=ctx.device, progress=ctx.progress, test_every=a.test_every)
    for t in pool:
        print(f"{t.folder}  epochs {max(t.epochs())}  test_acc {t.test_acc}")
    return 0


def cmd_evaluate(a) -> int:
    from . import zca
    from .evaluate import evaluate_synset
    from .synset import load, load_foreign

    path = Path(a.synset)
    out = Path(a.out) if a.out else Path.cwd() / f"{path.stem}.eval.json"   # never beside the input (e.g. results/)
    if out.is_dir():
        raise ElfkitError(f"--out {out} is a folder; give a file name such as {out / 'eval.json'}")
    if out.exists() and not a.force:
        raise ElfkitError(f"{out} exists; pass --force to overwrite it or --out to write elsewhere")
    ctx = _context("cli_evaluate", a.seed, a.device, a.progress)
    if path.suffix == ".pt":           # res_*.pt of DC/DSA/DM, or images_best.pt (+ labels_best.pt) of MTT & co.
        syn = load_foreign(path, a.labels, exp=a.exp)
    else:
        syn = load(path)
    data = zca.load(a.dataset or syn.meta.get("dataset", "fashion_mnist"), device=ctx.device)   # '+zca' whitens
    if tuple(syn.images.shape[1:]) != (data.spec.channel, *data.spec.im_size):
        raise ElfkitError(f"{path}: images are {tuple(syn.images.shape[1:])} but {data.name} needs "
                          f"{(data.spec.channel, *data.spec.im_size)}; pass the right --dataset")
    t0 = time.perf_counter()
    if a.elf:
        from . import elf

        fm = elf.feature_models(data, Path(a.feature_root), epoch=a.feature_epoch, seed=a.feature_seed,
                                epochs=a.feature_epochs, source=a.feature_source, device=ctx.device)
        recs = elf.evaluate(syn, data, a.arch, fm, mode=a.loss_mode, kind=a.feature_loss, lam_front=a.lam_front,
                            lam_rear=a.lam_rear, n_models=a.n_models, seed=a.seed, epochs=a.epochs, lr=a.lr,
                            batch_size=a.batch, dsa=not a.no_dsa, device=ctx.device, progress=ctx.progress)
    else:
        recs = evaluate_synset(syn, data, a.arch, n_models=a.n_models, seed=a.seed, epochs=a.epochs, lr=a.lr,
                               batch_size=a.batch, dsa=not a.no_dsa, device=ctx.device, progress=ctx.progress)
    for r in recs:
        r.update(synset=str(path), ipc=syn.ipc, method=syn.meta.get("method", "foreign"))
    import pandas as pd

    from .tables import mean_std, pivot_pm

    print(pivot_pm(mean_std(pd.DataFrame(recs), ["method", "eval_arch"]), "method", "eval_arch").to_string())
    cfg = {k: v for k, v in vars(a).items() if k not in ("func", "progress", "out", "force")}
    _write_record(out, "evaluate", cfg, recs, ctx, time.perf_counter() - t0, data.source)
    return 0


def cmd_train_feature_model(a) -> int:
    from . import data as datasets, experts

    ctx = _context("cli_feature_model", a.seed, a.device, a.progress)
    data = datasets.load(a.dataset, device=ctx.device)
    snaps = sorted(set(a.snapshots) | {a.epochs}) if a.snapshots else None
    t = experts.train(data, a.arch, recipe=a.recipe, seed=a.seed, root=Path(a.root), snapshot_epochs=snaps,
                      epochs=a.epochs, device=ctx.device, progress=ctx.progress, test_every=a.test_every)
    print(f"trajectory in {t.folder}: snapshots {t.epochs()}; test accuracy {t.test_acc}")
    return 0


def cmd_reproduce(a) -> int:
    from .reproduce import from_args

    return from_args(a)


def cmd_bench(a) -> int:
    from .bench import run

    run(quick=a.quick, out=a.out, device=a.device, part=a.part)
    return 0


def cmd_links(args) -> int:
    from . import links

    if args.repo:
        for f in links.set_repository(args.repo):
            print(f"rewrote {f}")
    print(f"repository: {links.repository()}")
    bad = links.problems()
    for b in bad:
        print(f"out of date: {b} (run elfkit links --repo {links.repository()})")
    return 1 if bad else 0


def cmd_list_models(a) -> int:
    from .models import list_models

    names = list_models(a.pattern)
    if not names:
        raise ElfkitError(f"no registered model matches {a.pattern!r}; `elfkit list-models` lists all")
    print("\n".join(names))
    return 0


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="elfkit", description="Dataset distillation companion for ELF and CLoM.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    def common(sp, progress=True):
        sp.add_argument("--seed", type=SIZE, default=0, help="base seed (evaluation model i uses seed+i)")
        sp.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
        if progress:
            sp.add_argument("--progress", default="auto", choices=["auto", "bar", "rows", "off"],
                            help="progress display (default: bar in a terminal, rows when redirected)")

    d = sub.add_parser("distill", help="distil a synthetic set and save it as .safetensors (+ a .json record)",
                       description="Every option left out takes the method's published default (docs/base-methods.md).")
    d.add_argument("--method", default="dm", help="distillation method: dc | dsa | dm | mtt (default: dm)")
    d.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist | mnist | cifar10 | cifar100 | svhn | "
                   "tinyimagenet | synthetic")
    d.add_argument("--ipc", type=COUNT, default=10, help="images per class")
    d.add_argument("--arch", default="ConvNet", help="distillation network (see `elfkit list-models`)")
    d.add_argument("--iterations", type=COUNT, help="outer iterations (published: DC/DSA 1000, DM 20000, MTT 5000)")
    d.add_argument("--batch-real", type=COUNT, help="DC/DSA/DM: real images per class per step (published: 256)")
    d.add_argument("--lr-img", type=RATE, help="SGD lr on the pixels, momentum 0.5 (DC/DSA 0.1, DM 1, MTT 1000)")
    d.add_argument("--metric", choices=["ours", "mse", "cos"], help="DC/DSA gradient distance (default: ours)")
    d.add_argument("--init", choices=["real", "noise"], help="DC/DSA initialisation (DC: noise, DSA: real)")
    d.add_argument("--loops", type=COUNT, nargs=2, metavar=("OUTER", "INNER"),
                   help="DC/DSA loop counts (default: the published table; other IPCs take the nearest row)")
    d.add_argument("--experts", help="MTT: folder of expert trajectories (elfkit train-experts --root)")
    d.add_argument("--syn-steps", type=COUNT, help="MTT: unrolled student steps (published: 20)")
    d.add_argument("--expert-epochs", type=COUNT, help="MTT: target epochs ahead of the start (default: 2)")
    d.add_argument("--max-start-epoch", type=COUNT, help="MTT: start epoch uniform below this (default: 20)")
    d.add_argument("--lr-lr", type=WEIGHT, help="MTT: lr of the learnable step size (published: 1e-5)")
    d.add_argument("--lr-teacher", type=RATE, help="MTT: initial step size = the experts' lr (0.01)")
    d.add_argument("--batch-syn", type=COUNT, help="MTT: synthetic images per unrolled step (default: all)")
    d.add_argument("--clom", help="add CLoM guidance: ce (the released code's CE), ce-ratio (the readme's ratio) or "
                   "cos (contrastive cosine, for PTMs from another domain)")
    d.add_argument("--pool", help="CLoM: folder of pre-trained models (elfkit pretrain --root)")
    d.add_argument("--pool-archs", nargs="+", help="CLoM: architectures of the pool (default: ConvNet)")
    d.add_argument("--source", help="CLoM: the PTMs' training dataset (default: the target dataset)")
    d.add_argument("--alphas", type=WEIGHT, nargs="+", default=[100.0],
                   help="CLoM weight, one or one per --pool-archs (Fashion-MNIST table: 100)")
    d.add_argument("--ptm-epoch", type=SIZE, default=150, help="CLoM: PTM snapshot epoch (default 150)")
    d.add_argument("--model-num", type=COUNT, help="CLoM: members per architecture (default: all in --pool)")
    d.add_argument("--clom-batch", type=COUNT, default=8196, help="CLoM cos/ce-ratio: real images per call (8196)")
    d.add_argument("--zca", action="store_true", help="MTT: distil in ZCA space (kornia eps 0.1; experts must be "
                   "trained with --zca too; the set's dataset becomes '<name>+zca')")
    d.add_argument("--checkpoint", help="checkpoint file (safetensors); with --resume, continue from it")
    d.add_argument("--checkpoint-every", type=int, help="iterations between checkpoints (default: 500 or --iterations)")
    d.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    d.add_argument("--out", help="output .safetensors path (default: <method>_<dataset>_ipc<N>_seed<S>.safetensors)")
    common(d)
    d.set_defaults(func=cmd_distill)

    pt = sub.add_parser("pretrain", help="train CLoM's pre-trained models: N distinct seeds per architecture, SGD "
                        "0.01/0.9/wd 5e-3, milestones 50/100, no augmentation, a snapshot every epoch; resumable")
    pt.add_argument("--source", default="fashion_mnist", help="source dataset (mnist_5k: offline MNIST subset)")
    pt.add_argument("--archs", nargs="+", default=["ConvNet"], help="architectures (see `elfkit list-models`)")
    pt.add_argument("--model-num", type=COUNT, default=10, help="members per architecture, each with its own seed")
    pt.add_argument("--epochs", type=COUNT, default=150, help="training epochs (published: 150)")
    pt.add_argument("--per-class", type=SIZE, default=0, help="source images per class (0 = all)")
    pt.add_argument("--root", required=True, help="folder for the pools (one subfolder per model)")
    common(pt)
    pt.set_defaults(func=cmd_pretrain)

    t = sub.add_parser("train-experts", help="train MTT expert trajectories (N nets x E epochs, plain SGD 0.01, "
                       "DSA, a snapshot per epoch; resumable)")
    t.add_argument("--dataset", default="fashion_mnist", help="dataset the experts train on")
    t.add_argument("--arch", default="ConvNet", help="the distillation network (see `elfkit list-models`)")
    t.add_argument("--n", type=COUNT, default=100, help="number of experts, each with its own seed (published: 100)")
    t.add_argument("--epochs", type=COUNT, default=50, help="epochs per trajectory (published: 50)")
    t.add_argument("--per-class", type=SIZE, default=0, help="real images per class (0 = all)")
    t.add_argument("--test-every", type=SIZE, default=10, help="test accuracy every N epochs (reported only)")
    t.add_argument("--zca", action="store_true", help="train on ZCA-whitened images (for MTT --zca)")
    t.add_argument("--root", required=True, help="folder for the trajectories (one subfolder per expert)")
    common(t)
    t.set_defaults(func=cmd_train_experts)

    e = sub.add_parser("evaluate", help="train fresh models on a synthetic set and test them (standard protocol)")
    e.add_argument("synset", help="an elfkit .safetensors SynSet, or res_*.pt / images_best.pt of published code")
    e.add_argument("--labels", help="labels_best.pt for a foreign images_best.pt (default: next to it)")
    e.add_argument("--exp", type=SIZE, default=0, help="which experiment of a res_*.pt result dict (default 0)")
    e.add_argument("--dataset", help="dataset of the test set (default: from the SynSet metadata)")
    e.add_argument("--arch", nargs="+", default=["ConvNet"], help="evaluation architectures")
    e.add_argument("--n-models", type=COUNT, default=5, help="fresh models per architecture")
    e.add_argument("--epochs", type=COUNT, default=1000, help="E (runs E+1 epochs; lr x0.1 after E//2+1)")
    e.add_argument("--lr", type=RATE, default=0.01, help="SGD learning rate (momentum 0.9, wd 5e-4)")
    e.add_argument("--batch", type=COUNT, default=256, help="minibatch size")
    e.add_argument("--no-dsa", action="store_true", help="train without DSA augmentation (DC protocol)")
    e.add_argument("--out", help="records file (default: ./<synset name>.eval.json, in the current folder)")
    e.add_argument("--force", action="store_true", help="overwrite an existing --out records file")
    e.add_argument("--elf", action="store_true", help="ELF: train with features of a matching feature model")
    e.add_argument("--loss-mode", default="front_rear_task", choices=["task", "front_task", "rear_task", "front_rear",
                   "front_rear_task"], help="ELF loss composition (default: front_rear_task; task = baseline)")
    e.add_argument("--feature-loss", default="CE", choices=["CE", "L2", "L1", "COS"], help="ELF front loss")
    e.add_argument("--lam-front", type=WEIGHT, default=1.0, help="weight of the front (feature) term")
    e.add_argument("--lam-rear", type=WEIGHT, default=1.0, help="weight of the rear (feature → logits) term")
    e.add_argument("--feature-root", default="feature_models", help="folder of trained feature models")
    e.add_argument("--feature-epoch", type=SIZE, default=100, help="feature-model snapshot (release: 100)")
    e.add_argument("--feature-epochs", type=COUNT, help="length of the feature model's training (release: 200)")
    e.add_argument("--feature-seed", type=SIZE, default=3407, help="seed of the feature model (release: 3407)")
    e.add_argument("--feature-source", default="wide", choices=["wide", "distill"],
                   help="wide: a ConvNet matching the split width (the release); distill: the width-128 "
                   "distillation ConvNet trained as an MTT expert (the paper's wording; ConvNet-family splits only)")
    common(e)
    e.set_defaults(func=cmd_evaluate)

    f = sub.add_parser("train-feature-model", help="train a network on real data keeping per-epoch snapshots "
                       "(ELF feature models, MTT experts, pre-trained pools)")
    f.add_argument("--dataset", default="fashion_mnist", help="training data")
    f.add_argument("--arch", default="ConvNetW512", help="ConvNetW512 matches ResNet18/VGG11, ConvNet matches ConvNet")
    f.add_argument("--recipe", default="elf_feature", choices=["elf_feature", "mtt_expert", "ptm"],
                   help="optimiser and schedule (elf_feature: 200 epochs SGD 0.01/0.9/5e-4, x0.1 after 101)")
    f.add_argument("--epochs", type=COUNT, help="shorten the recipe (milestones inside it are kept)")
    f.add_argument("--snapshots", type=SIZE, nargs="+", help="epochs to keep (default: every epoch)")
    f.add_argument("--root", default="feature_models", help="output folder (one subfolder per config hash)")
    f.add_argument("--test-every", type=SIZE, default=0, help="record test accuracy every N epochs (0: never)")
    f.add_argument("--seed", type=SIZE, default=3407, help="initialisation and data-order seed (release: 3407)")
    f.add_argument("--device", default="auto", help="auto | cpu | cuda")
    f.add_argument("--progress", default="auto", choices=["auto", "bar", "rows", "off"], help="progress display")
    f.set_defaults(func=cmd_train_feature_model)

    from .reproduce import add_arguments

    r = sub.add_parser("reproduce", help="run the notebooks through papermill at a profile")
    add_arguments(r)
    r.set_defaults(func=cmd_reproduce)

    from .cell_runner import add_arguments as cells_arguments

    cells_arguments(sub.add_parser("cells", help="compute one or several experiments' pending cells (a long grid, in "
                                   "session-sized slices with --hours; --next: a redo's pending profile values); "
                                   "resumable"))

    b = sub.add_parser("bench", help="benchmark DM iterations and evaluation against a straightforward version")
    b.add_argument("--quick", action="store_true", help="fewer repetitions (a rough number in ~1 minute)")
    b.add_argument("--out", help="JSON output (default: bench/<device>-<threads>threads[-distill].json)")
    b.add_argument("--part", default="all", choices=["all", "base", "distill"],
                   help="base: DM step, evaluation, ELF overhead; distill: DSA, MTT (time, peak memory), CLoM")
    b.add_argument("--device", default="auto", help="auto | cpu | cuda")
    b.set_defaults(func=cmd_bench)

    gc = sub.add_parser("gpu-check", help="the prepared device check: benchmark rows, then DM IPC 10, ConvNet and ELF "
                        "evaluations at paper scale, sized to --budget-s and resumable (results/<scale>/gpu_check/)")
    from .gpu_check import add_arguments as gpu_check_arguments

    gpu_check_arguments(gc)

    ln = sub.add_parser("links", help="show or set the repository the badges and the Colab clone URL point to")
    ln.add_argument("--repo", help="github.com/OWNER/NAME of your fork (rewrites pyproject.toml, README, notebooks)")
    ln.set_defaults(func=cmd_links)

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
