"""Two smoke runs of an experiment give identical records (and identical synthetic sets)."""
import json

import elfkit as ek


def _smoke_run(root, monkeypatch):
    monkeypatch.setenv("ELFKIT_RESULTS_DIR", str(root))
    ctx = ek.start("00_quickstart", "smoke", progress="off", quiet=True)
    res = ek.results.cached(ctx, ek.experiments.quickstart.run, recompute=True)
    return json.loads(res.path.read_text()), res.artefact("synset_dm.safetensors").read_bytes()


def test_two_smoke_runs_give_identical_records(tmp_path, monkeypatch):
    a, sa = _smoke_run(tmp_path / "a", monkeypatch)
    b, sb = _smoke_run(tmp_path / "b", monkeypatch)
    assert a["records"] == b["records"]
    assert a["records_sha256"] == b["records_sha256"] and a["config_hash"] == b["config_hash"]
    assert a["artefacts"] == b["artefacts"] and sa == sb
    assert {r["method"] for r in a["records"]} == {"DM", "random_real"}
