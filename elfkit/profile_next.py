"""Profile values whose grid is still being computed. A redo that takes several sessions cannot change a profile at
once — the committed records would no longer match its plan — so its new values live here first: `elfkit cells
--next` computes their cells (committed as they finish, in the same content-keyed store), and the profile takes them,
with the recomputed records, in the commit where the last cell lands. Nothing here changes any result until then."""
from __future__ import annotations

# cpu, 03_cross_arch (issue 14 part 2): ELF's main table where the 08 map says its claim can come out either way —
# the map's strongest feature models (full data, 3 epochs, the epoch-3 snapshot: ConvNetW512 89.6 %, W192 87.6 %,
# W128 88.8 % test accuracy), their trajectories shared with 08, 300-epoch evaluation (the first length on the map at
# which every baseline trains: AlexNet 33-44 % at 50 epochs, 76-78 % at 300), 2 distillation seeds per set with
# 2 models each (08's DM IPC-10 cells are reused: 43 of 409 cells).
#
# cpu, 07_ptm_cross_arch (issue 15): CLoM across architectures with the pool 06's committed redo chose per study
# (computed from its records, never typed: at cpu DM's arms choose 3 initialisations, ConvNet+VGG11, the epoch-30
# snapshot of E4's 60-epoch run, target CE), for DM and for MTT with CLoM (MTT takes DM's choice: 06 studies DM only),
# at the calibrated α (MTT has no published α), 3 distillation seeds per set, 300-epoch evaluation with 2 models, and
# ELF with 03's redo feature model (08's full-data epoch-3 snapshot) — docs/ptm.md §12.
NEXT: dict[str, dict[str, dict]] = {
    "cpu": {
        "03_cross_arch": {
            "cross_seeds": (0, 1),
            "cross_epochs": 300,
            "cross_models": 2,
            "cross_feature": "0:3:3",
        },
        "07_ptm_cross_arch": {
            "ptm_pool_from": "06",
            "ptm_cross_methods": ("DM", "MTT"),
            "ptm_choose_from": "DM",
            "ptm_cross_seeds": (0, 1, 2),
            "ptm_cross_alpha_rule": "calibrated",
            "ptm_cross_eval_epochs": 300,
            "ptm_cross_eval_models": 2,
            "ptm_cross_feature": "0:3:3",
        },
    },
}


def overrides_for(profile: str, slug: str) -> dict:
    """The pending values of one experiment at one profile ({} when none are pending)."""
    return dict(NEXT.get(profile, {}).get(slug, {}))
