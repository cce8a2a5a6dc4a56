"""One module per paper artefact. Each has plan(profile, seed) -> cells.Plan (its grid of cells, built through a
tracked profile), run(ctx) -> results.Output (plan, execute the pending cells, assemble the records) and PRODUCTS
(the files it leaves behind). Modules that need torch are imported inside the functions that compute, so replaying
committed records (PRODUCTS, tables, figures) stays torch-free."""
from . import (cross_arch, distill, elf_ablations, elf_regime, experts, inductive_bias,  # noqa: F401
               ptm_cross_arch, ptm_options, quickstart)

BY_SLUG = {m.SLUG: m for m in (quickstart, experts, distill, cross_arch, elf_ablations, inductive_bias, ptm_options,
                               ptm_cross_arch, elf_regime)}
