"""What each kind of cell computes (elfkit.cells): `synset` distils (or draws random real) one set, `evaluate` trains
and tests one evaluation model (baseline or ELF), `trajectory` trains one network on real data with snapshots
(an ELF feature model, an MTT expert, a CLoM PTM), `features` computes one set's ELF features from one snapshot,
`calibration` measures the gradient norms CLoM's α is calibrated from. Each function sees only its arguments and the run's setup
(`Env`: device, folders, progress) — never the profile — so its key covers everything that shapes its output."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import data as datasets, seeding, snapshot_pins, zca
from .cells import Cell, CellStore
from .errors import ElfkitError


@dataclass
class Env:
    """How cells run here (never part of a key): device, where artefacts go, progress, batch of test passes."""
    device: object
    store: CellStore
    runs_dir: Path
    progress: str = "off"
    test_batch: int = 256
    checkpoint_every: int = 0
    threads: int = 0
    deterministic: bool = True
    precision: str = "fp32"    # profiles.precision: TF32 on CUDA or not
    executor: str = "serial"
    want_gpu: bool = False     # on a Ray cluster with GPUs, cells ask for one (the run's device was not 'cpu')

    def setup(self, cell: Cell) -> None:
        """Seeds (from the key: the order cells run in, or the process, cannot matter), threads and kernels."""
        seeding.seed_all(int(cell.short[:15], 16), deterministic=self.deterministic, threads=self.threads or None,
                         precision=self.precision)


_DATA: dict[tuple, datasets.Data] = {}


def load_data(spec: dict, device) -> datasets.Data:
    """The data a spec names, loaded once per process and device."""
    k = (spec["dataset"], str(device))
    if k not in _DATA:
        _DATA[k] = zca.load(spec["dataset"], device=device)      # '<name>+zca': whitened (MTT with ZCA)
    d = _DATA[k]
    if spec["train_per_class"] or spec["test_per_class"]:
        d = datasets.subset(d, spec["train_per_class"], spec["test_per_class"], seed=spec["seed"])
    return d


def trajectory_of(ref: Cell, env: Env):
    from .experts import Trajectory

    doc = env.store.get(ref)
    out = doc["output"]
    return Trajectory(env.runs_dir / out["folder"], ref.args["arch"], out["config"],
                      {int(k): v for k, v in out["test_acc"].items()})


def synset_of(ref: Cell, env: Env):
    from .synset import load

    return load(env.store.artefact(ref, ".safetensors"))


def alpha_of(spec: dict, env: Env) -> float:
    """A guidance spec's α: a number, or {"reference_alpha", "reference", "calibration"} resolved by the share rule
    of elfkit.clom_calibration from the two calibration cells' measured gradient norms."""
    a = spec["alpha"]
    if not isinstance(a, dict):
        return float(a)
    from .clom_calibration import calibrated_alpha

    ref, this = (env.store.get(a[k])["output"] for k in ("reference", "calibration"))
    return calibrated_alpha(a["reference_alpha"], ref, this,
                            same_method=a["reference"].args["method"] == a["calibration"].args["method"])


def _guidance(spec: dict, target, env: Env, alpha: float | None = None):
    from . import ptm

    pools = {a: [trajectory_of(r, env) for r in refs] for a, refs in spec["pools"].items()}
    source = load_data(spec["source"], env.device)
    alpha = alpha_of(spec, env) if alpha is None else alpha
    return ptm.guidance(pools, source=source, target=target, epoch=spec["epoch"], alphas=alpha,
                        distance=spec["distance"], model_num=spec["model_num"], batch=spec["batch"], seed=spec["seed"],
                        device=env.device)


def synset(cell: Cell, env: Env) -> dict:
    """One synthetic set, saved beside its record (results/<profile>/cells/synset/<hash>.safetensors); distillation
    checkpoints go to runs/checkpoints, so a killed cell resumes where it stopped."""
    from .distill import METHODS
    from .evaluate import random_real

    a = cell.args
    data = load_data(a["data"], env.device)
    if a["method"] == "random_real":
        syn = random_real(data, a["ipc"], a["seed"])
    else:
        if a["method"] not in METHODS:
            raise ElfkitError(f"unknown distillation method {a['method']!r}; one of {sorted(METHODS)}")
        kw = dict(a["settings"])
        if a.get("guidance"):
            kw["guidance"] = _guidance(a["guidance"], data, env)
        if a["method"] == "MTT":
            kw["experts"] = [trajectory_of(r, env) for r in a["experts"]]
        ckpt = env.runs_dir / "checkpoints" / f"{cell.short}.ckpt"
        syn = METHODS[a["method"]].distill(data, ipc=a["ipc"], arch=a["arch"], seed=a["seed"], device=env.device,
                                           checkpoint=ckpt, checkpoint_every=env.checkpoint_every, resume=True,
                                           progress=env.progress, **kw)
    path = syn.save(env.store.artefact(cell, ".safetensors"))
    from .safefile import file_sha256

    return {"file": path.name, "sha256": file_sha256(path), "loss_curve": syn.meta.get("loss_curve", []),
            "syn_lr": syn.meta.get("syn_lr")}


def calibration(cell: Cell, env: Env) -> dict:
    """The mean image-gradient norms, over `draws` calls at the method's initial set, of the base method's loss and
    of the unit-weight (α = 1) CLoM term of `guidance` (elfkit.clom_calibration states the rule that uses them)."""
    from . import clom_calibration as cc
    from .distill import state

    a = cell.args
    data = load_data(a["data"], env.device)
    m, ipc = a["method"], a["ipc"]
    g = seeding.generator(seeding.derive(a["seed"], m.lower()))      # the distiller's own initial draw
    init = a["settings"].get("init", "real") if m == "DC" else "real"
    images = state.init_images(data, ipc, init, g).to(env.device)
    labels = state.hard_labels(data.num_classes, ipc, env.device)
    experts = [trajectory_of(r, env) for r in a.get("experts", ())]          # MTT's
    base = cc.grad_norm(cc.base_loss(m, data, labels, a["arch"], a["seed"], a["settings"], experts), images,
                        a["draws"])
    guide = _guidance(a["guidance"], data, env, alpha=1.0)
    clom = cc.grad_norm(lambda x, k: guide(x, labels), images, a["draws"])
    return {"base_norm": base, "clom_norm": clom, "draws": a["draws"]}


def evaluate(cell: Cell, env: Env) -> dict:
    """One evaluation model: trained on the set under the protocol (`elf`: with ELF's loss and the feature
    model's snapshot), tested once. Model seed s initialises the network and drives its minibatches and DSA."""
    from . import elf
    from .evaluate import evaluate_synset

    from .protocol import EvalProtocol

    a = cell.args
    syn = synset_of(a["synset"], env)
    test = load_data(a["test"], env.device)
    p = a["protocol"]
    prot = EvalProtocol(**p, n_models=1, test_per_class=a["test"]["test_per_class"])
    common = dict(protocol=prot, seed=a["model_seed"], test_batch=env.test_batch, device=env.device,
                  progress=env.progress)
    e = a.get("elf")
    if not e:
        recs = evaluate_synset(syn, test, [a["arch"]], **common)
    else:
        fm = None
        if e["on_augmented"]:        # features of every augmented batch: the model itself is needed
            traj = trajectory_of(e["model"], env)
            fm = traj.model(e["epoch"], test.spec.channel, test.num_classes, test.spec.im_size, env.device)
        feats = features_of(e["features"], env)
        losses: list = []
        recs = elf.evaluate(syn, test, [a["arch"]], (lambda _arch: fm) if fm is not None else None, mode=e["mode"],
                            kind=e["kind"], lam_front=e["lam_front"], lam_rear=e["lam_rear"],
                            on_augmented=e["on_augmented"], terms=losses, features=feats, **common)
        terms = losses[0].terms_by_epoch(p["epochs"] + 1) if losses else {}
        if terms:         # at most ~200 epochs of the curve are kept (every k-th, and the last)
            k = -(-len(terms["epoch"]) // 200)
            keep = sorted(set(range(0, len(terms["epoch"]), k)) | {len(terms["epoch"]) - 1})
            return {"records": recs, "terms": {n: [v[i] for i in keep] for n, v in terms.items()}}
    return {"records": recs}


def features_of(ref: Cell, env: Env):
    from .safefile import load_tensors

    return load_tensors(env.store.artefact(ref, ".safetensors"), "ELF features", "delete it and rerun")[0]["features"]


def features(cell: Cell, env: Env) -> dict:
    """ELF's features of one synthetic set from one feature-model snapshot (front output, eval mode, un-augmented,
    computed once), saved beside the record: evaluation cells need these, not the network, so a fresh clone can run
    the pending evaluations without retraining the feature model."""
    from .elf import compute_features
    from .safefile import file_sha256, save_tensors

    a = cell.args
    syn = synset_of(a["synset"], env)
    data = load_data(a["trajectory"].args["data"], env.device)
    traj = trajectory_of(a["trajectory"], env)
    fm = traj.model(a["epoch"], data.spec.channel, data.num_classes, data.spec.im_size, env.device)
    feats = compute_features(fm, syn.images.to(env.device), env.test_batch).cpu().contiguous()
    path = save_tensors(env.store.artefact(cell, ".safetensors"), {"features": feats}, {})
    return {"file": path.name, "sha256": file_sha256(path), "shape": list(feats.shape)}


def trajectory(cell: Cell, env: Env) -> dict:
    """One network trained on real data (experts.train, resumable per epoch) under runs/<root>/; the record keeps
    its logged test accuracy and, for `score_epochs`, the snapshot's accuracy on the data's test set."""
    from . import experts
    from .train import accuracy

    a = cell.args
    data = load_data(a["data"], env.device)
    # one folder per cell key: the trajectory's own name ignores the subset seed, test split and logging cadence
    traj = experts.train(data, a["arch"], recipe=a["recipe"], seed=a["seed"], root=env.runs_dir / a["root"] / cell.short,
                         snapshot_epochs=a["snapshots"], epochs=a["epochs"], device=env.device, progress=env.progress,
                         test_every=a["test_every"])
    score = {}
    for ep in a.get("score_epochs", ()):
        net = traj.model(ep, data.spec.channel, data.num_classes, data.spec.im_size, env.device)
        score[str(ep)] = accuracy(net, data.x_test, data.y_test)
    return {"folder": str(traj.folder.relative_to(env.runs_dir)), "config": traj.config,
            "test_acc": {str(k): v for k, v in sorted(traj.test_acc.items())}, "score": score}


KINDS = {"synset": synset, "evaluate": evaluate, "trajectory": trajectory, "features": features,
         "calibration": calibration}


def materialised(store: CellStore, runs_dir: Path):
    """materialised(cell, doc, reader=None): is a finished cell's output usable here (its artefact files present)?
    A training missing from runs/ counts as present when the snapshots `reader` loads from it (and its last one) are
    pinned (elfkit.snapshot_pins): they are then restored there."""
    def check(cell: Cell, doc: dict | None, reader: Cell | None = None) -> bool:
        if doc is None:
            return False
        if cell.kind in ("synset", "features"):
            return store.artefact(cell, ".safetensors").is_file()
        if cell.kind == "trajectory":          # in runs/, or restored there from its pinned snapshots
            epochs = [e for t, e in snapshot_pins.reads(reader) if t.key == cell.key] if reader else []
            return snapshot_pins.restore(cell, doc, store, runs_dir, epochs)
        return True
    return check


def run(cell: Cell, env: Env) -> dict:
    """Set up (seeds from the key, threads, kernels) and compute one cell; returns its output."""
    env.setup(cell)
    return KINDS[cell.kind](cell, env)
