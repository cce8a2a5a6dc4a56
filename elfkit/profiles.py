"""The three run scales as frozen dataclasses: smoke (CI, seconds), cpu (2-core laptop, minutes), paper (GPU).
Experiment ids (E2-E5) are those of the PTM paper, docs/ptm.md §7 and docs/decisions.md."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

from .errors import ElfkitError


@dataclass(frozen=True)
class Profile:
    name: str
    dataset: str                  # fashion_mnist | mnist | cifar10 | cifar100 | svhn | tinyimagenet | synthetic
    ipc: int                      # images per class of the quickstart's synthetic set
    ipcs: tuple[int, ...]         # IPCs of the paper tables
    distill_arch: str             # the distillation network (ConvNet in every paper table)
    eval_archs: tuple[str, ...]   # evaluation architectures of the quickstart
    dm_iterations: int            # DM outer iterations (paper: 20000)
    dm_batch_real: int            # real images per class per DM iteration (paper: 256)
    dm_lr_img: float              # SGD lr on the synthetic pixels (paper: 1.0), momentum 0.5
    checkpoint_every: int         # distillation checkpoint interval (iterations)
    eval_epochs: int              # E; the loop runs E+1 epochs, lr x0.1 after epoch E//2+1 (paper: 1000 with DSA)
    eval_lr: float                # SGD lr of evaluation training (paper: 0.01)
    eval_batch: int               # minibatch over the synthetic set (paper: 256)
    eval_dsa: bool                # DSA augmentation while training evaluation models (paper: True for DSA/DM)
    n_eval_models: int            # fresh evaluation models per (set, architecture); model i uses seed + i
    test_batch: int               # batch of the test pass (no effect on results)
    cross_archs: tuple[str, ...]  # evaluation architectures of the cross-architecture (ELF) table
    test_per_class: int           # test images per class for the ELF tables (0 = the whole test set)
    feature_epochs: int           # length of ELF feature-model training on real data (release: 200)
    feature_epoch: int            # snapshot ELF reads its features from (release: 100)
    feature_per_class: int        # real images per class the feature models train on (0 = all)
    threads: int                  # torch threads (fixed for determinism); 0 = leave torch's default
    deterministic: bool           # torch.use_deterministic_algorithms
    precision: str = "fp32"       # fp32: CUDA matmuls and convolutions in full fp32 (PyTorch's default lets cuDNN use
    #                               TF32); tf32: TF32 allowed — faster on Ampere+ GPUs, changes the numbers, never in
    #                               the paper profile; results go to results/<profile>-tf32/ (profiles.label)
    # DC / DSA (gradient matching, docs/base-methods.md §2-3)
    dc_iterations: int = 1000     # outer iterations K (paper: 1000)
    dc_batch_real: int = 256      # real images per class per matching step (paper: 256)
    dc_lr_img: float = 0.1        # SGD lr on the pixels, momentum 0.5 (paper: 0.1)
    dc_metric: str = "ours"       # gradient distance: ours | mse | cos (paper: ours; the ELF release's DSA: mse)
    dc_init: str = "noise"        # DC's initialisation: noise | real (main.py default noise; DSA always real)
    dc_loop_cap: tuple[int, ...] = ()   # (outer, inner) upper bounds on the loop table; () = the table as published
    eval_epochs_noaug: int = 300  # epochs of an evaluation without augmentation (DC on Fashion-MNIST; paper: 300)
    # MTT (docs/base-methods.md §6)
    mtt_experts: int = 100        # expert trajectories (paper: 100)
    mtt_buffer_epochs: int = 50   # epochs per expert trajectory (paper: 50)
    mtt_expert_per_class: int = 0  # real images per class the experts train on (0 = all)
    mtt_iterations: int = 5000    # distillation iterations (paper: 5000)
    mtt_syn_steps: int = 20       # unrolled student steps (paper: 20)
    mtt_expert_epochs: int = 2    # target = expert epochs ahead of the start (author guidance: 2)
    mtt_max_start_epoch: int = 20  # start epoch uniform in [0, max_start_epoch) (README: 20)
    mtt_lr_img: float = 1000.0    # SGD lr on the pixels (paper: 1000)
    mtt_lr_lr: float = 1e-5       # SGD lr on the learnable step size (paper: 1e-5)
    mtt_lr_teacher: float = 0.01  # initial student step size = the experts' lr (paper: 0.01)
    mtt_batch_syn: int = 0        # synthetic minibatch per unrolled step (0 = all C·ipc images)
    mtt_zca: bool = False         # experts, distillation and evaluation of MTT sets in ZCA space (docs/base-methods.md §6.4)
    # ELF study (04/05)
    study_method: str = "DM"      # distillation method of the study sets (a key of elfkit.distill.METHODS)
    study_ipc: int = 10           # IPC of the ConvNet set the 05 sweeps and the 04 ablations evaluate
    study_matrix_archs: tuple[str, ...] = ("ConvNet", "ConvNetBN", "AlexNet", "VGG11", "ResNet18_AP", "ResNet18")
    study_matrix_ipc: int = 10    # IPC of the distil-with-A / evaluate-with-B matrix (docs/elf.md §8, pool M)
    study_matrix_overrides: tuple[str, ...] = ()   # "field=value" overrides for the matrix distillations only
    study_axes: tuple[str, ...] = ("width", "depth", "activation", "pooling", "normalisation")  # study.SWEEPS keys
    study_seeds: tuple[int, ...] = ()   # 05: distillation seeds of the matrix and sweep sets (() = the run's seed)
    study_epochs: int = 0               # 05 evaluation epochs (0 = eval_epochs)
    study_models: int = 0               # 05 evaluation models per (set, cell) (0 = n_eval_models)
    study_feature: str = ""             # the sweeps' ELF feature model, 'per_class:epochs:snapshot' like cross_feature
    #                                     (one of 08's; "" = the elf section's)
    ablation_archs: tuple[str, ...] = ("ConvNet", "ResNet18")  # evaluation models of the 04 ablations
    ablation_lam_front: tuple[float, ...] = (0.0, 0.1, 0.5, 1.0, 2.0, 5.0)  # λ_front grid (release default 1)
    ablation_lam_rear: tuple[float, ...] = (0.0, 0.1, 0.5, 1.0, 2.0, 5.0)   # λ_rear grid (release default 1)
    ablation_feature_epochs: tuple[int, ...] = (0, 25, 50, 100, 150, 200)   # snapshots of one feature trajectory
    ablation_feature_widths: tuple[int, ...] = (32, 64, 128, 256, 512)      # evaluation ConvNet = feature ConvNet width
    ablation_distill_epochs: int = 50   # feature_source="distill": MTT-expert epochs, final snapshot (release: 50)
    ablation_seeds: tuple[int, ...] = ()   # distillation seeds of the study set (() = the run's seed only)
    ablation_epochs: int = 0            # 04 evaluation epochs (0 = eval_epochs)
    ablation_models: int = 0            # 04 evaluation models per (set, cell) (0 = n_eval_models)
    ablation_feature: str = ""          # 04's feature models, 'per_class:epochs:snapshot' like cross_feature: the
    #                                     default snapshot, ablation_feature_epochs of the same (08-shared) trainings,
    #                                     every width and the distill expert on that data ("" = the elf section's)
    # CLoM / PTM study (06/07, docs/ptm.md)
    ptm_archs: tuple[str, ...] = ("ConvNet", "AlexNet", "VGG11", "ResNet18")  # pools trained on the target (01)
    ptm_model_num: int = 10       # members of the distillation architecture's pool, distinct seeds (precursor: 10)
    ptm_model_num_others: int = 10  # members of every other architecture's pool
    ptm_epochs: int = 150         # PTM training epochs, a snapshot after each (docs/ptm.md §5: 150)
    ptm_per_class: int = 0        # source images per class the PTMs train on (0 = all)
    ptm_epoch: int = 150          # snapshot CLoM uses unless a study varies it (HEAD default 150)
    ptm_ood_source: str = "mnist"  # out-of-domain source for the cosine distance (offline: mnist_5k)
    ptm_alpha: float = 100.0      # CLoM weight (precursor's Fashion-MNIST table: 100 for DC/DSA/DM)
    ptm_alpha_methods: tuple[str, ...] = ()   # "DM=2000": a method's own α in place of ptm_alpha (the CIFAR tables)
    ptm_batch: int = 8196         # real images per cos / ce_ratio call (readme: 8196, with replacement)
    ptm_methods: tuple[str, ...] = ("DC", "DSA", "DM")   # base methods the studies guide
    ptm_ipc: int = 10             # IPC of the PTM studies
    ptm_iterations: int = 0       # distillation iterations in 06/07 (0 = the method's own profile setting)
    ptm_model_nums: tuple[int, ...] = (1, 2, 5, 10)      # E2: members per architecture
    ptm_arch_pools: tuple[str, ...] = ("ConvNet", "ConvNet+VGG11", "ConvNet+AlexNet+VGG11+ResNet18")  # E3
    ptm_epoch_grid: tuple[int, ...] = (1, 4, 6, 10, 20, 50, 100, 150)  # E4: PTM training epoch
    ptm_sources: tuple[str, ...] = ("target_ce", "target_cos", "ood_cos")  # E5: domain x distance
    ptm_alpha_rule: str = "fixed"  # fixed: the method's α for every distance; calibrated: the share rule (clom_calibration)
    ptm_alpha_scales: tuple[float, ...] = ()   # α study: these multiples of the base option's α (() = none)
    ptm_calibration_draws: int = 8  # calls averaged per gradient-norm measurement
    ptm_seeds: tuple[int, ...] = ()  # distillation seeds of every 06 arm (() = the run's seed only)
    ptm_member_windows: int = 1     # E2: each arm averages over this many disjoint windows of pool members
    ptm_member_balance: bool = False  # E2: arm n takes (max n / n) x ptm_member_windows windows: all arms, same members
    ptm_eval_archs: tuple[str, ...] = ()   # 06: architectures the arms are also evaluated on (see ptm_eval_studies)
    ptm_eval_epochs: int = 0        # 06 evaluation epochs (0 = eval_epochs): long enough for every architecture
    ptm_eval_models: int = 0        # 06 evaluation models per (set, architecture) (0 = n_eval_models)
    ptm_eval_studies: tuple[str, ...] = ()   # 06: the studies whose arms ptm_eval_archs also evaluate (() = all)
    ptm_plateau_epochs: int = 0     # E4: its PTM trains this long, ptm_epoch_grid snapshots from it (0 = ptm_epochs)
    ptm_pool_from: str = "profile"  # 07's CLoM: the profile's full pool, or "06": 06's best option per study
    ptm_cross_methods: tuple[str, ...] = ()   # 07's distillation methods (() = ptm_methods), e.g. ("DM", "MTT")
    ptm_choose_from: str = ""       # 07 from 06: whose 06 arms choose the options ("" = each method its own), e.g. "DM"
    ptm_cross_feature: str = ""     # 07's ELF feature model, like cross_feature ("" = the profile's feature model)
    # 07's own schedule (06's ptm_seeds / ptm_alpha_rule / ptm_eval_* do not reach it, so a 06 redo landing leaves
    # 07's cells as they are)
    ptm_cross_seeds: tuple[int, ...] = ()   # 07's distillation seeds (() = the run's seed only)
    ptm_cross_alpha_rule: str = "fixed"     # 07 from 06: α of the chosen option, fixed or calibrated (06's rule)
    ptm_cross_eval_epochs: int = 0          # 07's evaluation epochs (0 = eval_epochs)
    ptm_cross_eval_models: int = 0          # 07's evaluation models per (set, architecture) (0 = n_eval_models)
    # ELF main table (03): its own schedule, so that ELF is tested where the 08 map says a claim can come out either way
    cross_seeds: tuple[int, ...] = ()   # distillation seeds of every 03 set (() = the run's seed only)
    cross_epochs: int = 0               # 03 evaluation epochs (0 = eval_epochs)
    cross_models: int = 0               # 03 evaluation models per (set, architecture) (0 = n_eval_models)
    cross_feature: str = ""             # 03's feature model, 'per_class:epochs:snapshot' like regime_features, with
    #                                     08's trajectory cells ("" = feature_epochs / feature_epoch / feature_per_class)
    # ELF regime map (08, docs/elf.md §12): gain vs feature-model quality x evaluation length, axes fixed before runs
    regime_archs: tuple[str, ...] = ("ConvNet", "AlexNet", "VGG11", "ResNet18")   # ConvNet: the control
    regime_features: tuple[str, ...] = ("1000:2:2", "0:3:1", "0:3:2", "0:3:3")   # per_class:trajectory epochs:snapshot
    # (03/04/05/07's redos read these trainings by key, their snapshot lists included: add a point, never edit one)
    regime_epochs: tuple[int, ...] = (50, 300)   # evaluation lengths for every architecture
    regime_long_epochs: int = 1000               # and this one for regime_long_archs at the last feature model
    regime_long_archs: tuple[str, ...] = ("ResNet18", "VGG11")
    regime_seeds: tuple[int, ...] = (0, 1)       # distillation seeds of the DM sets (the spread includes them)
    regime_ipc: int = 10
    regime_models: int = 2                       # evaluation models per (set, cell), paired baseline vs ELF


# Seconds per notebook on one core: synthetic 28x28 patterns, tiny nets (ConvNetW32 stands in for the other
# architectures; its ELF feature model is a W32 ConvNet), a handful of steps. It checks what is computed, not how well.
SMOKE = Profile(
    name="smoke", dataset="synthetic", ipc=2, ipcs=(1,), distill_arch="ConvNet",
    eval_archs=("ConvNet", "ConvNetW32"), dm_iterations=3, dm_batch_real=16, dm_lr_img=1.0,
    checkpoint_every=2, eval_epochs=2, eval_lr=0.01, eval_batch=256, eval_dsa=True, n_eval_models=2,
    test_batch=500, cross_archs=("ConvNet", "ConvNetW32"), test_per_class=4, feature_epochs=2, feature_epoch=1,
    feature_per_class=8, threads=1, deterministic=True,
    dc_iterations=2, dc_batch_real=8, dc_init="real", dc_loop_cap=(2, 2), eval_epochs_noaug=2,
    mtt_experts=2, mtt_buffer_epochs=2, mtt_expert_per_class=8, mtt_iterations=2, mtt_syn_steps=3,
    mtt_expert_epochs=1, mtt_max_start_epoch=1, mtt_lr_img=100.0, mtt_lr_lr=1e-7,
    study_ipc=1, study_matrix_archs=("ConvNet", "ConvNetW32"), study_matrix_ipc=1,
    study_matrix_overrides=("dm_iterations=2",), study_axes=("depth", "activation"),
    ablation_archs=("ConvNet", "ConvNetW32"), ablation_lam_front=(1.0,), ablation_lam_rear=(1.0,),
    ablation_feature_epochs=(0, 1), ablation_feature_widths=(32, 64), ablation_distill_epochs=2,
    ptm_archs=("ConvNet", "ConvNetW32"), ptm_model_num=2, ptm_model_num_others=1, ptm_epochs=2, ptm_per_class=8,
    ptm_epoch=2, ptm_ood_source="synthetic_ood", ptm_batch=64, ptm_methods=("DM",), ptm_ipc=1, ptm_model_nums=(1, 2),
    ptm_arch_pools=("ConvNet", "ConvNet+ConvNetW32"), ptm_epoch_grid=(1, 2), ptm_sources=("target_ce", "ood_cos"),
    regime_archs=("ConvNet", "ConvNetW32"), regime_features=("8:1:1", "0:2:1", "0:2:2"), regime_epochs=(2,),
    regime_long_epochs=3, regime_long_archs=("ConvNetW32",), regime_ipc=1, regime_models=1,
)

# Sized for 2 CPU cores: the quickstart recomputes in about 12 minutes (DM ~4 min, 6 ResNet-18 runs ~6.5 min).
CPU = Profile(
    name="cpu", dataset="fashion_mnist", ipc=10, ipcs=(1, 10), distill_arch="ConvNet",
    eval_archs=("ConvNet", "ResNet18"), dm_iterations=300, dm_batch_real=128, dm_lr_img=1.0,
    checkpoint_every=50, eval_epochs=50, eval_lr=0.01, eval_batch=256, eval_dsa=True, n_eval_models=3,
    test_batch=500, cross_archs=("ConvNet", "AlexNet", "VGG11", "ResNet18"), test_per_class=200, feature_epochs=2,
    feature_epoch=2, feature_per_class=1000, threads=2, deterministic=True,
    # DC/DSA: 50 iterations from real images, 64 real/class, the loop table capped at (2 outer, 10 inner) —
    # a full IPC-10 iteration (10 x 50) costs ~80 s on 2 cores
    dc_iterations=50, dc_batch_real=64, dc_init="real", dc_loop_cap=(2, 10), eval_epochs_noaug=50,
    # MTT: 3 experts x 6 epochs on 1000 images/class; 60 iterations of 10 unrolled steps on 20 images each;
    # lr_lr 1e-6: with the published 1e-5 the learned step size fell 0.0098 -> 0.0075 in 8 trial iterations
    mtt_experts=3, mtt_buffer_epochs=6, mtt_expert_per_class=1000, mtt_iterations=60, mtt_syn_steps=10,
    mtt_expert_epochs=2, mtt_max_start_epoch=4, mtt_batch_syn=20, mtt_lr_lr=1e-6,
    # ELF study: the 05 matrix distils IPC 1 with DM 100 x 32 real/class (a ResNet-18 DM iteration costs ~5x
    # ConvNet's); the 04 ablations run on ConvNet (the distillation network) and AlexNet (ResNet-18 costs ~5x per
    # model).
    # 05 (issue 14's redo, 6.9 h of cells): 2 distillation seeds per set (the sweeps' sets are 08's), 300-epoch
    # evaluation with 2 models (at 50 epochs AlexNet sat at its floor on its own IPC-1 set), and the sweeps' ELF on
    # 08's full-data epoch-3 feature models
    study_ipc=10, study_matrix_archs=("ConvNet", "ConvNetBN", "AlexNet", "VGG11", "ResNet18"), study_matrix_ipc=1,
    study_matrix_overrides=("dm_iterations=100", "dm_batch_real=32"), study_seeds=(0, 1), study_epochs=300,
    study_models=2, study_feature="0:3:3",
    # 04 (issue 14's redo, 176 cells): 2 distillation seeds (08's DM IPC-10 sets) with 2 models each, 300-epoch
    # evaluation (AlexNet trains), ELF on 08's full-data feature models (the epoch-3 snapshot; feature_epoch varies
    # it over snapshots 1/2/3 of the same trainings, so those cells are 08's), every width's feature model and the
    # distill-side expert trained on the same data for the same 3 epochs
    ablation_archs=("ConvNet", "AlexNet"), ablation_lam_front=(0.01, 0.1, 1.0), ablation_lam_rear=(0.1, 1.0, 10.0),
    ablation_feature_epochs=(1, 2, 3), ablation_feature_widths=(32, 64, 128, 256), ablation_distill_epochs=3,
    ablation_seeds=(0, 1), ablation_epochs=300, ablation_models=2, ablation_feature="0:3:3",
    # PTM study (07 ~20 min after 01): pools of 3 ConvNets + 1 AlexNet/VGG11/ResNet18, 10 epochs on
    # 300 images/class; DM IPC 10 with 100 iterations per set; the offline out-of-domain source is mnist_5k
    ptm_model_num=3, ptm_model_num_others=1, ptm_epochs=10, ptm_per_class=300, ptm_epoch=10,
    ptm_ood_source="mnist_5k", ptm_batch=2048,
    ptm_methods=("DM",), ptm_ipc=10, ptm_iterations=100, ptm_model_nums=(1, 3),
    ptm_arch_pools=("ConvNet", "ConvNet+VGG11", "ConvNet+AlexNet+VGG11+ResNet18"),
    # 06's option studies at a scale where each finding can come out either way (issue 15, 7.7 h of cells): 3
    # distillation seeds per arm (evaluation models nested), α calibrated per (domain, distance) by the share rule,
    # E2 balanced (every arm uses members 0-2), E3 also evaluated on AlexNet, E4 from one PTM run 60 epochs long
    # (lr x0.1 after 50; plateau at epoch 33) with early / pool-length / mid / final snapshots, E5 with both offline
    # out-of-domain sources, an α sweep over two decades, and 300-epoch evaluation (at 50 epochs AlexNet sits at its
    # floor: 33-44 % on 08's DM sets, 76-78 % at 300)
    ptm_seeds=(0, 1, 2), ptm_alpha_rule="calibrated", ptm_member_balance=True, ptm_eval_archs=("AlexNet",),
    ptm_eval_studies=("architectures",), ptm_eval_epochs=300, ptm_eval_models=2, ptm_plateau_epochs=60,
    ptm_epoch_grid=(1, 10, 30, 60), ptm_sources=("target_ce", "target_cos", "ood_cos", "ood_cos@animal_mnist"),
    ptm_alpha_scales=(0.1, 1.0, 10.0),
)

# The published hyperparameters (docs/base-methods.md §4, §8): DM main_DM.py defaults, DSA evaluation, 1000 epochs.
PAPER = Profile(
    name="paper", dataset="fashion_mnist", ipc=10, ipcs=(1, 10, 50), distill_arch="ConvNet",
    eval_archs=("ConvNet", "ResNet18"), dm_iterations=20000, dm_batch_real=256, dm_lr_img=1.0,
    checkpoint_every=1000, eval_epochs=1000, eval_lr=0.01, eval_batch=256, eval_dsa=True, n_eval_models=5,
    test_batch=1000, cross_archs=("ConvNet", "ConvNetBN", "AlexNet", "AlexNetBN", "VGG11", "VGG11BN", "ResNet18",
                                  "ResNet18BN"), test_per_class=0, feature_epochs=200, feature_epoch=100,
    feature_per_class=0, threads=0, deterministic=False,
)

PROFILES = {p.name: p for p in (SMOKE, CPU, PAPER)}
PRECISIONS = ("fp32", "tf32")

# The published settings that differ from Fashion-MNIST's when the paper profile runs on the papers' own datasets
# (`-p dataset cifar10`): MTT distils CIFAR in ZCA space with the README's CIFAR command (syn_steps 20, expert_epochs
# 3, max_start_epoch 20; its per-IPC table is published only as an image and is not transcribed, so these apply at
# every IPC); CLoM's α is the precursor's per-method IPC-10 table and the cosine arm's source is the other CIFAR
# (docs/ptm.md §6.3; the code example is CIFAR-100 -> CIFAR-10). DM, DC/DSA, evaluation and ELF are as on
# Fashion-MNIST. Other profiles change the dataset and the cosine arm's source (OOD_SOURCES: it must have the
# target's image shape).
OOD_SOURCES = {"cifar10": "cifar100", "cifar100": "cifar10", "fashion_mnist": "mnist_5k"}
PAPER_DATASETS = {
    "cifar10": {"mtt_zca": True, "mtt_expert_epochs": 3, "mtt_max_start_epoch": 20, "ptm_ood_source": "cifar100",
                "ptm_alpha": 2000.0, "ptm_alpha_methods": ("DC=1000", "DSA=5000", "DM=2000")},
    "cifar100": {"mtt_zca": True, "mtt_expert_epochs": 3, "mtt_max_start_epoch": 20, "ptm_ood_source": "cifar10",
                 "ptm_alpha": 500.0, "ptm_alpha_methods": ("DC=10000", "DSA=10000", "DM=500")},
}

# Every field belongs to one component (a test checks it). Cells receive the resolved values of their component
# (a method's settings, the evaluation protocol, a feature model's recipe), never the profile. `runtime` fields never
# change a result's protocol: they are the run's setup, kept in provenance, never in a cell key (threads and
# deterministic kernels can change float bits; they are fixed per profile for that reason).
SECTIONS = {
    "data": ("dataset",),
    "quickstart": ("ipc", "eval_archs"),
    "tables": ("ipcs", "distill_arch", "cross_archs"),
    "eval": ("eval_epochs", "eval_epochs_noaug", "eval_lr", "eval_batch", "eval_dsa", "n_eval_models",
             "test_per_class"),
    "dm": ("dm_iterations", "dm_batch_real", "dm_lr_img"),
    "dc": ("dc_iterations", "dc_batch_real", "dc_lr_img", "dc_metric", "dc_init", "dc_loop_cap"),
    "mtt": ("mtt_experts", "mtt_buffer_epochs", "mtt_expert_per_class", "mtt_iterations", "mtt_syn_steps",
            "mtt_expert_epochs", "mtt_max_start_epoch", "mtt_lr_img", "mtt_lr_lr", "mtt_lr_teacher", "mtt_batch_syn",
            "mtt_zca"),
    "elf": ("feature_epochs", "feature_epoch", "feature_per_class"),
    "study": ("study_method", "study_ipc", "study_matrix_archs", "study_matrix_ipc", "study_matrix_overrides",
              "study_axes", "study_seeds", "study_epochs", "study_models", "study_feature"),
    "ablation": ("ablation_archs", "ablation_lam_front", "ablation_lam_rear", "ablation_feature_epochs",
                 "ablation_feature_widths", "ablation_distill_epochs", "ablation_seeds", "ablation_epochs",
                 "ablation_models", "ablation_feature"),
    "ptm": ("ptm_archs", "ptm_model_num", "ptm_model_num_others", "ptm_epochs", "ptm_per_class", "ptm_epoch",
            "ptm_ood_source", "ptm_alpha", "ptm_alpha_methods", "ptm_batch", "ptm_methods", "ptm_ipc", "ptm_iterations", "ptm_model_nums",
            "ptm_arch_pools", "ptm_epoch_grid", "ptm_sources", "ptm_alpha_rule", "ptm_alpha_scales",
            "ptm_calibration_draws", "ptm_seeds", "ptm_member_windows", "ptm_member_balance", "ptm_eval_archs", "ptm_eval_epochs",
            "ptm_eval_models", "ptm_eval_studies", "ptm_plateau_epochs", "ptm_pool_from", "ptm_cross_methods",
            "ptm_choose_from", "ptm_cross_feature", "ptm_cross_seeds", "ptm_cross_alpha_rule", "ptm_cross_eval_epochs",
            "ptm_cross_eval_models"),
    "cross": ("cross_seeds", "cross_epochs", "cross_models", "cross_feature"),
    "regime": ("regime_archs", "regime_features", "regime_epochs", "regime_long_epochs", "regime_long_archs",
               "regime_seeds", "regime_ipc", "regime_models"),
    "runtime": ("name", "checkpoint_every", "test_batch", "threads", "deterministic", "precision"),
}


class Tracked:
    """A read-only view of a Profile that records every field read: an experiment's plan is built through one,
    so the fields its results depend on are measured, never listed by hand."""

    def __init__(self, profile: Profile):
        object.__setattr__(self, "profile", profile)
        object.__setattr__(self, "reads", set())

    def __getattr__(self, name: str):
        value = getattr(self.profile, name)    # AttributeError for a name that is no field
        self.reads.add(name)
        return value

    def __setattr__(self, name, value):
        raise AttributeError("a tracked profile is read-only; use profiles.override")

    def override(self, **changes) -> Tracked:
        """A tracked view of the profile with `changes` applied; reads of either view land in this one's `reads`."""
        out = Tracked(override(self.profile, **changes))
        object.__setattr__(out, "reads", self.reads)
        return out


def _coerce(name: str, value, hint):
    origin = typing.get_origin(hint)
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ElfkitError(f"override {name!r} must be a list or tuple, got {value!r}")
        (inner, *_rest) = typing.get_args(hint)
        return tuple(_coerce(name, v, inner) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ElfkitError(f"override {name!r} must be True or False, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ElfkitError(f"override {name!r} must be an int, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ElfkitError(f"override {name!r} must be a number, got {value!r}")
        return float(value)
    if hint is str and not isinstance(value, str):
        raise ElfkitError(f"override {name!r} must be a string, got {value!r}")
    return value


def get(name: str, **overrides) -> Profile:
    """The named profile with validated overrides (unknown keys and wrong types raise, listing the valid keys)."""
    if name not in PROFILES:
        raise ElfkitError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return override(PROFILES[name], **overrides)


def for_dataset(profile: Profile, dataset: str | None) -> Profile:
    """`profile` on another dataset ("" or None: unchanged), with a cosine-arm source of its shape (OOD_SOURCES);
    the paper profile also takes that dataset's published settings (PAPER_DATASETS). Explicit overrides are
    applied after this, so they win."""
    if not dataset or dataset == profile.dataset:
        return profile
    from .data import canonical      # (torch-side; a replay on the profile's own dataset never gets here)

    key = canonical(dataset)
    if key == profile.dataset:
        return profile
    extra = {"ptm_ood_source": OOD_SOURCES[key]} if key in OOD_SOURCES else {}
    extra.update(PAPER_DATASETS.get(key, {}) if profile.name == "paper" else {})
    return override(profile, dataset=key, **extra)


def label(profile) -> str:
    """The folder name of a profile's records and figures: its name, plus the dataset when it is not the profile's
    own (results/paper-cifar10/...), so runs on another dataset never overwrite or replay the committed ones."""
    own = PROFILES[profile.name].dataset if profile.name in PROFILES else profile.dataset
    if profile.precision not in PRECISIONS:
        raise ElfkitError(f"precision must be one of {PRECISIONS}, got {profile.precision!r}")
    return "-".join([profile.name] + ([profile.dataset] if profile.dataset != own else [])
                    + ([profile.precision] if profile.precision != "fp32" else []))


def method_alpha(p, method: str) -> float:
    """CLoM's α for one base method: its ptm_alpha_methods entry, else ptm_alpha."""
    own = assignments(p.ptm_alpha_methods).get(method)
    return float(own) if own is not None else p.ptm_alpha


def assignments(items) -> dict:
    """("dm_iterations=100", "dm_lr_img=0.5") -> {"dm_iterations": 100, "dm_lr_img": 0.5} (values as Python
    literals, else strings), for override(): a profile field can carry overrides for one part of an experiment."""
    import ast

    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ElfkitError(f"override {item!r} is not of the form field=value")
        try:
            out[key.strip()] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = raw.strip()
    return out


def override(base: Profile, **overrides) -> Profile:
    """`base` (a resolved profile, possibly already overridden) with validated overrides, as get() does."""
    hints = typing.get_type_hints(Profile)
    valid = [f.name for f in dataclasses.fields(Profile) if f.name != "name"]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ElfkitError(f"unknown profile override(s) {unknown}; valid keys: {', '.join(valid)}")
    clean = {k: _coerce(k, v, hints[k]) for k, v in overrides.items()}
    return dataclasses.replace(base, **clean)
