"""The Ray executor (2 local workers) gives byte-identical records to the serial one, also when a worker is killed
in the middle of a cell (Ray retries it; the driver never persists half a cell)."""
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import elfkit as ek

ray = pytest.importorskip("ray", reason="the Ray executor is an optional extra: pip install 'elfkit[ray]'")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _run(root: Path, monkeypatch, executor: str):
    monkeypatch.setenv("ELFKIT_RESULTS_DIR", str(root))
    ctx = ek.start("03_cross_arch", "smoke", progress="off", quiet=True, executor=executor)
    res = ek.results.cached(ctx, ek.experiments.cross_arch.run, recompute=True)
    return res


def _outputs(root: Path) -> dict:
    """Every cell's output (not its provenance: host, wall time and executor differ by design) and artefact bytes."""
    out = {}
    for f in sorted((root / "results" / "smoke" / "cells").glob("*/*")):
        if f.suffix == ".json":
            doc = json.loads(f.read_text())
            out[f.name] = json.dumps(doc["output"], sort_keys=True)
        else:
            out[f.name] = f.read_bytes()
    return out


def _records_bytes(res) -> bytes:
    return json.dumps(res.records, sort_keys=True).encode()


def test_ray_gives_the_serial_records_bit_for_bit(tmp_path, monkeypatch, local_ray):
    serial = _run(tmp_path / "serial", monkeypatch, "serial")
    par = _run(tmp_path / "ray", monkeypatch, "ray")
    assert par.provenance["params"]["executor"] == "ray" and par.provenance["cells"]["computed"] > 20
    assert _records_bytes(par) == _records_bytes(serial)
    assert _outputs(tmp_path / "ray") == _outputs(tmp_path / "serial")
    cells = [json.loads(f.read_text()) for f in (tmp_path / "ray" / "results" / "smoke" / "cells").glob("*/*.json")]
    assert {d["provenance"]["executor"] for d in cells} == {"ray"}


def _busy_workers() -> list[int]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
    return [int(line.split()[0]) for line in ps[1:] if "ray::_ray_task" in line]


def test_a_worker_killed_mid_cell_is_retried_and_the_records_are_identical(tmp_path, monkeypatch, local_ray):
    serial = _run(tmp_path / "serial", monkeypatch, "serial")
    result, killed = {}, []

    def grid():
        result["res"] = _run(tmp_path / "ray", monkeypatch, "ray")

    t = threading.Thread(target=grid)
    t.start()
    deadline = time.time() + 120
    while not killed and time.time() < deadline and t.is_alive():
        for pid in _busy_workers():
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            break
        time.sleep(0.02)
    t.join(timeout=600)
    assert killed, "no Ray worker was seen running a cell"
    assert _records_bytes(result["res"]) == _records_bytes(serial)
    assert _outputs(tmp_path / "ray") == _outputs(tmp_path / "serial")


def test_a_typo_in_the_executor_stops_before_anything_runs():
    with pytest.raises(ek.ElfkitError, match="executor must be"):
        ek.start("03_cross_arch", "smoke", quiet=True, executor="threads")
