"""Tests for elfkit.results (+ context): round trip, provenance, atomic writes, stale-hash and checksum detection."""
import json
import math

import pytest
import torch

from elfkit import profiles, results
from elfkit.context import Context, start
from elfkit.errors import ElfkitError, StaleResultsError

RECORDS = [{"method": "DM", "ipc": 1, "eval_arch": "ConvNet", "seed": s, "metric": "test_acc", "value": 0.5 + s / 10}
           for s in range(3)]


def make_fn(records=RECORDS, artefact="curve.csv", content="it,loss\n0,1.0\n"):
    calls = []

    def fn(ctx):
        calls.append(ctx)
        if artefact:
            (ctx.results_dir / artefact).write_text(content)
        return results.Output(records=[dict(r) for r in records], artefacts=[artefact] if artefact else [],
                              data_source={"generator": "synthetic(seed=0)"})

    fn.calls = calls
    return fn


@pytest.fixture
def ctx():
    return start("00_test", "smoke", quiet=True, device="cpu")


@pytest.fixture
def written(ctx, capsys):
    """A records.json written by cached(recompute=True); returns (ctx, Results, path)."""
    res = results.cached(ctx, make_fn(), recompute=True)
    capsys.readouterr()
    return ctx, res, ctx.results_dir / results.RECORDS_FILE


def test_results_dir_is_under_the_test_folder(ctx, results_root):
    assert ctx.results_dir == results_root.resolve() / "results" / "smoke" / "00_test"


def test_recompute_writes_a_complete_records_file(ctx, capsys):
    fn = make_fn()
    res = results.cached(ctx, fn, recompute=True)
    assert len(fn.calls) == 1
    path = ctx.results_dir / "records.json"
    assert res.path == path
    doc = json.loads(path.read_text())
    assert doc["schema"] == results.SCHEMA == 1
    assert doc["experiment"] == "00_test" and doc["profile"] == "smoke"
    assert doc["config"] == json.loads(json.dumps(ctx.config()))
    assert doc["config"]["profile"]["n_eval_models"] == profiles.SMOKE.n_eval_models
    assert doc["config_hash"] == results.config_hash(ctx.config())
    assert doc["config_hash"].startswith("sha256:") and len(doc["config_hash"]) == 7 + 64
    assert doc["records"] == RECORDS
    assert doc["records_sha256"] == results.records_sha256(RECORDS)
    prov = doc["provenance"]
    for key in ("git_sha", "git_dirty", "elfkit", "torch", "torchvision", "numpy", "python", "platform", "device",
                "threads", "cpu_capability", "started_utc", "wall_s", "params", "data"):
        assert key in prov, key
    assert prov["torch"] == torch.__version__
    assert prov["started_utc"] == ctx.started_utc and prov["started_utc"].endswith("Z")
    recorded = prov["wall_s"]                  # provenance carries the run's duration (never compared to a limit)
    assert isinstance(recorded, (int, float)) and recorded >= 0
    assert prov["params"] == {"profile": "smoke", "seed": 0, "device": "cpu", "executor": "serial"}
    assert prov["data"] == {"generator": "synthetic(seed=0)"}
    assert doc["artefacts"] == {"curve.csv": results.file_sha256(ctx.results_dir / "curve.csv")}
    assert res.artefact("curve.csv").read_text().startswith("it,loss")
    assert "00_test [smoke] 3 records" in capsys.readouterr().out
    assert not list(ctx.results_dir.glob("*.tmp"))


def test_replay_returns_the_same_records_without_running(written, capsys):
    ctx, first, path = written
    fn = make_fn()
    again = results.cached(ctx, fn, recompute=False)
    assert fn.calls == []
    assert again.records == first.records == RECORDS
    assert again.config_hash == first.config_hash and again.provenance == first.provenance
    assert again.frame()["value"].tolist() == [r["value"] for r in RECORDS]
    assert "00_test [smoke] 3 records" in capsys.readouterr().out


def test_replay_with_other_overrides_is_stale(written):
    _, _, path = written
    ctx2 = start("00_test", "smoke", quiet=True, device="cpu", overrides={"n_eval_models": 5})
    assert ctx2.results_dir / "records.json" == path
    with pytest.raises(StaleResultsError, match="stale results"):
        results.cached(ctx2, make_fn(), recompute=False)


def test_replay_with_other_seed_is_stale(written):
    ctx2 = start("00_test", "smoke", quiet=True, device="cpu", seed=1)
    with pytest.raises(StaleResultsError):
        results.cached(ctx2, make_fn(), recompute=False)


def test_hand_edited_record_is_detected(written):
    ctx, _, path = written
    doc = json.loads(path.read_text())
    doc["records"][0]["value"] = 0.99
    path.write_text(json.dumps(doc, indent=1))
    with pytest.raises(ElfkitError, match="does not match its sha256"):
        results.cached(ctx, make_fn(), recompute=False)
    doc["sha256"] = results.doc_sha256(doc)       # a consistent forgery of the outer hash still fails inside
    path.write_text(json.dumps(doc, indent=1))
    with pytest.raises(ElfkitError, match="records_sha256"):
        results.cached(ctx, make_fn(), recompute=False)


def test_changed_artefact_is_detected(written):
    ctx, _, path = written
    (ctx.results_dir / "curve.csv").write_text("it,loss\n0,2.0\n")
    with pytest.raises(ElfkitError, match="artefact curve.csv is missing or changed"):
        results.cached(ctx, make_fn(), recompute=False)


def test_missing_artefact_is_detected(written):
    ctx, _, path = written
    (ctx.results_dir / "curve.csv").unlink()
    with pytest.raises(ElfkitError, match="artefact curve.csv is missing or changed"):
        results.cached(ctx, make_fn(), recompute=False)


def test_replay_without_file_says_recompute(ctx):
    fn = make_fn()
    with pytest.raises(ElfkitError, match="recompute True"):
        results.cached(ctx, fn, recompute=False)
    assert fn.calls == []


def test_unreadable_and_wrong_schema_files_raise(written):
    ctx, _, path = written
    doc = json.loads(path.read_text())
    doc["schema"] = 2
    path.write_text(json.dumps(doc))
    with pytest.raises(ElfkitError, match="schema 2 is not 1"):
        results.cached(ctx, make_fn(), recompute=False)
    path.write_text('{"schema": 1, "records": [')
    with pytest.raises(ElfkitError, match="not a readable results file"):
        results.load(path)


def test_nan_record_raises_and_keeps_the_old_file(written):
    ctx, _, path = written
    before = path.read_bytes()
    bad = [dict(RECORDS[0], value=float("nan"))]
    with pytest.raises(ElfkitError, match="NaN"):
        results.cached(ctx, make_fn(records=bad, artefact=None), recompute=True)
    assert path.read_bytes() == before
    assert not list(ctx.results_dir.glob("*.tmp"))


def test_nan_on_first_run_writes_nothing(ctx):
    bad = [dict(RECORDS[0], value=float("nan"))]
    with pytest.raises(ElfkitError, match="nothing was written"):
        results.cached(ctx, make_fn(records=bad, artefact=None), recompute=True)
    assert not (ctx.results_dir / "records.json").exists()


def test_inf_record_is_rejected_too(written):
    ctx, _, path = written
    before = path.read_bytes()
    bad = [dict(RECORDS[0], value=math.inf)]
    with pytest.raises(ElfkitError):
        results.cached(ctx, make_fn(records=bad, artefact=None), recompute=True)
    assert path.read_bytes() == before


def test_paper_recompute_on_cpu_is_refused_with_one_consistent_message(capsys):
    ctx = Context("00_test", profiles.PAPER, 0, torch.device("cpu"), "off")
    fn = make_fn()
    with pytest.raises(ElfkitError, match="only on a CUDA GPU.*use profile 'cpu'") as e:
        results.cached(ctx, fn, recompute=True)
    assert fn.calls == [] and "recompute True" not in str(e.value)
    with pytest.raises(ElfkitError, match="no committed results for profile 'paper'.*GPU run"):
        results.cached(ctx, fn, recompute=False)


# --- atomic_write_json and hashes ---------------------------------------------------------------------------------

def test_atomic_write_json_round_trip_leaves_no_tmp(tmp_path):
    path = tmp_path / "sub" / "doc.json"
    assert results.atomic_write_json(path, {"a": [1, 2], "b": {"c": "d"}}) == path
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": {"c": "d"}}
    results.atomic_write_json(path, {"a": 3})
    assert json.loads(path.read_text()) == {"a": 3}
    assert [p.name for p in path.parent.iterdir()] == ["doc.json"]


class Unprintable:
    def __str__(self):
        raise RuntimeError("cannot serialise")


@pytest.mark.parametrize("bad", ["unprintable", "circular"])
def test_atomic_write_json_failure_keeps_old_file(tmp_path, bad):
    path = tmp_path / "doc.json"
    results.atomic_write_json(path, {"ok": True})
    before = path.read_bytes()
    if bad == "unprintable":   # default=str itself raises, after the first keys were already written
        obj, exc = {"a": list(range(1000)), "b": Unprintable()}, RuntimeError
    else:
        obj, exc = {"a": list(range(1000))}, ValueError
        obj["self"] = obj
    with pytest.raises(exc):
        results.atomic_write_json(path, obj)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["doc.json"]


def test_config_hash_is_independent_of_key_order():
    a = {"experiment": "x", "seed": 0, "profile": {"ipc": 10, "ipcs": (1, 10), "eval_lr": 0.01}}
    b = {"profile": {"eval_lr": 0.01, "ipcs": [1, 10], "ipc": 10}, "seed": 0, "experiment": "x"}
    assert results.config_hash(a) == results.config_hash(b)
    assert results.config_hash(a) != results.config_hash(dict(a, seed=1))
    assert results.config_hash(a) != results.config_hash({**a, "profile": {**a["profile"], "eval_lr": 0.1}})


def test_context_config_hash_tracks_overrides_only():
    a = start("00_test", "smoke", quiet=True, device="cpu")
    b = start("00_test", "smoke", quiet=True, device="cpu")
    c = start("00_test", "smoke", quiet=True, device="cpu", overrides={"ipc": 3})
    assert results.config_hash(a.config()) == results.config_hash(b.config())
    assert results.config_hash(a.config()) != results.config_hash(c.config())
