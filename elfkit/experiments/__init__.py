"""One module per paper artefact: run(ctx) -> results.Output, PRODUCTS lists the files it leaves behind, USES the
profile fields its results depend on (the config hash covers exactly those). Modules that need torch are imported
inside the functions that compute, so replaying committed records (PRODUCTS, USES, tables, figures) stays torch-free."""
from . import (cross_arch, distill, elf_ablations, experts, inductive_bias, ptm_cross_arch,  # noqa: F401
               ptm_options, quickstart)

BY_SLUG = {m.SLUG: m for m in (quickstart, experts, distill, cross_arch, elf_ablations, inductive_bias, ptm_options,
                               ptm_cross_arch)}
