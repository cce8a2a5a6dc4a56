"""Tests for elfkit.augment: DSA (Siamese / non-Siamese / per-class), formulas, determinism, DC-aug."""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

torch.set_num_threads(1)

from elfkit import augment as A  # noqa: E402
from elfkit.augment import (DEFAULT_PARAMS, FAMILIES, Draw, apply, dc_augment, dsa, sample, siamese,  # noqa: E402
                            siamese_by_class, strategy_for)

FULL = "color_crop_cutout_flip_scale_rotate"
IM = (16, 16)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def img(n=1, c=3, size=IM, seed=123):
    return torch.rand(n, c, *size, generator=gen(seed))


def neutral(family, n=1, size=IM, **fields):
    d = Draw.neutral(n, size, family=family)
    fields = {k: torch.as_tensor(v) for k, v in fields.items()}
    return dataclasses.replace(d, **fields)


def group(draw, i):
    """Group i of a draw as a one-group draw."""
    kw = {f.name: getattr(draw, f.name)[i:i + 1] for f in dataclasses.fields(draw)
          if isinstance(getattr(draw, f.name), torch.Tensor)}
    return dataclasses.replace(draw, families=(draw.families[i],), **kw)


def all_same(t):
    return all(torch.equal(t[0], t[i]) for i in range(1, len(t)))


# ---------------------------------------------------------------------------------------------- config / API
def test_params_strategy_and_validation():
    p = DEFAULT_PARAMS
    assert (p.prob_flip, p.ratio_scale, p.ratio_rotate, p.ratio_crop_pad, p.ratio_cutout) == (0.5, 1.2, 15.0, 0.125, 0.5)
    assert (p.brightness, p.saturation, p.contrast) == (1.0, 2.0, 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.prob_flip = 0.1
    assert FAMILIES == ("color", "crop", "cutout", "flip", "scale", "rotate")
    assert strategy_for("CIFAR10") == FULL and strategy_for("FashionMNIST") == FULL
    assert strategy_for("MNIST") == strategy_for("svhn") == "color_crop_cutout_scale_rotate"
    with pytest.raises(ValueError):
        dsa(img(2), "color_blur", gen())
    with pytest.raises(ValueError):
        dsa(img(2), "crop", None)
    with pytest.raises(ValueError):
        apply(img(3), sample("crop", 2, g=gen(), im_size=IM, shared_family=True))


@pytest.mark.parametrize("strategy", ["none", "None", ""])
def test_none_is_identity_and_draws_nothing(strategy):
    x, g = img(4), gen(5)
    state = g.get_state()
    assert torch.equal(dsa(x, strategy, g), x)
    assert all(torch.equal(o, x) for o in siamese([x, x], strategy, g))
    r, s = siamese_by_class(x, torch.tensor([0, 1, 0, 1]), x, torch.tensor([0, 1, 1, 0]), 2, strategy, g)
    assert torch.equal(r, x) and torch.equal(s, x)
    assert torch.equal(dc_augment(x, strategy, g), x)
    assert torch.equal(g.get_state(), state)


# ---------------------------------------------------------------------------------------------- Siamese
@pytest.mark.parametrize("family", FAMILIES)
def test_siamese_shares_one_draw(family):
    a = img(4)
    z = img(1, seed=7).expand(5, -1, -1, -1).contiguous()
    changed = False
    for seed in range(4):
        oa, ob = siamese([a, a.clone()], family, gen(seed))
        assert torch.equal(oa, ob)                                # real and synthetic batch: same transform
        oz, oz3 = siamese([z, z[:3]], family, gen(seed))
        assert all_same(torch.cat([oz, oz3]))                     # every sample got the same parameters
        changed |= not torch.allclose(oa, a)
    assert changed


def test_siamese_broadcasts_one_group():
    d = sample(FULL, 1, g=gen(3), im_size=IM, shared_family=True)
    x = img(6)
    assert torch.equal(apply(x, d), apply(x, d, torch.zeros(6, dtype=torch.long)))


def test_siamese_by_class_shares_within_class():
    z = img(1, seed=9)
    y_real, y_syn = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 4, 4]), torch.tensor([0, 1, 2, 3, 4])
    xr, xs = z.expand(10, -1, -1, -1).contiguous(), z.expand(5, -1, -1, -1).contiguous()
    r, s = siamese_by_class(xr, y_real, xs, y_syn, 5, FULL, gen(1))
    outs = {}
    for out, y in ((r, y_real), (s, y_syn)):
        for o, c in zip(out, y.tolist()):
            outs.setdefault(c, []).append(o)
    assert all(all_same(torch.stack(v)) for v in outs.values())
    reps = [outs[c][0] for c in range(5)]
    assert not all_same(torch.stack(reps))                        # classes have their own draws
    d = sample(FULL, 5, g=gen(1), im_size=IM, shared_family=False)   # same stream as siamese_by_class
    assert torch.equal(s, apply(xs, d, y_syn))


def test_mixed_family_paths_agree_with_per_sample():
    d = sample(FULL, 8, g=gen(2), im_size=IM, shared_family=False)
    assert len(set(d.families)) >= 4
    x = img(30, seed=4)
    idx = torch.randint(8, (30,), generator=gen(6))
    ref = torch.cat([apply(x[i:i + 1], group(d, int(idx[i]))) for i in range(30)])
    assert torch.allclose(A._apply_partitioned(x, d, idx), ref, atol=1e-6)
    assert torch.allclose(A._apply_masked(x, d, idx), ref, atol=1e-6)
    assert torch.allclose(apply(x, d, idx), ref, atol=1e-6)
    x8 = x[:8]
    ref8 = torch.cat([apply(x8[i:i + 1], group(d, i)) for i in range(8)])
    assert torch.allclose(apply(x8, d), ref8, atol=1e-6)


# ---------------------------------------------------------------------------------------------- non-Siamese
@pytest.mark.parametrize("family", ["scale", "rotate", "crop", "color", "cutout"])
def test_dsa_independent_params_per_sample(family):
    z = img(1, seed=11).expand(8, -1, -1, -1).contiguous()
    out = dsa(z, family, gen(0))
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) >= 4


def test_dsa_one_family_per_batch_and_mode_s_coverage():
    seen = set()
    for seed in range(60):
        d = sample(FULL, 16, g=gen(seed), im_size=IM, shared_family=True)
        assert len(set(d.families)) == 1
        seen.add(d.families[0])
    assert seen == set(FAMILIES)
    d = sample(FULL, 400, g=gen(0), im_size=IM, shared_family=False)
    assert set(d.families) == set(FAMILIES)
    d = sample(strategy_for("mnist"), 400, g=gen(0), im_size=IM, shared_family=False)
    assert set(d.families) == set(FAMILIES) - {"flip"}
    x = img(16)
    assert torch.equal(dsa(x, FULL, gen(8)), apply(x, sample(FULL, 16, g=gen(8), im_size=IM, shared_family=True)))


def test_determinism_and_no_global_rng():
    x = img(8)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    for fam in FAMILIES:
        assert torch.equal(dsa(x, fam, gen(4)), dsa(x, fam, gen(4)))
    assert not torch.equal(dsa(x, "rotate", gen(4)), dsa(x, "rotate", gen(5)))
    a = siamese([x], FULL, gen(1))[0]
    assert torch.equal(a, siamese([x], FULL, gen(1))[0])
    y = torch.arange(8) % 3
    assert torch.equal(siamese_by_class(x, y, x, y, 3, FULL, gen(2))[0], siamese_by_class(x, y, x, y, 3, FULL, gen(2))[0])
    assert torch.equal(dc_augment(x, "crop_scale_rotate_noise", gen(3)), dc_augment(x, "crop_scale_rotate_noise", gen(3)))
    assert not torch.equal(dc_augment(x, "crop_scale_rotate", gen(3)), dc_augment(x, "crop_scale_rotate", gen(4)))
    assert torch.equal(state, torch.get_rng_state())


def test_sampled_parameter_ranges():
    n = 4000
    for size, (s, k) in {(16, 16): (2, 8), (28, 28): (4, 14), (32, 32): (4, 16), (10, 10): (1, 5)}.items():
        d = sample(FULL, n, g=gen(0), im_size=size, shared_family=True)
        assert d.cutout_size == (k, k)
        assert d.translate.min() == -s and d.translate.max() == s
        assert d.cutout.min() == 0 and d.cutout.max() == size[0] - k % 2
    assert -0.5 <= d.brightness.min() and d.brightness.max() <= 0.5
    assert 0 <= d.saturation.min() and d.saturation.max() <= 2.0
    assert 0.5 <= d.contrast.min() and d.contrast.max() <= 1.5
    assert 1 / 1.2 <= d.scale.min() and d.scale.max() <= 1.2
    assert d.angle.abs().max() <= math.radians(15) + 1e-6 and d.angle.abs().max() > math.radians(14)
    assert 0.45 < d.flip.float().mean() < 0.55


# ---------------------------------------------------------------------------------------------- formulas
def test_color_formulas():
    x = img(2, size=(4, 5))
    b, s, c = torch.tensor([0.3, -0.2]), torch.tensor([1.5, 0.4]), torch.tensor([0.7, 1.2])
    assert torch.allclose(apply(x, neutral("color", 2, (4, 5), brightness=b)), x + b.view(2, 1, 1, 1))
    m = x.mean(1, keepdim=True)
    assert torch.allclose(apply(x, neutral("color", 2, (4, 5), saturation=s)), m + (x - m) * s.view(2, 1, 1, 1))
    mc = x.mean((1, 2, 3), keepdim=True)
    assert torch.allclose(apply(x, neutral("color", 2, (4, 5), contrast=c)), mc + (x - mc) * c.view(2, 1, 1, 1))
    out = apply(x, neutral("color", 2, (4, 5), brightness=b, saturation=s, contrast=c))
    for i in range(2):                                           # sequential, by hand
        h = x[i] + b[i]
        pm = h.mean(0, keepdim=True)
        h = pm + (h - pm) * s[i]
        h = h.mean() + (h - h.mean()) * c[i]
        assert torch.allclose(out[i], h, atol=1e-6)
    g1 = img(1, c=1)
    assert torch.allclose(apply(g1, neutral("color", 1, IM, saturation=[1.7])), g1)   # 1 channel: identity


def test_crop_shift_and_zero_fill():
    x = (torch.arange(2 * 25, dtype=torch.float32) + 1).view(2, 1, 5, 5)
    out = apply(x, neutral("crop", 2, (5, 5), translate=[[1, -2], [0, 0]]))
    assert torch.equal(out[1], x[1])
    for i in range(5):
        for j in range(5):
            si, sj = i + 1, j - 2
            want = x[0, 0, si, sj] if 0 <= si < 5 and 0 <= sj < 5 else 0.0
            assert out[0, 0, i, j] == want


def test_flip_scale_rotate_identities():
    x = img(3)
    out = apply(x, neutral("flip", 3, flip=[True, False, True]))
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1]) and torch.equal(out[2], x[2].flip(-1))
    assert torch.allclose(apply(x, neutral("scale", 3)), x, atol=1e-5)
    assert torch.allclose(apply(x, neutral("rotate", 3)), x, atol=1e-5)
    r90 = apply(x, neutral("rotate", 3, angle=torch.full((3,), math.pi / 2)))
    assert torch.allclose(r90, x.rot90(1, (-2, -1)), atol=1e-4)
    # s > 1 shrinks the content: the border becomes zero padding
    big = apply(torch.ones(1, 1, 16, 16), neutral("scale", 1, scale=[[1.2, 1.2]]))
    assert big[0, 0, 0, 0] < 1 and torch.allclose(big[0, 0, 8, 8], torch.tensor(1.0))


@pytest.mark.parametrize("size,ctr", [((16, 16), (3, 14)), ((16, 16), (0, 0)), ((10, 10), (9, 4)), ((10, 12), (5, 6))])
def test_cutout_square(size, ctr):
    x = torch.ones(1, 2, *size)
    d = neutral("cutout", 1, size, cutout=[list(ctr)])
    k_h, k_w = d.cutout_size
    out = apply(x, d)
    want = torch.ones(size)
    r0, c0 = ctr[0] - k_h // 2, ctr[1] - k_w // 2
    want[max(r0, 0):max(r0 + k_h, 0), max(c0, 0):max(c0 + k_w, 0)] = 0
    assert torch.equal(out[0, 0], want) and torch.equal(out[0, 1], want)
    d = sample("cutout", 500, g=gen(0), im_size=size, shared_family=True)
    zeros = (apply(torch.ones(500, 1, *size), d) == 0).sum((1, 2, 3))
    lo = d.cutout - torch.tensor([k_h // 2, k_w // 2])
    hi = lo + torch.tensor([k_h, k_w])
    area = (hi.clamp(max=torch.tensor(size)) - lo.clamp(min=0)).prod(1)
    assert torch.equal(zeros, area) and area.min() > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_flows(family):
    x = img(6).requires_grad_(True)
    out = dsa(x, family, gen(1))
    (out * torch.linspace(0, 1, out.numel()).view_as(out)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_gradient_mixed_paths():
    d = sample(FULL, 6, g=gen(2), im_size=IM, shared_family=False)
    idx = torch.arange(12) % 6
    for fn in (A._apply_partitioned, A._apply_masked):
        x = img(12).requires_grad_(True)
        fn(x, d, idx).square().sum().backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    xs = img(4).requires_grad_(True)
    r, s = siamese_by_class(img(8), torch.arange(8) % 4, xs, torch.arange(4), 4, FULL, gen(0))
    s.sum().backward()
    assert torch.isfinite(xs.grad).all()


# ---------------------------------------------------------------------------------------------- DC-aug
@pytest.mark.parametrize("strategy", ["crop", "scale", "rotate", "noise", "crop_scale_rotate", "crop_noise"])
def test_dc_augment_runs(strategy):
    x = img(10, size=(28, 28))
    state = torch.get_rng_state()
    out = dc_augment(x, strategy, gen(0))
    assert out.shape == x.shape and torch.isfinite(out).all() and not out.requires_grad
    assert torch.equal(out, dc_augment(x, strategy, gen(0)))
    assert not torch.equal(out, x)
    assert torch.equal(state, torch.get_rng_state())
    if strategy == "noise":
        assert 0.0007 < (out - x).std() < 0.0013


def _dc_draws(B, ops, seed):
    """Replay dc_augment's generator stream: op choice, crop offsets, scale sizes."""
    g = gen(seed)
    choice = torch.randint(len(ops), (B,), generator=g)
    offs = torch.randint(0, 8, (B, 2), generator=g)
    hw = ((torch.rand(B, 2, generator=g) * 0.4 + 0.8) * 28).long()
    return choice, offs, hw


def test_dc_crop_and_scale_match_reference_loop():
    B, H = 12, 28
    x = img(B, size=(H, H))
    mean = x.mean((0, 2, 3))
    out = dc_augment(x, "crop", gen(1))
    _, offs, _ = _dc_draws(B, ["crop"], 1)
    for i in range(B):                                          # reference cropfun
        pad = mean.view(3, 1, 1).expand(3, H + 8, H + 8).clone()
        pad[:, 4:4 + H, 4:4 + H] = x[i]
        r, c = offs[i].tolist()
        assert torch.allclose(out[i], pad[:, r:r + H, c:c + H])
    out = dc_augment(x, "scale", gen(2))
    _, _, hw = _dc_draws(B, ["scale"], 2)
    for i in range(B):                                          # reference scalefun
        h, w = hw[i].tolist()
        tmp = F.interpolate(x[i:i + 1], [h, w])[0]
        side = max(h, w, H)
        canvas = torch.zeros(3, side, side)
        canvas[:, (side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = tmp
        o = (side - H) // 2
        assert torch.equal(out[i], canvas[:, o:o + H, o:o + H])


def test_dc_rotate_fill_is_mean_of_channel_means():
    x = torch.full((4, 3, 16, 16), 0.25)
    assert torch.allclose(dc_augment(x, "rotate", gen(0)), x, atol=1e-6)


# ---------------------------------------------------------------------------------------------- CPU == GPU
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_cuda_identical():
    x = img(16)
    y = torch.arange(16) % 4
    for fam in FAMILIES:
        assert torch.allclose(dsa(x, fam, gen(3)), dsa(x.cuda(), fam, gen(3)).cpu(), atol=1e-5)
    r, s = siamese_by_class(x, y, x[:4], y[:4], 4, FULL, gen(5))
    rc, sc = siamese_by_class(x.cuda(), y.cuda(), x[:4].cuda(), y[:4].cuda(), 4, FULL, gen(5))
    assert torch.allclose(r, rc.cpu(), atol=1e-5) and torch.allclose(s, sc.cpu(), atol=1e-5)
    assert torch.allclose(dc_augment(x, "crop_scale_rotate_noise", gen(1)),
                          dc_augment(x.cuda(), "crop_scale_rotate_noise", gen(1)).cpu(), atol=1e-5)
