"""The notebook's own checks on softmax regression from scratch, plus numerical stability."""

import numpy as np
import pytest
import torch
from sklearn import datasets
from sklearn.metrics import classification_report

from fmnist import softmax


@pytest.fixture
def blobs():
    """The notebook's data: 200 samples, 20 features, 2 centers, random state 20190187."""
    X, y = datasets.make_blobs(n_samples=200, n_features=20, centers=2, random_state=20190187)
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y)


def test_softmax_of_blobs_has_one_row_of_probabilities_per_sample(blobs):
    X, _ = blobs
    Theta = torch.randn(4, X.shape[1], generator=torch.Generator().manual_seed(0))
    P = softmax.softmax(X, Theta)
    assert P.shape == (200, 4)
    np.testing.assert_almost_equal(P.sum(dim=1).numpy(), np.ones(200), decimal=4)
    assert (P >= 0).all()


def test_cross_entropy_is_never_negative(blobs):
    X, y = blobs
    Y = softmax.one_hot(y, 2)
    generator = torch.Generator().manual_seed(1)
    losses = [softmax.cross_entropy(X, torch.randn(2, X.shape[1], generator=generator), Y) for _ in range(100)]
    assert all(loss >= 0 for loss in losses)
    assert any(loss > 0 for loss in losses)


def test_gradient_descent_separates_the_notebooks_blobs(blobs):
    X, y = blobs
    Xn = softmax.add_intercept(X)
    result = softmax.gradient_descent(Xn, softmax.one_hot(y, 2), lr=0.005, max_iter=10000, tol=1e-5)
    predicted = softmax.predict(Xn, result.Theta)
    report = classification_report(y.numpy(), predicted.numpy(), output_dict=True)
    assert report["accuracy"] == 1.0
    assert not result.diverged
    assert result.loss_history[-1] < result.loss_history[0]


def test_add_intercept_prepends_a_column_of_ones():
    X = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    Xn = softmax.add_intercept(X)
    assert Xn.shape == (2, 4)
    assert torch.equal(Xn[:, 0], torch.ones(2))
    assert torch.equal(Xn[:, 1:], X)


def test_softmax_and_loss_stay_finite_for_logits_of_plus_minus_1000():
    X = torch.tensor([[1.0], [-1.0]])
    Theta = torch.tensor([[1000.0], [-1000.0], [0.0]])  # logits +-1000
    P = softmax.softmax(X, Theta)
    assert torch.isfinite(P).all()
    np.testing.assert_allclose(P.sum(dim=1).numpy(), [1.0, 1.0])
    assert torch.equal(P.argmax(dim=1), torch.tensor([0, 1]))
    Y = softmax.one_hot(torch.tensor([2, 2]), 3)  # the least likely class: loss ~ 1000
    loss = softmax.cross_entropy(X, Theta, Y)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(1000.0)


def test_autograd_gradient_equals_the_closed_form():
    generator = torch.Generator().manual_seed(2)
    X = softmax.add_intercept(torch.rand(50, 7, generator=generator, dtype=torch.float64))
    y = torch.randint(0, 4, (50,), generator=generator)
    Y = softmax.one_hot(y, 4).double()
    Theta = torch.randn(4, 8, generator=generator, dtype=torch.float64)
    _, grad = softmax.gradient(X, Theta, Y)
    closed_form = (softmax.softmax(X, Theta) - Y).T @ X / X.shape[0]
    torch.testing.assert_close(grad, closed_form)


def test_gradient_descent_stops_when_the_loss_settles_within_tol(blobs):
    X, y = blobs
    Xn = softmax.add_intercept(X)
    result = softmax.gradient_descent(Xn, softmax.one_hot(y, 2), lr=0.005, max_iter=10000, tol=1e-3)
    assert result.converged
    assert result.iterations < 10000
    assert abs(result.loss_history[-1] - result.loss_history[-2]) <= 1e-3
    assert all(abs(a - b) > 1e-3 for a, b in zip(result.loss_history[:-2], result.loss_history[1:-1], strict=True))


def test_gradient_descent_stops_at_max_iter():
    X = softmax.add_intercept(torch.rand(30, 5, generator=torch.Generator().manual_seed(3)))
    y = torch.arange(30) % 3
    result = softmax.gradient_descent(X, softmax.one_hot(y, 3), lr=0.1, max_iter=7, tol=0.0)
    assert result.iterations == 7
    assert not result.converged and not result.diverged


def test_the_gradient_by_autograd_is_the_closed_form_over_every_row():
    """(P - Y)^T X / n and the mean loss over all 50 rows, in float64."""
    generator = torch.Generator().manual_seed(4)
    X = softmax.add_intercept(torch.rand(50, 7, generator=generator, dtype=torch.float64))
    y = torch.randint(0, 4, (50,), generator=generator)
    Y = softmax.one_hot(y, 4).double()
    Theta = torch.randn(4, 8, generator=generator, dtype=torch.float64)
    loss, grad = softmax.gradient(X, Theta, Y)
    P = torch.softmax(X @ Theta.T, dim=1)
    torch.testing.assert_close(grad, (P - Y).T @ X / X.shape[0])
    assert loss.item() == pytest.approx(-torch.log(P[torch.arange(50), y]).mean().item(), rel=1e-12)
