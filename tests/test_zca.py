"""ZCA (MTT option): whitened training data has identity-like covariance (shrunk by eps), and unwhiten inverts."""
import torch

from elfkit import data, zca


def test_whitening_inverse_and_covariance():
    d = data.synthetic(n_train=40, n_test=4)
    zd, z = zca.whitened(d, eps=0.1)
    assert zd.name == "synthetic+zca" and zd.x_train.shape == d.x_train.shape
    back = z.unwhiten(zd.x_test)
    assert torch.allclose(back, zca.to_unit(d, d.x_test), atol=1e-3)
    flat = zd.x_train.reshape(len(zd.x_train), -1).double()
    cov = torch.cov(flat.T)
    ev = torch.linalg.eigvalsh(cov)
    assert float(ev.max()) < 1.0 + 1e-3       # S / (S + eps) < 1: whitened, shrunk by eps


def test_matches_the_closed_form_on_a_small_matrix():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 1, 2, 3, generator=g)
    z = zca.fit(x, eps=0.1)
    flat = x.reshape(50, -1).double()
    xc = flat - flat.mean(0)
    S, U = torch.linalg.eigh(xc.T @ xc / 49)
    T = U @ torch.diag(1 / torch.sqrt(S + 0.1)) @ U.T
    assert torch.allclose(z.T.double(), T, atol=1e-5)
