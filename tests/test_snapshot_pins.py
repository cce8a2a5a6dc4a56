"""Small snapshots that cells read travel with the cell store: a fresh machine restores them instead of retraining,
and recomputes a CLoM set from them bit for bit; a snapshot over the size cap stays local (retrained as before)."""
import json
import shutil

from elfkit import cli, snapshot_pins
from elfkit.cells import Cell, CellStore


def _traj(i: int, epochs: int = 10) -> Cell:
    return Cell("trajectory", {"arch": "ConvNet", "epochs": epochs, "i": i})


def test_reads_names_the_pools_snapshots_of_a_clom_set_and_a_features_cells_network():
    a, b = _traj(0), _traj(1, epochs=60)
    guided = Cell("synset", {"method": "DM", "guidance": {"epoch": 30, "pools": {"ConvNet": [a], "VGG11": [b]}}})
    assert [(t.key, e) for t, e in snapshot_pins.reads(guided)] == [(a.key, 30), (b.key, 30)]
    assert snapshot_pins.reads(Cell("synset", {"method": "DM", "guidance": None})) == []
    feats = Cell("features", {"trajectory": a, "epoch": 3, "synset": guided})
    assert [(t.key, e) for t, e in snapshot_pins.reads(feats)] == [(a.key, 3)]
    # each training's last snapshot is wanted too: it is what marks the training as present on a machine
    assert sorted((t.key, e) for t, e in snapshot_pins.wanted([guided, feats])) == sorted(
        [(a.key, 30), (a.key, 10), (b.key, 30), (b.key, 60), (a.key, 3)])


def _fake_training(store: CellStore, runs, traj: Cell, epochs: list[int], size: int) -> None:
    store.put(traj, {"folder": f"ptm/{traj.short}"}, {})
    folder = runs / "ptm" / traj.short
    folder.mkdir(parents=True)
    for e in epochs:
        (folder / f"epoch_{e:04d}.safetensors").write_bytes(bytes([e]) * size)


def test_pin_copies_small_read_snapshots_and_restore_puts_them_back(tmp_path, monkeypatch):
    store, runs = CellStore(tmp_path / "cells"), tmp_path / "runs"
    small, big = _traj(0, epochs=3), _traj(1, epochs=3)
    _fake_training(store, runs, small, [1, 2, 3], 100)
    _fake_training(store, runs, big, [1, 2, 3], 200)
    monkeypatch.setattr(snapshot_pins, "PIN_MAX_BYTES", 150)
    reader = Cell("synset", {"guidance": {"epoch": 1, "pools": {"ConvNet": [small, big]}}})
    assert snapshot_pins.pin([reader], store, runs) == 2          # small's epochs 1 and 3; big is over the cap
    assert snapshot_pins.pin([reader], store, runs) == 0          # already there
    assert not snapshot_pins.pinned(store, small, 2).exists()     # no cell reads epoch 2
    shutil.rmtree(runs)                                           # a fresh machine
    doc = store.get(small)
    assert not snapshot_pins.restore(small, doc, store, runs, [2])          # a reader of epoch 2: retrain
    assert not (runs / "ptm" / small.short).exists()
    assert snapshot_pins.restore(small, doc, store, runs, [1])              # the reader of epoch 1: restored
    assert snapshot_pins.restore(small, doc, store, runs, [1])              # idempotent
    folder = runs / "ptm" / small.short
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_0001.safetensors", "epoch_0003.safetensors"]
    assert (folder / "epoch_0001.safetensors").read_bytes() == bytes([1]) * 100
    assert not snapshot_pins.restore(big, store.get(big), store, runs, [1])  # over the cap: retrained, as before


def test_a_fresh_machine_recomputes_a_clom_set_from_pinned_ptms_without_retraining(tmp_path, monkeypatch, capsys):
    """Smoke 06 computed; runs/ deleted; one guided set's record deleted: the rerun restores the PTMs' snapshots,
    trains nothing, and the set comes out with the same bits as before."""
    monkeypatch.setenv("ELFKIT_RESULTS_DIR", str(tmp_path))
    assert cli.main(["cells", "06", "--profile", "smoke"]) == 0
    store = CellStore(tmp_path / "results" / "smoke" / "cells")
    pins = sorted((store.root / "trajectory").glob("*.epoch_*.safetensors"))
    assert pins, "no PTM snapshot was pinned"
    guided = [p for p in (store.root / "synset").glob("*.json") if json.loads(p.read_text())["args"].get("guidance")]
    assert guided
    path = guided[0]
    artefact = path.with_suffix(".safetensors")
    before = artefact.read_bytes()
    path.unlink()
    artefact.unlink()
    shutil.rmtree(tmp_path / "results" / "smoke" / "runs")
    capsys.readouterr()
    assert cli.main(["cells", "06", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "trajectory" not in out.split("to compute", 1)[1].splitlines()[0]   # nothing retrained
    assert "computed 1 cells" in out
    assert artefact.read_bytes() == before
