"""07_ptm_cross_arch: cross-architecture accuracy of sets distilled with and without CLoM (docs/ptm.md §7 E7: the
full architecture pool, all members, the profile's PTM epoch), each evaluated with the standard protocol and with
ELF — so the combination CLoM-distilled + ELF-evaluated sits beside both parts alone."""
from __future__ import annotations

from ..cells import Plan
from ..results import Output
from . import grid

SLUG = "07_ptm_cross_arch"
PRODUCTS = ["results/{profile}/07_ptm_cross_arch/records.json", "figures/{profile}/07_ptm_cross_arch.png"]
FIELDS = ("eval_arch", "eval_mode", "model_seed", "metric", "value")


def plan(p, seed: int) -> Plan:
    from ..protocol import EvalProtocol

    prot = EvalProtocol.of(p)
    test = grid.data_spec(p.dataset, 0, prot.test_per_class, seed)
    out = Plan(data=test)
    src, pools = grid.ptm_cells(p, seed, "target")
    for method in p.ptm_methods:
        g = {"pools": pools, "source": src, "epoch": p.ptm_epoch, "alpha": p.ptm_alpha, "distance": "ce_code",
             "model_num": None, "batch": p.ptm_batch, "seed": seed}
        sets = {"no CLoM": grid.synset_cell(p, seed, method, p.ptm_ipc, iterations=p.ptm_iterations),
                "CLoM": grid.synset_cell(p, seed, method, p.ptm_ipc, guidance=g, iterations=p.ptm_iterations)}
        for label, syn in sets.items():
            grid.baseline_and_elf(p, out, syn, test, p.cross_archs, prot, seed, FIELDS, method=method, ipc=p.ptm_ipc,
                                  distill=label, pool="+".join(pools))
    return out


def run(ctx) -> Output:
    return grid.run(ctx, plan)
