"""Tests for the `elfkit` console script: help texts, list-models, distill → evaluate, foreign sets, clean errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from elfkit import cli
from elfkit.synset import SynSet, load

FAST_DISTILL = ["--dataset", "synthetic", "--ipc", "1", "--iterations", "2", "--batch-real", "8", "--progress", "off",
                "--device", "cpu"]
FAST_EVAL = ["--dataset", "synthetic", "--arch", "ConvNet", "--n-models", "1", "--epochs", "2", "--progress", "off",
             "--device", "cpu"]


class NotATensor:
    """A plain class instance: pickles fine, but torch.load(weights_only=True) must refuse it."""

    def __init__(self):
        self.payload = [1, 2, 3]


def run(argv, capsys):
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def assert_clean_error(rc, err, *needles):
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("elfkit: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, (n, err)


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """One tiny DM run through the CLI, shared by the tests that evaluate it."""
    folder = tmp_path_factory.mktemp("cli")
    out = folder / "s.safetensors"
    rc = cli.main(["distill", *FAST_DISTILL, "--out", str(out)])
    assert rc == 0
    return out


# --- help -----------------------------------------------------------------------------------------------------------

def test_console_script_exists():
    exe = Path(sys.executable).with_name("elfkit")
    assert exe.is_file(), f"{exe} missing: is elfkit installed (pip install -e .)?"
    p = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    for cmd in ("distill", "evaluate", "reproduce", "bench", "list-models"):
        assert cmd in p.stdout


def test_top_level_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: elfkit")
    for cmd in ("distill", "evaluate", "reproduce", "bench", "list-models"):
        assert cmd in out


@pytest.mark.parametrize("cmd,options", [
    ("distill", ["--method", "--dataset", "--ipc", "--arch", "--iterations", "--batch-real", "--lr-img", "--metric",
                 "--loops", "--experts", "--syn-steps",
                 "--checkpoint", "--checkpoint-every", "--resume", "--out", "--seed", "--device", "--progress"]),
    ("evaluate", ["synset", "--labels", "--dataset", "--arch", "--n-models", "--epochs", "--lr", "--batch",
                  "--no-dsa", "--out", "--seed", "--device", "--progress"]),
    ("reproduce", ["--profile", "--only", "--recompute", "--seed", "--device"]),
    ("bench", ["--quick", "--out", "--device", "--part"]),
    ("list-models", ["pattern"]),
])
def test_subcommand_help(capsys, cmd, options):
    with pytest.raises(SystemExit) as e:
        cli.main([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: elfkit {cmd}")
    for opt in options:
        assert opt in out, (cmd, opt)


def test_no_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("elfkit: error: ") and "elfkit --help" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, needle", [
    (["distill", "--ipc", "-3"], "--ipc: must be >= 1, got -3"),
    (["distill", "--ipc", "0"], "--ipc: must be >= 1, got 0"),
    (["distill", "--lr-img", "0"], "--lr-img: must be > 0"),
    (["distill", "--iterations", "ten"], "--iterations: 'ten' is not an integer"),
    (["evaluate", "x.safetensors", "--n-models", "0"], "--n-models: must be >= 1"),
    (["evaluate", "x.safetensors", "--epochs", "-1"], "--epochs: must be >= 1"),
    (["evaluate", "x.safetensors", "--lam-rear", "-1"], "--lam-rear: must be >= 0"),
    (["pretrain", "--root", "p", "--model-num", "0"], "--model-num: must be >= 1"),
    (["train-experts", "--root", "e", "--n", "0"], "--n: must be >= 1"),
])
def test_out_of_range_options_stop_before_any_work(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []                  # nothing written


# --- list-models ----------------------------------------------------------------------------------------------------

def test_list_models_pattern(capsys):
    rc, out, _ = run(["list-models", "ConvNet*"], capsys)
    assert rc == 0
    names = out.split()
    assert "ConvNet" in names
    assert all(n.startswith("ConvNet") for n in names)
    rc, out_all, _ = run(["list-models"], capsys)
    assert rc == 0 and set(names) < set(out_all.split())


# --- distill → evaluate ---------------------------------------------------------------------------------------------

def test_distill_writes_synset_and_record(distilled):
    syn = load(distilled)
    assert syn.images.shape == (10, 1, 28, 28)
    assert syn.labels.tolist() == list(range(10))
    assert syn.meta["method"] == "DM" and syn.meta["dataset"] == "synthetic" and syn.meta["ipc"] == 1
    doc = json.loads(distilled.with_suffix(".json").read_text())
    assert doc["schema"] == 1 and doc["experiment"] == "distill"
    assert doc["config"]["iterations"] == 2 and doc["config"]["dataset"] == "synthetic"
    assert "out" not in doc["config"] and "progress" not in doc["config"]
    assert [r["iteration"] for r in doc["records"]] == [0, 1]
    assert all(r["metric"] == "distill_loss" for r in doc["records"])
    from elfkit.results import records_sha256

    assert doc["records_sha256"] == records_sha256(doc["records"])
    assert "git_sha" in doc["provenance"]


def test_evaluate_synset(distilled, tmp_path, capsys):
    out = tmp_path / "e.json"
    rc, stdout, err = run(["evaluate", distilled, *FAST_EVAL, "--out", out], capsys)
    assert rc == 0, err
    assert f"wrote {out}" in stdout
    doc = json.loads(out.read_text())
    assert doc["experiment"] == "evaluate"
    (rec,) = doc["records"]
    assert rec["metric"] == "test_acc" and 0.0 <= rec["value"] <= 1.0
    assert rec["eval_arch"] == "ConvNet" and rec["model_seed"] == 0
    assert rec["method"] == "DM" and rec["ipc"] == 1


def test_evaluate_foreign_pt_pair(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    torch.save(torch.randn(10, 1, 28, 28, generator=g), tmp_path / "images_best.pt")
    torch.save(torch.arange(10), tmp_path / "labels_best.pt")
    out = tmp_path / "foreign.json"
    rc, _, err = run(["evaluate", tmp_path / "images_best.pt", *FAST_EVAL, "--out", out], capsys)
    assert rc == 0, err
    (rec,) = json.loads(out.read_text())["records"]
    assert rec["method"] == "foreign" and rec["metric"] == "test_acc" and rec["ipc"] == 1


def _official_res(path, n_exp=2):
    """Written exactly as the DC/DSA/DM code saves its result (main.py / main_DM.py): torch.save of a dict."""
    g = torch.Generator().manual_seed(0)
    data_save = [[torch.randn(10, 1, 28, 28, generator=g), torch.arange(10)] for _ in range(n_exp)]
    torch.save({"data": data_save, "accs_all_exps": {"ConvNet": [0.5, 0.6]}}, path)
    return data_save


def test_evaluate_the_official_dm_result_dict(tmp_path, capsys):
    from elfkit.synset import load_official

    path = tmp_path / "res_DM_FashionMNIST_ConvNet_1ipc.pt"
    saved = _official_res(path)
    syn = load_official(path, exp=1)
    assert torch.equal(syn.images, saved[1][0]) and torch.equal(syn.labels, saved[1][1])
    assert syn.meta["method"] == "DM" and syn.meta["dataset"] == "fashion_mnist" and syn.meta["ipc"] == 1
    assert syn.meta["experiments"] == 2
    out = tmp_path / "res.json"
    rc, _, err = run(["evaluate", path, *FAST_EVAL, "--exp", "1", "--out", out], capsys)
    assert rc == 0, err
    (rec,) = json.loads(out.read_text())["records"]
    assert rec["method"] == "DM" and rec["ipc"] == 1
    rc, _, err = run(["evaluate", path, *FAST_EVAL, "--exp", "2", "--out", tmp_path / "x.json"], capsys)
    assert_clean_error(rc, err, "holds 2 experiment(s)", "--exp must be 0..1")


def test_an_official_result_dict_with_objects_is_never_unpickled(tmp_path, capsys):
    torch.save({"data": [[torch.zeros(10, 1, 28, 28), torch.arange(10)]], "args": NotATensor()},
               tmp_path / "res_DM_FashionMNIST_ConvNet_1ipc.pt")
    rc, _, err = run(["evaluate", tmp_path / "res_DM_FashionMNIST_ConvNet_1ipc.pt", *FAST_EVAL], capsys)
    assert_clean_error(rc, err, "pickled Python object", "never unpickled")


# --- errors: exit code 2 and one line on stderr ---------------------------------------------------------------------

def test_corrupt_safetensors(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8,
                                  generator=torch.Generator().manual_seed(0)).numpy().tobytes())
    rc, _, err = run(["evaluate", bad, *FAST_EVAL, "--out", tmp_path / "e.json"], capsys)
    assert_clean_error(rc, err, "unreadable or truncated")
    assert not (tmp_path / "e.json").exists()


def test_missing_synset(tmp_path, capsys):
    rc, _, err = run(["evaluate", tmp_path / "nope.safetensors", *FAST_EVAL], capsys)
    assert_clean_error(rc, err, "no synthetic set at")


@pytest.mark.parametrize("cmd", ["distill", "evaluate"])
def test_unknown_dataset_lists_choices(cmd, distilled, tmp_path, capsys):
    if cmd == "distill":
        argv = ["distill", "--dataset", "imagenet21k", "--iterations", "1", "--progress", "off",
                "--out", tmp_path / "x.safetensors"]
    else:
        argv = ["evaluate", distilled, "--dataset", "imagenet21k", "--progress", "off"]
    rc, _, err = run(argv, capsys)
    assert_clean_error(rc, err, "unknown dataset 'imagenet21k'", "fashion_mnist", "synthetic", "cifar10")


def test_unknown_method(tmp_path, capsys):
    rc, _, err = run(["distill", "--method", "kip", *FAST_DISTILL, "--out", tmp_path / "x.safetensors"], capsys)
    assert_clean_error(rc, err, "method 'kip'", "DC", "DSA", "DM", "MTT")


def test_option_of_another_method_is_an_error(tmp_path, capsys):
    rc, _, err = run(["distill", "--method", "dm", "--metric", "mse", *FAST_DISTILL], capsys)
    assert_clean_error(rc, err, "--metric", "not apply to DM")
    rc, _, err = run(["distill", "--method", "mtt", *FAST_DISTILL], capsys)
    assert_clean_error(rc, err, "--batch-real", "not apply to MTT")
    rc, _, err = run(["distill", "--method", "mtt", "--dataset", "synthetic", "--iterations", "1", "--progress", "off"],
                     capsys)
    assert_clean_error(rc, err, "--experts DIR", "train-experts")


def test_dc_dsa_and_mtt_through_the_cli(tmp_path, capsys):
    for m in ("dc", "dsa"):
        rc, _, err = run(["distill", "--method", m, "--dataset", "synthetic", "--ipc", "1", "--arch", "ConvNetW32",
                          "--iterations", "2", "--batch-real", "4", "--loops", "2", "1", "--progress", "off",
                          "--out", tmp_path / f"{m}.safetensors"], capsys)
        assert rc == 0, err
        assert load(tmp_path / f"{m}.safetensors").meta["method"] == m.upper()
    rc, _, err = run(["train-experts", "--dataset", "synthetic", "--arch", "ConvNetW32", "--n", "2", "--epochs", "2",
                      "--per-class", "4", "--root", tmp_path / "exp", "--progress", "off"], capsys)
    assert rc == 0, err
    rc, _, err = run(["distill", "--method", "mtt", "--dataset", "synthetic", "--ipc", "1", "--arch", "ConvNetW32",
                      "--experts", tmp_path / "exp", "--iterations", "2", "--syn-steps", "2", "--expert-epochs", "1",
                      "--max-start-epoch", "1", "--lr-lr", "1e-7", "--progress", "off",
                      "--out", tmp_path / "mtt.safetensors"], capsys)
    assert rc == 0, err
    assert load(tmp_path / "mtt.safetensors").meta["syn_lr"] > 0


def test_wrong_image_shape_for_dataset(tmp_path, capsys):
    path = SynSet(torch.randn(10, 3, 32, 32), torch.arange(10), {"dataset": "cifar10"}).save(tmp_path / "c.safetensors")
    rc, _, err = run(["evaluate", path, *FAST_EVAL], capsys)
    assert_clean_error(rc, err, "(3, 32, 32)", "(1, 28, 28)", "--dataset")


def test_foreign_pickle_with_objects_is_refused(tmp_path, capsys):
    torch.save({"images": NotATensor()}, tmp_path / "images_best.pt")
    torch.save(torch.arange(10), tmp_path / "labels_best.pt")
    rc, _, err = run(["evaluate", tmp_path / "images_best.pt", *FAST_EVAL], capsys)
    assert_clean_error(rc, err, "could not load", "plain tensors", "pickled Python object", "never unpickled")


def test_foreign_non_tensor_container_is_refused(tmp_path, capsys):
    torch.save({"images": torch.zeros(10, 1, 28, 28)}, tmp_path / "images_best.pt")   # weights_only accepts a dict
    torch.save(torch.arange(10), tmp_path / "labels_best.pt")
    rc, _, err = run(["evaluate", tmp_path / "images_best.pt", *FAST_EVAL], capsys)
    assert_clean_error(rc, err, "not a DC/DSA/DM result dict", "'data' list")


def test_foreign_soft_labels_are_refused(tmp_path, capsys):
    torch.save(torch.zeros(10, 1, 28, 28), tmp_path / "images_best.pt")
    torch.save(torch.eye(10), tmp_path / "labels_best.pt")
    rc, _, err = run(["evaluate", tmp_path / "images_best.pt", *FAST_EVAL], capsys)
    assert_clean_error(rc, err, "soft labels")


def test_pretrain_then_distill_with_clom(tmp_path, capsys):
    rc, _, err = run(["pretrain", "--source", "synthetic", "--archs", "ConvNetW32", "--model-num", "2", "--epochs", "2",
                      "--per-class", "4", "--root", tmp_path / "ptm", "--progress", "off"], capsys)
    assert rc == 0, err
    base = ["distill", "--method", "dm", "--dataset", "synthetic", "--ipc", "1", "--iterations", "2", "--batch-real",
            "4", "--progress", "off"]
    for clom in ("ce", "ce-ratio", "cos"):
        rc, _, err = run([*base, "--clom", clom, "--pool", tmp_path / "ptm", "--pool-archs", "ConvNetW32",
                          "--ptm-epoch", "2", "--clom-batch", "16", "--out", tmp_path / f"{clom}.safetensors"], capsys)
        assert rc == 0, err
        meta = load(tmp_path / f"{clom}.safetensors").meta
        assert meta["clom"]["distance"] == {"ce": "ce_code", "ce-ratio": "ce_ratio", "cos": "cos"}[clom]
        assert meta["clom"]["pool"] == {"ConvNetW32": 2}
    rc, _, err = run([*base, "--clom", "ce", "--pool", tmp_path / "ptm", "--pool-archs", "ConvNetW32",
                      "--ptm-epoch", "9"], capsys)
    assert_clean_error(rc, err, "no ConvNetW32 PTM snapshot at epoch 9")
    rc, _, err = run([*base, "--clom", "ce"], capsys)
    assert_clean_error(rc, err, "--pool DIR")


# --- run paths are checked before any compute -----------------------------------------------------------------------
@pytest.mark.parametrize("extra, needle", [
    (["--checkpoint-every", "0", "--checkpoint", "{tmp}/c.ckpt"], "--checkpoint-every must be >= 1"),
    (["--checkpoint-every", "99", "--checkpoint", "{tmp}/c.ckpt"], "exceeds --iterations"),
    (["--resume"], "--resume needs --checkpoint"),
    (["--out", "{tmp}"], "is a folder"),
])
def test_distill_refuses_settings_that_would_lose_work(extra, needle, tmp_path, capsys, monkeypatch):
    import elfkit.zca

    monkeypatch.setattr(elfkit.zca, "load", lambda *a, **k: pytest.fail("computed before checking its paths"))
    rc, _, err = run(["distill", *FAST_DISTILL, *[x.format(tmp=tmp_path) for x in extra]], capsys)
    assert_clean_error(rc, err, needle)


def test_distill_without_resume_keeps_an_existing_checkpoint(tmp_path, capsys):
    ckpt = tmp_path / "c.ckpt"
    assert run(["distill", *FAST_DISTILL, "--checkpoint", ckpt, "--out", tmp_path / "a.safetensors"], capsys)[0] == 0
    before = ckpt.read_bytes()
    rc, _, err = run(["distill", *FAST_DISTILL, "--checkpoint", ckpt, "--out", tmp_path / "b.safetensors"], capsys)
    assert_clean_error(rc, err, "already exists", "--resume")
    assert ckpt.read_bytes() == before and not (tmp_path / "b.safetensors").exists()


def test_evaluate_writes_into_the_current_folder_and_never_overwrites(distilled, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(["evaluate", distilled, *FAST_EVAL], capsys)[0] == 0
    out = tmp_path / f"{distilled.stem}.eval.json"
    assert out.is_file() and not distilled.with_suffix(".eval.json").exists()    # nothing beside the input
    before = out.read_bytes()
    rc, _, err = run(["evaluate", distilled, *FAST_EVAL], capsys)
    assert_clean_error(rc, err, "exists", "--force")
    assert out.read_bytes() == before
    assert run(["evaluate", distilled, *FAST_EVAL, "--force"], capsys)[0] == 0


def test_a_missing_clom_pool_points_to_pretrain(tmp_path, capsys):
    rc, _, err = run(["distill", *FAST_DISTILL, "--clom", "ce", "--pool", tmp_path / "nope"], capsys)
    assert_clean_error(rc, err, "elfkit pretrain --root")
    (tmp_path / "empty").mkdir()
    rc, _, err = run(["distill", *FAST_DISTILL, "--clom", "ce", "--pool", tmp_path / "empty"], capsys)
    assert_clean_error(rc, err, "elfkit pretrain --archs ConvNet")


def test_reproduce_paper_recompute_without_cuda_says_why(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    rc, _, err = run(["reproduce", "--profile", "paper", "--recompute", "--only", "00"], capsys)
    assert_clean_error(rc, err, "only on a CUDA GPU", "--profile cpu")


def test_reproduce_reports_the_failing_cells_exception():
    from elfkit.reproduce import failure_reason

    class Fake(Exception):
        ename, evalue = "ElfkitError", "no committed results for profile 'paper'"
    assert failure_reason(Fake("\n---------\nlong traceback")) == "ElfkitError: no committed results for profile 'paper'"
    assert failure_reason(RuntimeError("\n\nboom")) == "boom"
