"""Registry, networks and ELF split points (elfkit.models, elfkit.networks)."""
import pytest
import torch
from torch import nn

from elfkit import models
from elfkit.models import create, feature_shape, has_batchnorm, list_models, matching_feature_model, split

torch.set_num_threads(1)

ALL = list_models()
SHAPES = [(1, 28), (3, 32)]
ELF_512 = ["ResNet18", "ResNet18BN", "VGG11", "VGG11BN"]


def _build(name, c, hw, num_classes=10, **kw):
    """Seeded model; a ConvNet too deep for the input must refuse, then is checked at 2^depth with width 8."""
    torch.manual_seed(0)
    try:
        return create(name, c, num_classes, (hw, hw), **kw), hw, kw
    except ValueError as e:
        assert "below 1×1" in str(e) and name.startswith("ConvNetD"), e
        depth = models._parse_convnet(name)[1]["depth"]
        hw, kw = 2 ** depth, {"width": 8}
        return create(name, 3, num_classes, (hw, hw), **kw), hw, kw


def _x(c, hw, b=2):
    return torch.randn(b, c, hw, hw, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("c,hw", SHAPES, ids=lambda v: str(v))
@pytest.mark.parametrize("name", ALL)
def test_forward_backward_embed(name, c, hw):
    model, hw2, kw = _build(name, c, hw)
    c = 3 if kw else c
    x = _x(c, hw2).requires_grad_()
    out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert torch.isfinite(x.grad).all()
    emb = model.embed(x.detach())
    assert emb.shape == (2, model.classifier.in_features)
    assert isinstance(model.classifier, nn.Linear)


@pytest.mark.parametrize("name", ["ConvNet", "ConvNetD4", "ResNet18", "VGG11", "AlexNet"])
def test_forward_backward_64(name):
    model, _, _ = _build(name, 3, 64)
    out = model(_x(3, 64))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.sum().backward()


@pytest.mark.parametrize("name", ALL)
def test_split_exact_and_shares_parameters(name):
    model, hw, kw = _build(name, 3, 32)
    model.eval()
    if model.elf_split is None:
        with pytest.raises(ValueError, match="convolutional split point"):
            split(model)
        return
    front, rear = split(model)
    x = _x(3, hw)
    with torch.no_grad():
        assert torch.allclose(model(x), rear(front(x)), atol=1e-6)
    ids = lambda m: [id(p) for p in m.parameters()]  # noqa: E731
    assert sorted(ids(front) + ids(rear)) == sorted(ids(model))
    if not kw:
        assert feature_shape(name, 3, (32, 32)) == tuple(front(x).shape[1:])


@pytest.mark.parametrize("c,hw", SHAPES, ids=lambda v: str(v))
@pytest.mark.parametrize("name,shape", [("ConvNet", (128, 4, 4)), ("ConvNetBN", (128, 4, 4))]
                         + [(n, (512, 4, 4)) for n in ELF_512])
def test_elf_feature_shapes_match_feature_model(name, shape, c, hw):
    model, _, _ = _build(name, c, hw)
    front, _ = split(model.eval())
    with torch.no_grad():
        assert tuple(front(_x(c, hw, 1)).shape[1:]) == shape
    assert feature_shape(name, c, (hw, hw)) == shape
    fm = matching_feature_model(name, c, (hw, hw))
    assert fm == ("ConvNet" if shape[0] == 128 else "ConvNetW512")
    feat, _, _ = _build(fm, c, hw)
    with torch.no_grad():
        assert tuple(feat.eval().stages(_x(c, hw, 1)).shape[1:]) == shape


def test_other_split_choices():
    rng = torch.random.get_rng_state()
    assert feature_shape("AlexNet", 3, (32, 32)) == (192, 4, 4)
    assert matching_feature_model("AlexNet", 1, (28, 28)) == "ConvNetW192"
    assert feature_shape("ResNet18_AP", 3, (32, 32)) == (512, 4, 4)
    assert matching_feature_model("ResNet18_AP", 3, (32, 32)) == "ConvNetW512"
    with pytest.raises(ValueError, match="no ConvNet feature model"):
        matching_feature_model("ResNet18_AP", 1, (28, 28))  # 512×3×3
    assert matching_feature_model("ConvNetD4", 3, (64, 64)) == "ConvNetD4"
    assert matching_feature_model("ResNet18ImageNet", 3, (64, 64)) == "ConvNetD4W256"
    assert feature_shape("ResNet18", 3, (64, 64)) == (512, 8, 8)
    assert torch.equal(rng, torch.random.get_rng_state())  # shapes come from meta-device models


@pytest.mark.parametrize("name", ["LeNet", "MLP"])
def test_split_raises_for_lenet_mlp(name):
    with pytest.raises(ValueError, match="convolutional split point.*ResNet18"):
        split(create(name, 1, 10, (28, 28)))
    with pytest.raises(ValueError):
        feature_shape(name, 1, (28, 28))


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"ResNet18.*list_models\(\)"):
        create("ResNet19", 3, 10, (32, 32))
    with pytest.raises(ValueError, match="VGG11"):
        create("VGG", 3, 10, (32, 32))


def test_double_registration_raises(monkeypatch):
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))

    @models.register("TinyTestNet")
    def _tiny(name, channel, num_classes, im_size, **kw):
        return models.MLP(channel, num_classes, im_size)

    @models.register
    def TinyBareNet(name, channel, num_classes, im_size, **kw):
        return models.MLP(channel, num_classes, im_size)

    assert "TinyBareNet" in list_models("tiny*")
    assert create("tinytestnet", 1, 3, (4, 4))(torch.zeros(1, 1, 4, 4)).shape == (1, 3)
    with pytest.raises(ValueError, match="already registered"):
        models.register("TINYTESTNET")(_tiny)
    with pytest.raises(ValueError, match="already registered"):
        models.register("ResNet18")(_tiny)


def test_names_parsing_and_listing():
    assert {"ConvNet", "ConvNetW512", "ConvNetD8", "ConvNetASwish", "ConvNetGN", "ConvNetMP", "ConvNetKIP",
            "ConvNetD4W512", "AlexNetBN", "ResNet18BN_AP", "LeNet", "MLP"} <= set(ALL)
    assert ALL == sorted(ALL) and list_models("resnet18*") == [n for n in ALL if n.startswith("ResNet18")]
    m = create("convnetd2w64bn", 3, 10, (32, 32))
    assert m.arch == "ConvNetD2W64BN" and has_batchnorm(m)
    assert sum(isinstance(x, nn.Conv2d) for x in m.modules()) == 2 and m.classifier.in_features == 64 * 8 * 8
    kip = create("ConvNetKIP", 3, 10, (32, 32))
    assert kip.stages[0].out_channels == 1024 and not any(isinstance(x, nn.GroupNorm) for x in kip.modules())
    assert isinstance(create("ConvNetASwishBN", 3, 10, (32, 32)).stages[2], nn.SiLU)
    gn, ln = create("ConvNetGN", 3, 10, (32, 32)).stages[1], create("ConvNetLN", 1, 10, (28, 28)).stages[5]
    assert gn.num_groups == 4 and tuple(ln.normalized_shape) == (128, 16, 16)
    assert create("ConvNetNP", 3, 10, (32, 32)).classifier.in_features == 128 * 32 * 32
    for bad in ["ConvNetBNIN", "ConvNetD2D3", "ConvNetKIPW64"]:
        with pytest.raises(ValueError, match="twice"):
            create(bad, 3, 10, (32, 32))


def test_has_batchnorm():
    assert not has_batchnorm(create("ConvNet", 3, 10, (32, 32)))
    assert all(has_batchnorm(create(n, 3, 10, (32, 32))) for n in ["ConvNetBN", "AlexNetBN", "ResNet18BN"])


@pytest.mark.parametrize("name", ["ConvNet", "ResNet18"])
def test_channels_last_matches_contiguous(name):
    model, _, _ = _build(name, 3, 32)
    model.eval()
    x = _x(3, 32)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
        emb = model.embed(x.to(memory_format=torch.channels_last))
    assert torch.allclose(ref, out, atol=1e-5) and emb.shape == (2, model.classifier.in_features)


def test_convnet_default_structure():
    m = create("ConvNet", 1, 10, (28, 28))
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    assert [cv.out_channels for cv in convs] == [128] * 3 and convs[0].padding == (3, 3)
    assert all(isinstance(x, nn.GroupNorm) and x.num_groups == 128 for x in m.stages if isinstance(x, nn.GroupNorm))
    assert (m.classifier.in_features, m.classifier.out_features) == (2048, 10)
    n_conv = (1 * 9 + 1) * 128 + 2 * (128 * 9 + 1) * 128
    assert sum(p.numel() for p in m.parameters()) == n_conv + 3 * 2 * 128 + 2048 * 10 + 10


def test_reference_classifier_sizes():
    sizes = {("AlexNet", 1, 28): 3072, ("VGG11", 1, 28): 512, ("VGG11", 3, 32): 512, ("LeNet", 1, 28): 84,
             ("MLP", 1, 28): 128, ("ResNet18_AP", 3, 32): 8192, ("ResNet18_AP", 1, 28): 4608,
             ("ResNet18", 1, 28): 512, ("ConvNet", 3, 64): 128 * 8 * 8, ("ConvNetD4", 3, 64): 2048}
    for (name, c, hw), n in sizes.items():
        with torch.device("meta"):
            assert create(name, c, 10, (hw, hw)).classifier.in_features == n, name
    with torch.device("meta"):
        assert create("MLP", 1, 10, (28, 28)).stages[1].in_features == 784
        assert create("MLP", 3, 10, (32, 32)).stages[1].in_features == 3072
        assert create("LeNet", 1, 10, (28, 28)).stages[7].in_features == 400
        assert create("LeNet", 3, 10, (32, 32)).stages[7].in_features == 400
