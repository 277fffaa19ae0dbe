"""Softmax regression from scratch: the notebook's first part, formula by formula.

Shapes follow the notebook: X is (n, f), Theta is (c, f) with one row per
class, Y is the (n, c) one-hot matrix of the labels. No torch.nn, no
torch.optim: gradients come from autograd, updates are written out.
"""

import math
from dataclasses import dataclass, field

import torch


def add_intercept(X):
    """(n, f) -> (n, f + 1): a leading column of ones, so Theta[:, 0] is the intercept."""
    ones = torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)
    return torch.cat([ones, X], dim=1)


def one_hot(y, n_classes):
    """(n,) integer labels -> (n, c) matrix Y with a single 1 per row."""
    Y = torch.zeros(y.shape[0], n_classes, device=y.device)
    Y[torch.arange(y.shape[0], device=y.device), y] = 1
    return Y


def log_softmax(X, Theta):
    """(n, f), (c, f) -> (n, c) log-probabilities.

    Subtracting each row's largest logit changes nothing mathematically but
    keeps exp() finite: exp(1000) overflows, exp(0) does not. To autograd
    the shift is a constant (detach): it moves no probability, so its
    gradient is zero and need not be taken.
    """
    logits = X @ Theta.T
    shifted = logits - logits.amax(dim=1, keepdim=True).detach()
    return shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))


def softmax(X, Theta):
    """(n, f), (c, f) -> (n, c) class probabilities; each row sums to 1."""
    return torch.exp(log_softmax(X, Theta))


def cross_entropy(X, Theta, Y):
    """Mean of -log p(true class): a scalar >= 0.

    The notebook takes log((Y * P).sum(1)); taking the log-probabilities
    directly gives the same number without log(0) = -inf when a probability
    underflows.
    """
    return -(Y * log_softmax(X, Theta)).sum(dim=1).mean()


def gradient(X, Theta, Y):
    """Mean cross-entropy and its gradient d/d Theta by autograd: a scalar and (c, f), = (P - Y)^T X / n."""
    Theta = Theta.detach().requires_grad_(True)
    loss = cross_entropy(X, Theta, Y)
    (grad,) = torch.autograd.grad(loss, Theta)
    return loss.detach(), grad


def predict(X, Theta):
    """(n, f), (c, f) -> (n,) most probable class of each row."""
    return (X @ Theta.T).argmax(dim=1)


@dataclass
class Descent:
    """What gradient descent ended with; loss_history[i] is the loss before update i."""

    Theta: torch.Tensor
    loss_history: list = field(default_factory=list)
    converged: bool = False
    diverged: bool = False

    @property
    def iterations(self):
        return len(self.loss_history)


def gradient_descent(X, Y, lr, max_iter, tol, divergence_factor=10.0, on_iteration=None):
    """Full-batch gradient descent from Theta = 0, as the notebook's gd().

    Stops when the loss changes by at most `tol` between two iterations
    (converged), after `max_iter` iterations, or when the loss stops being a
    finite number or climbs past `divergence_factor` times where it started
    (diverged; Theta is then the last finite one).
    The notebook starts from ones: any constant start gives every class the
    same logit, so both starts are the same model. `on_iteration(loss)`, if
    given, is called with each iteration's loss (for a progress display).
    """
    Theta = torch.zeros(Y.shape[1], X.shape[1], dtype=X.dtype, device=X.device)
    result = Descent(Theta)
    previous_loss = None
    for _ in range(max_iter):
        loss, grad = gradient(X, Theta, Y)
        loss = loss.item()
        result.loss_history.append(loss)
        if on_iteration:
            on_iteration(loss)
        if not math.isfinite(loss) or loss > divergence_factor * result.loss_history[0]:
            result.diverged = True
            break
        result.Theta = Theta
        if previous_loss is not None and abs(previous_loss - loss) <= tol:
            result.converged = True
            break
        Theta = Theta - lr * grad
        previous_loss = loss
    return result
