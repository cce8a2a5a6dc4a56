"""Figures: readable names instead of record identifiers, the profile's scale on every saved figure, published
markers where the paper has a number, byte-stable files. (Layout itself is checked by eye: see the commit log.)"""
import pandas as pd
import pytest

from elfkit import figure_style, plotting, tables


def test_record_identifiers_get_display_names():
    assert plotting.label("fashion_mnist") == "Fashion-MNIST"
    assert plotting.label("random_real") == "random real"
    assert plotting.label("lam_front") == "λ_front"
    assert plotting.label("DC elf") == "DC ELF" and plotting.label("DM baseline") == "DM baseline"
    assert plotting.label("ConvNetW32") == "ConvNetW32"                      # unknown names pass through


@pytest.mark.parametrize("profile", ["cpu", "smoke", "paper"])
def test_every_saved_figure_states_its_scale(profile, tmp_path, monkeypatch):
    monkeypatch.setenv("ELFKIT_FIGURES_DIR", str(tmp_path))
    summary = pd.DataFrame({"eval_arch": ["ConvNet", "ConvNet"], "method": ["DM", "random_real"],
                            "mean": [76.0, 73.0], "std": [0.2, 0.3], "n": [3, 3]})
    fig = plotting.accuracy_bars(summary)
    a = plotting.save(fig, "t", profile, "0123456789abcdef")
    texts = [t.get_text() for t in fig.texts]
    assert any(figure_style.SCALE_NOTES[profile] in t and "0123456789" in t for t in texts)
    fig2 = plotting.accuracy_bars(summary)
    b = plotting.save(fig2, "u", profile, "0123456789abcdef")
    assert a[0].read_bytes() == b[0].read_bytes()                              # byte-stable PNG


def test_published_markers_come_from_the_reference_table():
    pts = tables.published_points("fashion_mnist")
    assert pts[(10, "DM")] == 83.5 and pts[(1, "random_real")] == 51.4
    summary = pd.DataFrame({"ipc": [10], "method": ["DM"], "mean": [76.8], "std": [0.2], "n": [3]})
    fig = plotting.accuracy_bars(summary, x="ipc", published=pts)
    marks = [ln for ln in fig.axes[0].lines if ln.get_marker() == "D" and len(ln.get_ydata())]
    assert [float(m.get_ydata()[0]) for m in marks] == [83.5]
    assert fig.axes[0].get_ylim()[1] >= 83.5


def test_elf_and_clom_tables_say_the_paper_reports_no_number():
    df = pd.DataFrame({"method": ["DM"] * 2, "ipc": [10] * 2, "eval_arch": ["VGG11"] * 2,
                       "eval_mode": ["baseline", "elf"], "model_seed": [0, 0], "metric": ["test_acc"] * 2,
                       "value": [0.75, 0.70]})
    assert (tables.elf_table(df)["paper"] == tables.NOT_REPORTED).all()


def test_save_names_the_file_and_captions_a_variant_label(results_root):
    import matplotlib.pyplot as plt

    from elfkit import figure_style

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    out = figure_style.save(fig, "demo", "paper-cifar10", "abc")
    assert [p.relative_to(results_root).as_posix() for p in out] == ["figures/paper-cifar10/demo.png",
                                                                        "figures/paper-cifar10/demo.pdf"]
    assert any("paper profile" in t.get_text() and "cifar10" in t.get_text() for t in fig.texts)
    plt.close(fig)


def test_ablation_panels_draw_each_models_baseline_in_panels_without_baseline_bars():
    """04's sensitivity figure has no `task` rows in its panels; the dotted baseline still comes from loss_mode's."""
    import matplotlib.pyplot as plt

    rows = [{"ablation": "loss_mode", "variant": "task", "ablation_arch": "AlexNet", "eval_arch": "AlexNet",
             "eval_mode": "baseline", "model_seed": m, "metric": "test_acc", "value": 0.70} for m in (0, 1)]
    rows += [{"ablation": "lam_rear", "variant": v, "ablation_arch": "AlexNet", "eval_arch": "AlexNet",
              "eval_mode": "elf", "model_seed": m, "metric": "test_acc", "value": 0.8} for v in ("1", "10")
             for m in (0, 1)]
    fig = plotting.ablation_panels(pd.DataFrame(rows), ["lam_rear"])
    (ax,) = fig.axes
    dotted = [ln.get_ydata()[0] for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert dotted == [pytest.approx(70.0)] and ax.get_ylim()[0] < 70.0
    plt.close(fig)
