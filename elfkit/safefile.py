"""Files that survive crashes and catch corruption: every write goes to a temporary sibling and is renamed into
place (readers never see half a file), the temporary files of killed writers are removed by the next write to the
same folder, tensors carry a SHA-256 of their bytes that is checked on load, and a failed read or write ends in
one line that names the file and the fix (nothing written before is touched)."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import uuid
from pathlib import Path

from .errors import ElfkitError

DIGEST_KEY = "elfkit_sha256"
# All metadata travels as ONE JSON string: safetensors writes its metadata map in hash order, so two keys would
# make the file's bytes differ from run to run (identical tensors, different headers).
PACKED_KEY = "elfkit"
_HOST = socket.gethostname().replace(".", "_")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(path: Path) -> int:
    """Remove temporary files of `path` left by writers on this host that no longer run; returns how many."""
    n = 0
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        parts = tmp.name[len(path.name) + 2:].split(".")
        if len(parts) == 4 and parts[0] == _HOST and parts[1].isdigit() and not _alive(int(parts[1])):
            with contextlib.suppress(OSError):
                tmp.unlink()
                n += 1
    return n


def write_error(path: Path, e: OSError) -> ElfkitError:
    fix = {errno.ENOSPC: "free disk space", errno.EDQUOT: "free disk space (quota)",
           errno.EACCES: "make the folder writable or choose another path",
           errno.EPERM: "make the folder writable or choose another path",
           errno.EROFS: "the file system is read-only; choose another path",
           errno.EISDIR: "the path is a folder; give a file name"}.get(e.errno, "check the path")
    return ElfkitError(f"cannot write {path}: {e.strerror or e}; {fix} (files written before are intact)")


@contextlib.contextmanager
def atomic(path: str | Path, mode: int = 0o644):
    """`with atomic(p) as tmp: write tmp` — tmp is renamed to p only if the block finishes."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(path)
    except OSError as e:
        raise write_error(path, e) from None
    tmp = path.parent / f".{path.name}.{_HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as e:
        raise write_error(path, e) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_json(path: str | Path, obj) -> Path:
    with atomic(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    return Path(path)


def digest(tensors: dict) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of the tensors (order-independent)."""
    import torch

    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_tensors(path: str | Path, tensors: dict, metadata: dict[str, str] | None = None) -> Path:
    """Atomic safetensors write with the tensors' digest in the metadata."""
    from safetensors.torch import save_file

    t = {k: v.detach().cpu().contiguous() for k, v in tensors.items() if v is not None}
    meta = {PACKED_KEY: json.dumps({**(metadata or {}), DIGEST_KEY: digest(t)}, sort_keys=True)}
    with atomic(path) as tmp:
        save_file(t, str(tmp), metadata=meta)
    return Path(path)


def unpack_metadata(raw: dict | None) -> dict:
    """The metadata save_tensors wrote (files from before the packing keep their plain keys)."""
    raw = dict(raw or {})
    return json.loads(raw[PACKED_KEY]) if PACKED_KEY in raw else raw


def load_tensors(path: str | Path, what: str = "file", fix: str = "delete it to recompute") -> tuple[dict, dict]:
    """(tensors, metadata) of a safetensors file, never unpickled; a truncated, corrupt or bit-flipped file (its
    digest differs) raises one ElfkitError naming it. Files written before digests existed load unchecked."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = unpack_metadata(f.metadata())
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise ElfkitError(f"{what} {path} does not exist") from None
    except Exception as e:
        raise ElfkitError(f"{what} {path} is unreadable or truncated ({type(e).__name__}); {fix}") from None
    want = meta.pop(DIGEST_KEY, None)
    if want is not None and digest(tensors) != want:
        raise ElfkitError(f"{what} {path} is corrupt (its SHA-256 does not match the one stored at write time); {fix}")
    return tensors, meta


def file_sha256(path: Path) -> str:
    """"sha256:<hex>" of a file's bytes (records name their artefacts by it)."""
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()
