"""`-p dataset cifar10`: every notebook runs a profile on another dataset; the paper profile then takes that
dataset's published settings, records go to their own folder, and MTT lives in ZCA space end to end."""
import json

import pytest

from elfkit import context, profiles
from elfkit.errors import ElfkitError
from elfkit.experiments import cross_arch, distill, grid

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_every_notebook_declares_and_passes_the_dataset_parameter():
    assert "dataset" in context.NOTEBOOK_PARAMETERS
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        code = ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
        assert any(s.count('dataset: str = ""') == 1 for s in code), nb.name
        assert any("ek.start(" in s and "dataset=dataset" in s for s in code), nb.name
        assert not any("ctx.profile.name" in s for s in code), f"{nb.name}: figures go to ctx.label"


def test_paper_profile_on_cifar_takes_the_published_settings():
    p = profiles.for_dataset(profiles.get("paper"), "CIFAR-10")
    assert p.dataset == "cifar10" and p.mtt_zca and p.mtt_expert_epochs == 3 and p.mtt_max_start_epoch == 20
    assert [profiles.method_alpha(p, m) for m in ("DC", "DSA", "DM")] == [1000.0, 5000.0, 2000.0]
    assert p.ptm_ood_source == "cifar100" and profiles.label(p) == "paper-cifar10"
    c100 = profiles.for_dataset(profiles.get("paper"), "cifar100")
    assert [profiles.method_alpha(c100, m) for m in ("DC", "DSA", "DM")] == [10000.0, 10000.0, 500.0]
    # the fields every other method uses are the Fashion-MNIST paper profile's
    assert (p.dm_iterations, p.eval_epochs, p.feature_epochs, p.feature_epoch) == (20000, 1000, 200, 100)


def test_other_profiles_only_change_the_dataset_and_empty_changes_nothing():
    cpu = profiles.get("cpu")
    c = profiles.for_dataset(cpu, "cifar10")
    changed = {k for k in cpu.__dataclass_fields__ if getattr(c, k) != getattr(cpu, k)}
    assert changed == {"dataset", "ptm_ood_source"} and c.ptm_ood_source == "cifar100"   # a source of its shape
    assert profiles.label(c) == "cpu-cifar10"
    assert profiles.for_dataset(cpu, "") is cpu and profiles.for_dataset(cpu, "fashion-mnist") is cpu
    assert profiles.label(cpu) == "cpu" and profiles.method_alpha(cpu, "DM") == cpu.ptm_alpha
    with pytest.raises(ElfkitError, match="unknown dataset 'cifar1'; choose one of"):
        profiles.for_dataset(cpu, "cifar1")


def test_dataset_is_a_parameter_not_an_override():
    with pytest.raises(ElfkitError, match="-p dataset cifar10"):
        context.start("03_cross_arch", "cpu", overrides={"dataset": "cifar10"}, quiet=True)


def test_a_pool_source_of_another_shape_stops_at_planning():
    from elfkit.experiments import ptm_options

    p = profiles.override(profiles.for_dataset(profiles.get("cpu"), "cifar10"), ptm_ood_source="mnist_5k")
    with pytest.raises(ElfkitError, match="ptm_ood_source"):
        grid.plan_of(ptm_options, p)


def test_clom_refuses_a_set_in_zca_space():
    from elfkit.experiments import ptm_cross_arch

    p = profiles.override(profiles.for_dataset(profiles.get("paper"), "cifar10"), ptm_cross_methods=("DM", "MTT"),
                          ptm_alpha_methods=("MTT=1",))
    with pytest.raises(ElfkitError, match="ZCA space"):
        grid.plan_of(ptm_cross_arch, p)


def test_start_applies_dataset_then_overrides_and_uses_its_own_folders():
    ctx = context.start("03_cross_arch", "paper", dataset="cifar10", overrides={"mtt_zca": False}, quiet=True)
    assert ctx.profile.dataset == "cifar10" and not ctx.profile.mtt_zca      # explicit overrides win
    assert ctx.label == "paper-cifar10"
    assert ctx.results_dir.parts[-3:] == ("results", "paper-cifar10", "03_cross_arch")
    assert ctx.figures_dir.parts[-2:] == ("figures", "paper-cifar10")
    assert context.start("03_cross_arch", "paper", quiet=True).results_dir.parts[-2:] == ("paper", "03_cross_arch")


def test_zca_mtt_plan_whitens_experts_set_test_and_elf_feature_model():
    p = profiles.for_dataset(profiles.get("paper"), "cifar10")
    plan, reads = grid.plan_of(cross_arch, p)
    assert "mtt_zca" in reads
    evals = [c for c in plan.cells() if c.kind == "evaluate"]
    mtt = [c for c in evals if c.args["synset"].args["method"] == "MTT"]
    others = [c for c in evals if c.args["synset"].args["method"] != "MTT"]
    assert mtt and others
    syn = mtt[0].args["synset"]
    assert syn.args["data"]["dataset"] == "cifar10+zca"
    assert {e.args["data"]["dataset"] for e in syn.args["experts"]} == {"cifar10+zca"}
    assert {c.args["test"]["dataset"] for c in mtt} == {"cifar10+zca"}
    assert {c.args["test"]["dataset"] for c in others} == {"cifar10"}
    elf_mtt = [c for c in mtt if c.args["elf"]]
    elf_other = [c for c in others if c.args["elf"]]
    assert {c.args["elf"]["features"].args["trajectory"].args["data"]["dataset"] for c in elf_mtt} == {"cifar10+zca"}
    assert {c.args["elf"]["features"].args["trajectory"].args["data"]["dataset"] for c in elf_other} == {"cifar10"}


def test_smoke_distillation_on_cifar_in_torchvision_format_with_zca_mtt(cifar_on_disk):
    """The whole 02 path on CIFAR-10 read by torchvision's own reader: DM/DC/DSA on normalised images, MTT's
    experts, set and test set ZCA-whitened; the records name the data each set lives on."""
    cifar_on_disk("cifar10", per_batch=40)
    ctx = context.start("02_distill", "smoke", dataset="cifar10", overrides={"mtt_zca": True}, device="cpu",
                        quiet=True)
    out = distill.run(ctx)
    df = __import__("pandas").DataFrame(out.records)
    assert set(df["method"]) >= {"DM", "MTT"} and df["value"].notna().all()
    sets = {c.args["method"]: c.args["data"]["dataset"] for c in grid.plan_of(distill, ctx.profile)[0].cells()
            if c.kind == "synset"}
    assert sets["MTT"] == "cifar10+zca" and sets["DM"] == "cifar10"


@pytest.mark.notebook
def test_papermill_dataset_parameter_runs_a_notebook_on_another_dataset(tmp_path, results_root):
    """`-p dataset <name>` end to end through papermill, on the offline MNIST digits (mnist_5k): the products
    land in results/smoke-mnist_5k and figures/smoke-mnist_5k, and the records say which data they came from."""
    import papermill as pm

    from elfkit.experiments import quickstart

    nb = ROOT / "notebooks" / "00_quickstart.ipynb"
    pm.execute_notebook(str(nb), str(tmp_path / nb.name), cwd=str(ROOT), kernel_name="python3", progress_bar=False,
                        parameters={"profile": "smoke", "recompute": True, "dataset": "mnist_5k"},
                        execution_timeout=300)
    for p in quickstart.PRODUCTS:
        assert (results_root / p.format(profile="smoke-mnist_5k")).exists(), p
    doc = json.loads((results_root / "results" / "smoke-mnist_5k" / "00_quickstart" / "records.json").read_text())
    assert doc["config"]["profile"]["dataset"] == "mnist_5k" and doc["profile"] == "smoke"


def test_reproduce_status_on_another_dataset(capsys):
    from elfkit import reproduce

    assert reproduce.status(profile="paper", only=["03"], dataset="cifar10") == 0
    assert "03_cross_arch" in capsys.readouterr().out


def test_tf32_is_an_explicit_opt_in_with_its_own_folders():
    import torch

    from elfkit import seeding

    assert profiles.get("paper").precision == "fp32"
    seeding.seed_all(0, precision="tf32")
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    seeding.seed_all(0)                       # fp32: off for cuDNN too, although PyTorch's own default is on
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    ctx = context.start("03_cross_arch", "paper", dataset="cifar10", overrides={"precision": "tf32"}, quiet=True)
    assert ctx.label == "paper-cifar10-tf32"
    with pytest.raises(ElfkitError, match="precision must be one of"):
        profiles.label(profiles.get("cpu", precision="bf16"))
