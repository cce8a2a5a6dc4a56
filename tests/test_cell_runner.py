"""`elfkit cells`: a grid computed in slices — feeding cells first, evaluations cheapest first, a slice that stops
between cells and a rerun that continues, the status line, and --next refusing an experiment with nothing pending."""
import pytest

import elfkit as ek

from elfkit import cell_runner, cli, profiles
from elfkit.experiments import elf_regime, grid


def test_cheap_order_feeds_first_then_evaluates_cheapest_first():
    plan, _ = grid.plan_of(elf_regime, profiles.get("smoke"))
    todo = cell_runner.ordered(plan.cells(), "cheap")
    kinds = [c.kind for c in todo]
    first_eval = kinds.index("evaluate")
    assert set(kinds[first_eval:]) == {"evaluate"}                      # feeding cells first, all of them
    position = {c.key: i for i, c in enumerate(todo)}
    assert all(position[i.key] < position[c.key] for c in todo for i in c.inputs)   # never before an input
    costs = [cell_runner.cost(c) for c in todo[first_eval:]]
    assert costs == sorted(costs) and costs[0] < costs[-1]       # 2-epoch cells before the 3-epoch ones
    assert sorted(map(id, todo)) == sorted(map(id, plan.cells()))
    assert cell_runner.ordered(plan.cells(), "plan") == plan.cells()
    with pytest.raises(ValueError, match="order"):
        cell_runner.ordered(plan.cells(), "fastest")


def test_a_cells_work_per_image_counts_flops_and_activation_elements():
    """ConvNetD1 on 28² (padded to 32²): conv 2·128·9·32² + linear 2·32768·10 FLOPs; conv, norm and ReLU outputs of
    128·32² each, the pool's 128·16², the 10 logits. Its work exceeds ConvNetW32's though its FLOPs are fewer — as
    measured: a full-data 3-epoch training took 449 s against 97 s."""
    counts = cell_runner.forward_counts
    assert counts("ConvNetD1", 1, (28, 28)) == (2 * 128 * 9 * 32 * 32 + 2 * 32768 * 10,
                                                3 * 128 * 32 * 32 + 128 * 16 * 16 + 10)
    assert counts("ResNet18", 1, (28, 28))[0] > 5 * counts("ConvNet", 1, (28, 28))[0]
    assert counts("ConvNetD1", 1, (28, 28))[0] < counts("ConvNetW32", 1, (28, 28))[0]
    assert cell_runner.image_work("ConvNetD1", 1, (28, 28)) > 2 * cell_runner.image_work("ConvNetW32", 1, (28, 28))


def test_a_feature_training_is_followed_by_every_features_cell_that_reads_it():
    """Its weights are not kept between sessions: the sets come first, then each feature model with all its features,
    so a slice never ends between a training and the features of a later set."""
    from elfkit.experiments import cross_arch

    plan, _ = grid.plan_of(cross_arch, profiles.get("smoke", cross_seeds=(0, 1)))
    todo = cell_runner.ordered(plan.cells(), "cheap")
    feeders = [c for c in todo if c.kind != "evaluate"]
    position = {c.key: i for i, c in enumerate(todo)}
    assert all(position[i.key] < position[c.key] for c in todo for i in c.inputs)
    sources = [c for c in feeders if any(f.kind == "features" and f.args["trajectory"].key == c.key for f in feeders)]
    assert len(sources) >= 2
    last_set = max(i for i, c in enumerate(feeders) if c.kind == "synset")
    for t in sources:
        i = feeders.index(t)
        readers = [f for f in feeders if f.kind == "features" and f.args["trajectory"].key == t.key]
        assert i > last_set and feeders[i + 1:i + 1 + len(readers)] == readers
    assert sorted(c.key for c in todo) == sorted(c.key for c in plan.cells())
    trained = [c for c in plan.cells() if c.key not in {t.key for t in sources}]   # their weights are on disk
    again = cell_runner.ordered(trained, "cheap")
    assert sorted(c.key for c in again) == sorted(c.key for c in trained)      # their features are still computed
    unordered, _ = grid.plan_of(cross_arch, profiles.get("smoke"))
    cells = unordered.cells()
    assert cell_runner.feature_trainings_last(cells[::-1]) == cells[::-1]   # inputs out of order: left as given


def test_cells_run_in_slices_and_a_rerun_continues(tmp_path, monkeypatch, capsys):
    """A clock that moves only when a cell's record is written (100 s each): a 50 s slice computes exactly one cell,
    whatever the machine's speed."""
    from elfkit import cells, executors

    monkeypatch.setenv("ELFKIT_RESULTS_DIR", str(tmp_path))
    now = [0.0]
    put = cells.CellStore.put

    def put_and_tick(self, *a, **kw):
        now[0] += 100.0
        return put(self, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(executors.time, "perf_counter", lambda: now[0])
        m.setattr(cells.CellStore, "put", put_and_tick)
        assert cli.main(["cells", "00", "--profile", "smoke", "--hours", str(50 / 3600)]) == 0
    out = capsys.readouterr().out
    assert "0 finished" in out and "computed 1 cells" in out and "rerun to continue" in out
    assert cli.main(["cells", "00", "--profile", "smoke", "--peek", str(tmp_path / "part.csv")]) == 0
    assert "0 of " in capsys.readouterr().out                       # the set alone: no row is finished yet
    assert cli.main(["cells", "00_quickstart", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "0 still pending" in out
    assert cli.main(["cells", "00", "--profile", "smoke", "--status"]) == 0
    out = capsys.readouterr().out
    assert "0 to compute: nothing pending" in out and "over 8 finished cells" in out
    assert cli.main(["cells", "00", "--profile", "smoke", "--next"]) == 2
    assert "no pending values" in capsys.readouterr().err
    assert cli.main(["cells", "0", "--profile", "smoke"]) == 2        # matches no single notebook
    assert "no single experiment" in capsys.readouterr().err


def test_cells_then_the_notebook_assembles_without_computing(tmp_path, monkeypatch, capsys):
    import elfkit as ek

    monkeypatch.setenv("ELFKIT_RESULTS_DIR", str(tmp_path))
    assert cli.main(["cells", "00", "--profile", "smoke"]) == 0
    capsys.readouterr()
    ctx = ek.start("00_quickstart", "smoke", progress="off", quiet=True)
    res = ek.results.cached(ctx, ek.experiments.quickstart.run, recompute=True)
    assert res.provenance and "to compute" not in capsys.readouterr().out
    import pandas as pd

    assert cli.main(["cells", "00", "--profile", "smoke", "--peek", str(tmp_path / "peek.csv")]) == 0
    peek, full = pd.read_csv(tmp_path / "peek.csv"), res.frame()
    assert len(peek) == len(full) and peek["value"].tolist() == pytest.approx(full["value"].tolist())


def _clock_of_units(monkeypatch) -> list:
    """A clock that moves 100 s per unit of each cell computed (no cell really runs); returns its reading."""
    from elfkit import executors

    now = [0.0]

    def compute(cell, env):
        now[0] += 100.0 * cell.args["units"]
        return {}, {"wall_s": 100.0 * cell.args["units"]}

    monkeypatch.setattr(executors.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(executors, "_compute", compute)
    return now


def test_a_slice_skips_a_cell_predicted_to_end_past_its_hours_and_goes_on(monkeypatch, capsys):
    """After one measured cell (100 s for 1 unit), a 2-unit cell would end at 300 s > 250 s: the slice skips it and
    computes the next 1-unit cell (ends at 200 s); without costs it starts the 2-unit cell (elapsed 100 s < 250 s)
    and runs over, as it does for a cell of unknown cost, and then starts nothing more."""
    from types import SimpleNamespace

    from elfkit import executors
    from elfkit.cells import Cell

    now = _clock_of_units(monkeypatch)
    todo = [Cell("evaluate", {"units": u, "i": i}) for i, u in enumerate((1, 2, 1))]

    def env():
        now[0] = 0.0
        return SimpleNamespace(progress="off", runs_dir=None, store=SimpleNamespace(put=lambda *a: None, get=lambda c: None))

    units = lambda c: c.args["units"]                                         # noqa: E731
    assert executors.serial(todo, env(), stop_after_s=250, cost=units) == 2
    out = capsys.readouterr().out
    assert "skipped: evaluate" in out and "would take ~3 min, 2 min are left" in out    # 200 s predicted, 150 left
    assert "1 cells skipped" in out and now[0] == 200.0
    assert executors.serial(todo, env(), stop_after_s=250) == 2               # starts at 100 s, runs over to 300
    assert executors.serial(todo, env(), stop_after_s=250, cost=lambda c: None) == 2
    assert executors.serial(todo, env(), stop_after_s=0, cost=units) == 3    # no slice: everything


def test_several_experiments_run_as_one_slice_computing_each_shared_cell_once(tmp_path, monkeypatch, capsys):
    """03 and 04 share the study set and its feature models: one slice holds every pending cell of both once, each
    after its inputs, and a feature training 04 needs is followed by every features cell of both grids that reads it
    (03's other sets included), so the session that trains it feeds both."""
    monkeypatch.setenv("ELFKIT_RESULTS_DIR", str(tmp_path))
    kw = dict(dataset="", seed=0, overrides=None, use_next=False, device="cpu", progress="off")
    jobs = [cell_runner.pending(e, "smoke", **kw) for e in ("03", "04")]
    both = cell_runner.union(jobs)
    k3, k4 = ({c.key for c in j[4]} for j in jobs)
    assert k3 & k4 and k3 - k4 and k4 - k3
    assert len(both) == len({c.key for c in both}) == len(k3 | k4)
    todo = cell_runner.ordered(both, "cheap")
    position = {c.key: i for i, c in enumerate(todo)}
    assert all(position[i.key] < position[c.key] for c in todo for i in c.inputs if i.key in position)
    shared = [c for c in todo if c.kind == "trajectory" and c.key in k3 & k4
              and any(f.kind == "features" and f.args["trajectory"].key == c.key and f.key in k3 - k4 for f in todo)]
    assert shared                                       # a training 04 needs, read by 03's sets too
    for t in shared:
        i = position[t.key]
        readers = [f for f in todo if f.kind == "features" and f.args["trajectory"].key == t.key]
        assert todo[i + 1:i + 1 + len(readers)] == readers
    capsys.readouterr()
    assert cli.main(["cells", "03", "04", "--profile", "smoke", "--status"]) == 0
    assert f"03_cross_arch + 04_elf_ablations: {len(both)} distinct cells to compute" in capsys.readouterr().out
    assert cli.main(["cells", "03", "04", "--profile", "smoke", "--peek", str(tmp_path / "x.csv")]) == 2
    assert "name one" in capsys.readouterr().err
    other = cell_runner.pending("04", "smoke", **{**kw, "overrides": '{"test_batch": 128}'})
    with pytest.raises(ek.ElfkitError, match="test_batch"):
        cell_runner.union([jobs[0], other])


def test_recorded_compute_sums_each_shared_cell_once():
    """Two plans sharing a cell: its recorded value counts once; a cell without a record (or without the field) adds
    nothing. Fixed provenance values, nothing is timed."""
    from types import SimpleNamespace

    a, b, c, d = (SimpleNamespace(key=k) for k in "abcd")
    stored = {"a": 1800.0, "b": 3600.0, "d": None}
    store = SimpleNamespace(get=lambda cell: {"provenance": {"wall_s": stored[cell.key]}} if cell.key in stored else None)
    plans = [SimpleNamespace(cells=lambda: [a, b, c]), SimpleNamespace(cells=lambda: [b, d])]
    assert cell_runner.recorded_compute(plans, store) == (5400.0, 2)


def test_a_slice_predicts_each_kind_of_cell_from_its_own_measured_rate(monkeypatch, capsys):
    """Trajectories at 100 s per unit, evaluations at 10: a 10-unit evaluation after a measured training is predicted
    at 100 s (it fits), a second training at 100 s (it does not); one shared rate would have stopped the slice early."""
    from types import SimpleNamespace

    from elfkit import executors
    from elfkit.cells import Cell

    now = [0.0]
    speed = {"trajectory": 100.0, "evaluate": 10.0}

    def compute(cell, env):
        wall = speed[cell.kind] * cell.args["units"]
        now[0] += wall
        return {}, {"wall_s": wall}

    monkeypatch.setattr(executors.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(executors, "_compute", compute)
    todo = [Cell(k, {"units": u, "i": i}) for i, (k, u) in
            enumerate((("trajectory", 1), ("evaluate", 1), ("evaluate", 10), ("trajectory", 1)))]
    env = SimpleNamespace(progress="off", runs_dir=None, store=SimpleNamespace(put=lambda *a: None, get=lambda c: None))
    assert executors.serial(todo, env, stop_after_s=250, cost=lambda c: c.args["units"]) == 3
    assert "would take ~2 min, 1 min are left" in capsys.readouterr().out     # 100 s predicted at 210 s


def test_a_trainings_cost_counts_its_epochs_images_and_network():
    from elfkit.cells import Cell
    from elfkit.experiments import grid as g

    full = g.trajectory(g.data_spec("fashion_mnist"), "ConvNet", "elf_feature", 3, 0, "x")
    part = g.trajectory(g.data_spec("fashion_mnist", 1000), "ConvNet", "elf_feature", 3, 0, "x")
    wide = g.trajectory(g.data_spec("fashion_mnist"), "ConvNetW512", "elf_feature", 3, 0, "x")
    assert cell_runner.training_cost(full) == pytest.approx(6 * cell_runner.training_cost(part))
    assert cell_runner.training_cost(wide) > 5 * cell_runner.training_cost(full)
    assert cell_runner.training_cost(g.trajectory(g.data_spec("svhn"), "ConvNet", "elf_feature", 3, 0, "x")) is None
    assert cell_runner.units(Cell("synset", {})) is None and cell_runner.units(full) == cell_runner.training_cost(full)


def test_a_slice_predicts_its_first_cell_from_rates_recorded_before(monkeypatch, capsys):
    """With a known rate of 100 s per unit, the very first 3-unit cell (300 s) is not started in a 250-s slice; an
    ELF evaluation does not take a standard one's rate, and without a known rate the first cell runs."""
    from types import SimpleNamespace

    from elfkit import executors
    from elfkit.cells import Cell

    now = _clock_of_units(monkeypatch)
    env = SimpleNamespace(progress="off", runs_dir=None, store=SimpleNamespace(put=lambda *a: None, get=lambda c: None))
    todo = [Cell("evaluate", {"units": 3, "elf": True}), Cell("evaluate", {"units": 1, "elf": False})]
    units = lambda c: c.args["units"]                                         # noqa: E731
    known = {executors.rate_kinds(todo[0])[1]: 100.0}
    assert executors.serial(todo, env, stop_after_s=250, cost=units, known=known) == 1   # the standard one runs
    assert "would take ~5 min, 4 min are left" in capsys.readouterr().out and now[0] == 100.0
    now[0] = 0.0
    assert executors.serial(todo, env, stop_after_s=250, cost=units,
                            known={executors.rate_kinds(todo[1])[1]: 100.0}) == 1   # the ELF cell is not predicted
    now[0] = 0.0
    assert executors.serial(todo, env, stop_after_s=250, cost=units) == 1


def test_a_skipped_training_takes_its_readers_along_and_the_slice_goes_on(monkeypatch, capsys):
    """A training predicted at 300 s in a 250-s slice is skipped, so are the features cell reading it and the
    evaluation reading those features; an evaluation that reads neither still runs."""
    from types import SimpleNamespace

    from elfkit import executors
    from elfkit.cells import Cell

    now = _clock_of_units(monkeypatch)
    monkeypatch.setattr(executors.snapshot_pins, "pin", lambda *a: None)        # nothing is trained here
    env = SimpleNamespace(progress="off", runs_dir=None, store=SimpleNamespace(put=lambda *a: None, get=lambda c: None))
    training = Cell("trajectory", {"units": 3})
    features = Cell("features", {"units": 0, "trajectory": training, "epoch": 3})
    reader = Cell("evaluate", {"units": 1, "features": features})
    other = Cell("evaluate", {"units": 1, "i": 1})
    known = {executors.rate_kinds(training)[1]: 100.0}
    todo = [training, features, reader, other]
    assert executors.serial(todo, env, stop_after_s=250, cost=lambda c: c.args["units"] or None, known=known) == 1
    out = capsys.readouterr().out
    assert "skipped: trajectory" in out and "3 cells skipped" in out and now[0] == 100.0


def test_known_rates_are_the_median_of_records_from_the_same_device(monkeypatch):
    """Three records on this device (one slow, run under load) give their median; a GPU record and a record with
    other thread counts are left out; the forecast adds the predicted hours and counts untimed kinds apart."""
    from types import SimpleNamespace

    from elfkit import executors
    from elfkit.cells import Cell

    mine = {"device": "cpu (x86_64, 2 threads)", "threads": 2}
    cells = [Cell("evaluate", {"units": u, "i": i, "elf": False}) for i, u in enumerate((1, 2, 1, 1, 1))]
    provs = [{**mine, "wall_s": 10.0}, {**mine, "wall_s": 24.0}, {**mine, "wall_s": 30.0},
             {"device": "NVIDIA H200", "threads": 2, "wall_s": 0.1}, {**mine, "threads": 16, "wall_s": 1.0}]
    docs = {c.key: {"provenance": p} for c, p in zip(cells, provs)}
    store = SimpleNamespace(get=lambda c: docs.get(c.key))
    monkeypatch.setattr(cell_runner, "units", lambda c: c.args.get("units"))
    plan = SimpleNamespace(cells=lambda: cells)
    known = cell_runner.known_rates([plan, plan], store, mine["device"], 2)
    assert known == dict.fromkeys(executors.rate_kinds(cells[0]), 12.0)     # median of 10, 12, 30
    todo = [Cell("evaluate", {"units": 300, "elf": False}), Cell("evaluate", {"units": 1, "elf": True}),
            Cell("synset", {})]
    assert cell_runner.forecast(todo, known).startswith(
        "  at the rates recorded on this device: ~1.0 h for the evaluations and trainings, plus 1 cell of a kind")


def test_a_cell_takes_its_own_networks_rate_and_else_its_groups():
    from elfkit import executors
    from elfkit.cells import Cell

    resnet, alexnet = (Cell("evaluate", {"arch": a, "elf": False}) for a in ("ResNet18", "AlexNet"))
    own, general = executors.rate_kinds(resnet)
    assert general == executors.rate_kinds(alexnet)[1] and own != executors.rate_kinds(alexnet)[0]
    rates = {own: 3.0, general: 2.0}
    assert executors.predicted_rate(rates, resnet) == 3.0 and executors.predicted_rate(rates, alexnet) == 2.0
    assert executors.predicted_rate({}, alexnet) == 0.0
    assert executors.predicted_rate(rates, Cell("evaluate", {"arch": "ResNet18", "elf": True})) == 0.0


def test_evaluations_that_read_a_trainings_network_follow_that_training():
    """04's augmented-feature ELF rows compute features from the feature model itself while they train: they sit
    directly after its training and features, not at the end among the evaluations (where each fresh machine's
    slice would train the model again until they were done)."""
    from elfkit.experiments import elf_ablations

    plan, _ = grid.plan_of(elf_ablations, profiles.get("smoke"))
    todo = cell_runner.ordered(plan.cells(), "cheap")
    position = {c.key: i for i, c in enumerate(todo)}
    assert all(position[i.key] < position[c.key] for c in todo for i in c.inputs)
    direct = [c for c in todo if c.kind == "evaluate" and any(i.kind == "trajectory" for i in c.inputs)]
    assert direct
    first_other = min(i for i, c in enumerate(todo) if c.kind == "evaluate" and c not in direct)
    for c in direct:
        (t,) = {i.key for i in c.inputs if i.kind == "trajectory"}
        between = todo[position[t] + 1:position[c.key]]
        assert position[c.key] < first_other and all(cell_runner.read_trajectory(b, {t}) for b in between)


def test_a_cell_recomputed_for_its_artefacts_keeps_its_record_when_identical(tmp_path, capsys):
    """A training retrained on a fresh machine only to restore its weights: an identical output leaves the committed
    record (provenance included) untouched; a different one is written, with a warning that names the fix."""
    from elfkit import executors
    from elfkit.cells import Cell, CellStore

    store, cell = CellStore(tmp_path), Cell("trajectory", {"arch": "ConvNet", "i": 1})
    store.put(cell, {"score": {"3": 0.8958}}, {"wall_s": 5559.0})
    before = store.path(cell).read_bytes()
    executors.persist(store, cell, {"score": {"3": 0.8958}}, {"wall_s": 4000.0})
    assert store.path(cell).read_bytes() == before and "identical to its record" in capsys.readouterr().out
    executors.persist(store, cell, {"score": {"3": 0.8957}}, {"wall_s": 4000.0})
    assert store.get(cell)["output"]["score"]["3"] == 0.8957 and "WARNING" in capsys.readouterr().out
