"""`elfkit gpu-check`: end to end at the smoke scale on the CPU (what CI can run), resumable part by part, refused
at the paper scale without CUDA; and the `gpu` marker's CPU-vs-CUDA agreement of the loss formulas."""
import json

import pytest
import torch

from elfkit import cli, clom, elf, gpu_check
from elfkit.distill import dc, dm


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    done = gpu_check.run(out=out, device="cpu", scale="smoke", budget_s=20, progress="off")
    return out, done


def test_smoke_check_records_every_part_with_provenance(checked):
    out, done = checked
    assert set(done) == {"dm", "dm_eval", "feature_model", "elf"}        # the benchmark runs at the paper scale only
    plan = json.loads((out / "plan.json").read_text())
    assert plan["published"]["dm_iterations"] == gpu_check.SCALES["smoke"]["dm_iterations"]
    assert 1 <= plan["dm_iterations"] <= plan["published"]["dm_iterations"]
    for part, doc in done.items():
        assert json.loads((out / f"{part}.json").read_text()) == json.loads(json.dumps(doc))
        provenance = {"torch", "cuda", "device", "git_sha", "wall_s", "plan"}
        assert provenance <= set(doc)
    ev = done["dm_eval"]["records"]
    assert len(ev) == gpu_check.SCALES["smoke"]["n_models"] and done["dm_eval"]["published"] is None  # synthetic
    modes = {r["eval_mode"] for r in done["elf"]["records"]}
    assert modes == {"baseline", "elf"}


def test_a_rerun_skips_finished_parts(checked, monkeypatch):
    out, done = checked
    monkeypatch.setattr(dm, "distill", lambda *a, **k: pytest.fail("a finished part was recomputed"))
    again = gpu_check.run(out=out, device="cpu", scale="smoke", budget_s=20, progress="off")
    assert again == json.loads(json.dumps(done))          # the very records of the first run, read back


def test_published_dm_numbers_follow_the_dataset():
    assert gpu_check.published_dm("fashion_mnist", 10)["mean"] == 83.5
    assert (gpu_check.published_dm("cifar10", 10)["mean"], gpu_check.published_dm("cifar10", 10)["std"]) == (48.9, 0.6)
    assert gpu_check.published_dm("synthetic", 2) is None


def test_the_check_runs_on_cifar_files_in_torchvision_layout(cifar_on_disk, results_root):
    cifar_on_disk("cifar10", per_batch=40)
    done = gpu_check.run(device="cpu", scale="smoke", budget_s=10, progress="off", dataset="CIFAR-10")
    out = results_root / "results" / "smoke-cifar10" / "gpu_check"
    assert set(done) == {"dm", "dm_eval", "feature_model", "elf"} and (out / "elf.json").is_file()
    assert done["dm"]["config"]["dataset"] == "cifar10"


def test_paper_scale_without_cuda_is_one_line(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert cli.main(["gpu-check", "--scale", "paper", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA GPU" in err and "--scale smoke" in err and len(err.strip().splitlines()) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_loss_formulas_agree_between_cpu_and_cuda():
    """Fixed tensors, float32; tolerance 1e-4 relative (reduction order differs between the devices)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 64, generator=g), torch.randn(8, 64, generator=g)
    logits, y = torch.randn(10, 10, generator=g), torch.arange(10)
    pairs = [
        (lambda t: dc.match_loss([t[0]], [t[1]], "ours"), (a, b)),
        (lambda t: clom.ce_code(t[0], t[1]), (logits, y)),
        (lambda t: clom.cos_contrastive(t[0], t[1], t[2], t[3]), (a, torch.arange(8) % 3, b, torch.arange(8) % 3)),
    ]
    s4, f4 = torch.randn(4, 16, 4, 4, generator=g), torch.randn(4, 16, 4, 4, generator=g)
    pairs += [(lambda t, k=k: elf.feature_loss(k, t[0], t[1]), (s4, f4)) for k in ("CE", "L2", "L1", "COS")]
    for fn, args in pairs:
        cpu = fn(args)
        cuda = fn(tuple(x.cuda() for x in args)).cpu()
        assert torch.allclose(cpu, cuda, rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_smoke_profile_and_gpu_check_run_on_cuda(tmp_path, monkeypatch):
    """The smoke profile end to end on the GPU (00_quickstart), and the device check at the smoke scale."""
    import elfkit as ek

    monkeypatch.setenv("ELFKIT_RESULTS_DIR", str(tmp_path / "r"))
    ctx = ek.start("00_quickstart", "smoke", device="cuda", progress="off", quiet=True)
    res = ek.results.cached(ctx, ek.experiments.quickstart.run, recompute=True)
    assert "cuda" in res.provenance["params"]["device"] and len(res.records) > 0
    done = gpu_check.run(out=tmp_path / "g", device="cuda", scale="smoke", budget_s=20, progress="off")
    assert set(done) == {"dm", "dm_eval", "feature_model", "elf"} and done["dm"]["gpu"]
