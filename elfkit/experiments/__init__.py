"""One module per paper artefact: run(ctx) -> results.Output, PRODUCTS lists the files it leaves behind."""
from . import quickstart  # noqa: F401

BY_SLUG = {quickstart.SLUG: quickstart}
