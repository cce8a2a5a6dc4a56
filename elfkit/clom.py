"""CLoM — a loss of a pool of frozen pre-trained models (PTMs) on the synthetic set (docs/ptm.md §2–§4), as ONE guidance
term every distiller calls: `guidance(images, labels) -> loss`, added to the method's loss before each image step.

Distances: `ce_code` (the released code: α·CE(θ(S), y_S)), `ce_ratio` (the readme's CE-distance ratio, §2.3) and
`cos` (the contrastive cosine version with the same-label mask, §2.2). Per call one architecture (uniform; α only
scales its loss) and one of its checkpoints (uniform) are drawn from the guidance's own generator, so the
distiller's random stream is untouched and α = 0 reproduces the unguided result exactly."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import seeding
from .data import Data
from .errors import ElfkitError

DISTANCES = ("ce_code", "ce_ratio", "cos")


def ce_code(logits: torch.Tensor, y_syn: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the PTM's logits on the whole (un-augmented) synthetic set."""
    return F.cross_entropy(logits, y_syn)


def ce_ratio(logits: torch.Tensor, y_syn: torch.Tensor, real_counts: torch.Tensor) -> torch.Tensor:
    """Σ_j n_{y_j} ℓ_j[y_j] / Σ_j Σ_c n_c ℓ_j[c], ℓ = −log softmax, n_c = real samples of class c in the batch:
    the readme's Σ(D ⊙ M)/ΣD with D[i,j] = −O(y_T,i)ᵀ log p*(x_S,j), which depends on the real batch only
    through its label histogram."""
    nll = -F.log_softmax(logits, dim=1)                       # [n_syn, C]
    n = real_counts.to(nll)
    return (n[y_syn] * nll.gather(1, y_syn[:, None])[:, 0]).sum() / (nll * n[None, :]).sum()


def cos_contrastive(e_syn: torch.Tensor, y_syn: torch.Tensor, e_real: torch.Tensor, y_real: torch.Tensor):
    """Σ M⊙D / Σ D with D = 1 − cos(F(S_j), F(T_i)) (row-wise L2 normalisation, no eps) and M = same label."""
    u = e_syn / e_syn.norm(dim=1, keepdim=True)
    v = e_real / e_real.norm(dim=1, keepdim=True)
    d = 1 - u @ v.T                                            # [n_syn, B]
    m = (y_syn[:, None] == y_real[None, :]).to(d)
    return (m * d).sum() / d.sum()


class Guidance:
    """The CLoM term. `pool`: {architecture: [frozen PTMs]} (eval mode, requires_grad False); `alphas`: one float
    or one per architecture in pool order; `real`: the target's real training data (needed by ce_ratio and cos);
    `batch`: real images per call, drawn with replacement (the readme's 8196). Real embeddings for `cos` are
    computed once per PTM under no_grad (exact: the PTM is frozen, in eval mode, and real images are not
    augmented)."""

    def __init__(self, pool: dict[str, list[torch.nn.Module]], alphas, *, distance: str = "ce_code",
                 real: Data | None = None, batch: int = 8196, seed: int = 0, num_classes: int | None = None,
                 describe: dict | None = None):
        if distance not in DISTANCES:
            raise ElfkitError(f"unknown CLoM distance {distance!r}; choose one of {DISTANCES}")
        if not pool or any(len(v) == 0 for v in pool.values()):
            raise ElfkitError("the CLoM pool is empty; train PTMs first (elfkit pretrain, or notebook 01_experts)")
        alphas = [float(alphas)] * len(pool) if isinstance(alphas, (int, float)) else [float(a) for a in alphas]
        if len(alphas) not in (1, len(pool)):
            raise ElfkitError(f"give one alpha, or one per pool architecture ({list(pool)}); got {len(alphas)}")
        self.alphas = dict(zip(pool, alphas * len(pool) if len(alphas) == 1 else alphas))
        if distance != "ce_code" and real is None:
            raise ElfkitError(f"CLoM distance {distance!r} needs the target's real data (real=...)")
        self.pool, self.distance, self.real, self.batch = pool, distance, real, batch
        self.seed, self.num_classes = seed, num_classes
        self.g = seeding.generator(seeding.derive(seed, "clom"))
        self._real_emb: dict[tuple[str, int], torch.Tensor] = {}
        self.describe = describe or {}
        for arch, nets in pool.items():
            for net in nets:
                net.eval().requires_grad_(False)

    def config(self) -> dict:
        """What a cache key or a fingerprint needs to tell two guidances apart."""
        return {"distance": self.distance, "alphas": self.alphas, "batch": self.batch, "seed": self.seed,
                "pool": {a: len(v) for a, v in self.pool.items()}, **self.describe}

    def check(self, images: torch.Tensor, num_classes: int) -> None:
        """Fail before distilling when a PTM cannot take the synthetic images or the CE label space differs."""
        for arch, nets in self.pool.items():
            with torch.no_grad():
                out = nets[0](images[:1].to(next(nets[0].parameters()).device))
            if self.distance != "cos" and out.shape[1] != num_classes:
                raise ElfkitError(f"CLoM {self.distance}: the {arch} PTM predicts {out.shape[1]} classes but the "
                                  f"target has {num_classes}; a PTM from another label space needs distance='cos'")

    def _draw(self) -> tuple[str, int]:
        archs = list(self.pool)
        a = archs[int(torch.randint(len(archs), (1,), generator=self.g))]
        k = int(torch.randint(len(self.pool[a]), (1,), generator=self.g))
        return a, k

    def real_embeddings(self, a: str, k: int) -> torch.Tensor:
        """The real images' embeddings by PTM k of architecture a (cos distance), computed once and kept."""
        if (a, k) not in self._real_emb:
            net = self.pool[a][k]
            dev = next(net.parameters()).device
            with torch.no_grad():
                self._real_emb[(a, k)] = torch.cat([net.embed(c.to(dev)) for c in self.real.x_train.split(512)])
        return self._real_emb[(a, k)]

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        a, k = self._draw()
        alpha, net = self.alphas[a], self.pool[a][k]
        if alpha == 0:
            return images.sum() * 0.0          # keeps the graph shape; contributes exactly zero
        if self.distance == "ce_code":
            return alpha * ce_code(net(images), labels)
        idx = torch.randint(len(self.real.y_train), (self.batch,), generator=self.g)
        y_real = self.real.y_train[idx.to(self.real.y_train.device)].to(images.device)
        if self.distance == "ce_ratio":
            counts = torch.bincount(y_real, minlength=self.num_classes or int(labels.max()) + 1)
            return alpha * ce_ratio(net(images), labels, counts)
        cache = self.real_embeddings(a, k)
        e_real = cache[idx.to(cache.device)].to(images.device)
        return alpha * cos_contrastive(net.embed(images), labels, e_real, y_real)


def pool_from_trajectories(trajs: dict[str, list], epoch: int, source: Data, device="cpu") -> dict:
    """{arch: [trajectories]} (experts.pool with recipe 'ptm') → {arch: [frozen eval-mode PTMs at `epoch`]}."""
    out = {}
    for arch, ts in trajs.items():
        out[arch] = [t.model(epoch, source.spec.channel, source.num_classes, source.spec.im_size, device)
                     .requires_grad_(False) for t in ts]
    return out
