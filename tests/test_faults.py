"""What a kill, a flipped bit, a full or read-only disk, or an exploding run leaves behind: resumes are exact (also
with CLoM guidance), corruption is caught on load with one line naming the file, stale temporary files are
removed, and nothing written before is lost."""
import os
import socket

import pytest
import torch

from elfkit import clom, data, experts, models, results, safefile
from elfkit.distill import dc, dm, mtt
from elfkit.errors import DivergenceError, ElfkitError
from elfkit.synset import SynSet, load


@pytest.fixture(scope="module")
def toy():
    return data.synthetic(n_train=20, n_test=4)


def _guidance(seed=9):
    nets = []
    for k in range(3):     # several members: the member draw must be part of the checkpoint
        torch.manual_seed(k)
        nets.append(models.create("ConvNetW32", 1, 10, (28, 28)))
    return clom.Guidance({"ConvNetW32": nets}, 50.0, seed=seed)


def _interrupt_at(monkeypatch, module, name, n):
    real, calls = getattr(module, name), {"n": 0}

    def wrapper(*a, **k):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(module, name, wrapper)
    return lambda: monkeypatch.setattr(module, name, real)


@pytest.mark.parametrize("method", ["DC", "DM", "MTT"])
def test_guided_runs_resume_to_the_uninterrupted_result(toy, method, tmp_path, monkeypatch):
    kw = dict(ipc=1, arch="ConvNetW32", iterations=5, seed=2)
    if method == "DC":
        kw.update(batch_real=4, loops=(1, 1))
    elif method == "DM":
        kw.update(batch_real=4)
    else:
        kw.update(experts=experts.pool(toy, "ConvNetW32", 1, recipe="mtt_expert", epochs=2, root=tmp_path / "e"),
                  syn_steps=2, expert_epochs=1, max_start_epoch=1, lr_lr=1e-7)
    fn = {"DC": dc.distill, "DM": dm.distill, "MTT": mtt.distill}[method]
    full = fn(toy, guidance=_guidance(), **kw)
    ckpt = tmp_path / "run.ckpt"
    restore = _interrupt_at(monkeypatch, clom.Guidance, "__call__", 4)   # dies inside iteration 3 (after ckpt at 2)
    with pytest.raises(KeyboardInterrupt):
        fn(toy, guidance=_guidance(), checkpoint=ckpt, checkpoint_every=2, **kw)
    restore()
    assert ckpt.is_file()
    resumed = fn(toy, guidance=_guidance(), checkpoint=ckpt, checkpoint_every=2, resume=True, **kw)
    assert torch.equal(resumed.images, full.images)


def test_a_flipped_bit_in_a_checkpoint_is_caught(toy, tmp_path):
    ckpt = tmp_path / "dm.ckpt"
    dm.distill(toy, ipc=1, arch="ConvNetW32", iterations=2, batch_real=4, checkpoint=ckpt, checkpoint_every=2)
    raw = bytearray(ckpt.read_bytes())
    raw[-3] ^= 0x10                                          # inside the tensor data, not the header
    ckpt.write_bytes(bytes(raw))
    with pytest.raises(ElfkitError, match=f"{ckpt}.*corrupt"):
        dm.distill(toy, ipc=1, arch="ConvNetW32", iterations=4, batch_real=4, checkpoint=ckpt, checkpoint_every=2,
                   resume=True)


def test_a_flipped_bit_in_an_expert_resume_state_or_snapshot_is_caught(toy, tmp_path):
    traj = experts.train(toy, "ConvNetW32", recipe="mtt_expert", root=tmp_path, epochs=2)
    for f in (traj.folder / "resume.safetensors", traj.folder / "epoch_0001.safetensors"):
        raw = bytearray(f.read_bytes())
        raw[-5] ^= 0x01
        f.write_bytes(bytes(raw))
    with pytest.raises(ElfkitError, match="resume state .*resume.safetensors is corrupt"):
        experts.train(toy, "ConvNetW32", recipe="mtt_expert", root=tmp_path, epochs=2)   # resumes: reads it
    with pytest.raises(ElfkitError, match="snapshot .*epoch_0001.safetensors is corrupt"):
        traj.state(1)


def test_a_flipped_label_in_a_synset_is_caught(tmp_path):
    p = SynSet(torch.randn(4, 1, 28, 28), torch.tensor([0, 0, 1, 1])).save(tmp_path / "s.safetensors")
    raw = bytearray(p.read_bytes())
    raw[-8] ^= 0x01                                          # the labels tensor is stored last
    p.write_bytes(bytes(raw))
    with pytest.raises(ElfkitError, match="s.safetensors is corrupt"):
        load(p)


def test_truncated_files_fail_with_one_line(tmp_path):
    p = SynSet(torch.randn(2, 1, 28, 28), torch.tensor([0, 1])).save(tmp_path / "s.safetensors")
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(ElfkitError, match="unreadable or truncated") as e:
        load(p)
    assert "\n" not in str(e.value)
    bad = tmp_path / "records.json"
    bad.write_text('{"schema": 1, "records": [')
    with pytest.raises(ElfkitError, match="not a readable results file"):
        results.load(bad)


def test_stale_temporary_files_of_dead_writers_are_removed(tmp_path):
    target = tmp_path / "records.json"
    host = socket.gethostname().replace(".", "_")
    dead = tmp_path / f".records.json.{host}.999999999.deadbeef.tmp"     # no such pid
    live = tmp_path / f".records.json.{host}.{os.getpid()}.cafecafe.tmp"  # a writer that still runs
    other = tmp_path / ".records.json.otherhost.1.abcdabcd.tmp"          # another machine's: not ours to judge
    for f in (dead, live, other):
        f.write_text("partial")
    results.atomic_write_json(target, {"a": 1})
    assert target.is_file() and not dead.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == sorted([live.name, other.name])


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "x.json"
    safefile.write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with safefile.atomic(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text().strip().startswith("{") and '"v": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ElfkitError, match="cannot write .*make the folder writable"):
            safefile.write_json(ro / "x.json", {})
    finally:
        ro.chmod(0o700)


def test_a_folder_in_place_of_a_file_is_one_line(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(ElfkitError, match="cannot write .*out.json.*folder"):
        safefile.write_json(tmp_path / "out.json", {})


def test_an_exploding_run_stops_and_says_what_to_lower(toy, tmp_path):
    with pytest.raises(DivergenceError, match="exploded.*lower lr_img.*No checkpoint was written yet"):
        dm.distill(toy, ipc=1, arch="ConvNetW32", iterations=6, batch_real=4, lr_img=1e20,
                   checkpoint=tmp_path / "dm.ckpt", checkpoint_every=2)


def test_an_existing_checkpoint_is_not_overwritten_without_resume(toy, tmp_path):
    ckpt = tmp_path / "dm.ckpt"
    dm.distill(toy, ipc=1, arch="ConvNetW32", iterations=2, batch_real=4, checkpoint=ckpt, checkpoint_every=2)
    before = ckpt.read_bytes()
    with pytest.raises(ElfkitError, match="already exists; pass resume=True"):
        dm.distill(toy, ipc=1, arch="ConvNetW32", iterations=2, batch_real=4, lr_img=0.5, checkpoint=ckpt,
                   checkpoint_every=2)
    assert ckpt.read_bytes() == before


def _experiment_with_artefact(value: float, die: bool = False):
    def fn(ctx):
        (ctx.results_dir / "art.txt").write_text(f"artefact {value}")
        if die:
            raise KeyboardInterrupt          # killed after writing the new artefact, before its records
        return results.Output([{"metric": "test_acc", "value": value}], artefacts=["art.txt"])
    return fn


def test_a_killed_recompute_leaves_the_previous_results_replayable(capsys):
    from elfkit import start

    ctx = start("00_test", "smoke", quiet=True, device="cpu")
    results.cached(ctx, _experiment_with_artefact(1.0), recompute=True)
    with pytest.raises(KeyboardInterrupt):
        results.cached(ctx, _experiment_with_artefact(2.0, die=True), recompute=True)
    res = results.cached(ctx, _experiment_with_artefact(9.0), recompute=False)    # replay: the old pair, intact
    assert res.records[0]["value"] == 1.0 and res.artefact("art.txt").read_text() == "artefact 1.0"
    assert sorted(p.name for p in ctx.results_dir.parent.iterdir()) == ["00_test"]   # no staging folder left
    res = results.cached(ctx, _experiment_with_artefact(3.0), recompute=True)
    assert res.records[0]["value"] == 3.0 and res.artefact("art.txt").read_text() == "artefact 3.0"


def test_a_swap_interrupted_between_its_renames_is_undone(capsys):
    from elfkit import start

    ctx = start("00_test", "smoke", quiet=True, device="cpu")
    results.cached(ctx, _experiment_with_artefact(1.0), recompute=True)
    final = ctx.results_dir
    final.rename(final.with_name(".00_test.old"))          # the kill came right after the first rename
    res = results.cached(ctx, _experiment_with_artefact(9.0), recompute=False)
    assert res.records[0]["value"] == 1.0


@pytest.mark.parametrize("field, edit", [("provenance", {"git_sha": "0" * 40}), ("config", {"seed": 7})])
def test_an_edited_records_file_does_not_replay(field, edit, capsys):
    import json

    from elfkit import start

    ctx = start("00_test", "smoke", quiet=True, device="cpu")
    res = results.cached(ctx, _experiment_with_artefact(1.0), recompute=True)
    doc = json.loads(res.path.read_text())
    doc[field].update(edit)
    res.path.write_text(json.dumps(doc))
    with pytest.raises(ElfkitError, match="does not match its sha256"):
        results.cached(ctx, _experiment_with_artefact(1.0), recompute=False)
