"""Two smoke runs of an experiment give identical records (and identical synthetic sets)."""
import json

import elfkit as ek


def _smoke_run(root, monkeypatch):
    monkeypatch.setenv("ELFKIT_RESULTS_DIR", str(root))
    ctx = ek.start("00_quickstart", "smoke", progress="off", quiet=True)
    res = ek.results.cached(ctx, ek.experiments.quickstart.run, recompute=True)
    return json.loads(res.path.read_text()), res.artefact("synset_dm.safetensors").read_bytes()


def _what_differs(sa: bytes, sb: bytes) -> str:
    """For the failure message: do the two sets differ in their pixels or only in their metadata?"""
    from safetensors.torch import load

    def metadata(raw: bytes) -> dict:     # safetensors: 8-byte little-endian header length, then the JSON header
        return json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")]).get("__metadata__", {})

    ta, tb = load(sa), load(sb)
    diff = {k: float((ta[k].float() - tb[k].float()).abs().max()) for k in ta}
    ma, mb = metadata(sa), metadata(sb)
    return f"max |difference| per tensor: {diff}; metadata keys that differ: {[k for k in ma if ma[k] != mb.get(k)]}"


def test_two_smoke_runs_give_identical_records(tmp_path, monkeypatch):
    a, sa = _smoke_run(tmp_path / "a", monkeypatch)
    b, sb = _smoke_run(tmp_path / "b", monkeypatch)
    assert a["records"] == b["records"]
    assert a["records_sha256"] == b["records_sha256"] and a["config_hash"] == b["config_hash"]
    assert a["artefacts"] == b["artefacts"] and sa == sb, _what_differs(sa, sb)
    assert {r["method"] for r in a["records"]} == {"DM", "random_real"}


def test_a_saved_set_is_byte_identical_every_time(tmp_path):
    """safetensors writes its metadata map in hash order: elfkit packs it into one key so bytes never vary."""
    import torch

    from elfkit.synset import SynSet

    s = SynSet(torch.randn(4, 1, 28, 28), torch.tensor([0, 0, 1, 1]), {"method": "DM", "loss_curve": [[0, 1.0]]})
    assert len({s.save(tmp_path / f"{i}.safetensors").read_bytes() for i in range(20)}) == 1
