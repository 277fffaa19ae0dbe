"""stages/pixels.py: X = [1, pixels / 255] multiplied in integers, against float64 on the same numbers."""

import pytest
import torch

from stages import pixels, softmax
from stages.pixels import PixelMatrix


def random_pixels(n=300, f=784, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, f), dtype=torch.uint8, generator=generator)


def float64_x(pixel_bytes):
    """The float64 matrix PixelMatrix stands for: a column of ones, then pixels / 255."""
    ones = torch.ones(pixel_bytes.shape[0], 1, dtype=torch.float64)
    return torch.cat([ones, pixel_bytes.double() / 255], dim=1)


def worst_relative_error(value, reference):
    return ((value.double() - reference).abs().max() / reference.abs().max()).item()


def test_the_digits_add_up_to_every_integer_in_range_and_each_fits_int8():
    limit = pixels.FIXED_POINT_LIMIT
    q = torch.tensor([[-limit, -limit + 1, -32897, -32896, -129, -128, -1, 0],
                      [1, 127, 128, 255, 256, 32896, limit - 1, limit]], dtype=torch.int32)
    digits = pixels.to_digits(q)
    assert digits.dtype == torch.int8 and digits.shape == (3 * 2 + 1, 8)
    assert (digits[-1] == 1).all()
    weights = torch.tensor(pixels.DIGIT_WEIGHTS, dtype=torch.float64).view(3, 1, 1)
    rebuilt = (digits[:-1].double().view(3, 2, 8) * weights).sum(dim=0) + pixels.DIGITS_OFFSET
    assert torch.equal(rebuilt, q.double())


def test_fixed_point_holds_each_row_to_float32s_precision():
    values = torch.tensor([[1.0, -3e-7, 0.0], [-0.5, 1e-7, 0.0], [0.25, 2e-9, 0.0]]).T
    q, scale = pixels.to_fixed_point(values)
    assert q.abs().max() <= pixels.FIXED_POINT_LIMIT
    assert q[2].eq(0).all() and scale[2] == 1  # a zero row stays zero
    error = (q.double() * scale.double() - values.double()).abs()
    assert (error <= scale.double()).all()  # at most one unit of the row's 24th bit
    assert (scale[:2].double() <= values.abs().amax(dim=1, keepdim=True)[:2].double() * 2.0**-22).all()


@pytest.mark.parametrize("f", [1, 784])
def test_the_logits_are_x_at_w_to_float32_precision(f):
    pixel_bytes = random_pixels(f=f)
    W = torch.randn(f + 1, 10, generator=torch.Generator().manual_seed(1))
    reference = float64_x(pixel_bytes) @ W.double()
    logits = PixelMatrix(pixel_bytes) @ W
    assert logits.dtype == torch.float32 and logits.shape == (300, 10)
    assert worst_relative_error(logits, reference) < 2e-7


def test_autograd_takes_the_gradient_x_transposed_at_g():
    pixel_bytes = random_pixels()
    X = PixelMatrix(pixel_bytes)
    Theta = torch.randn(10, 785, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    G = torch.randn(300, 10, generator=torch.Generator().manual_seed(3)) * 1e-4
    (gradient,) = torch.autograd.grad(X @ Theta.T, Theta, G)
    reference = (float64_x(pixel_bytes).T @ G.double()).T
    assert gradient.shape == Theta.shape
    assert worst_relative_error(gradient, reference) < 2e-7


def test_the_cross_entropy_gradient_is_the_closed_form_one():
    pixel_bytes = random_pixels()
    labels = torch.randint(0, 10, (300,), generator=torch.Generator().manual_seed(4))
    Theta = torch.randn(10, 785, generator=torch.Generator().manual_seed(5)) * 0.1
    Y = softmax.one_hot(labels, 10)
    loss, gradient = softmax.gradient(PixelMatrix(pixel_bytes), Theta, Y)

    X = float64_x(pixel_bytes)
    P = torch.softmax(X @ Theta.double().T, dim=1)
    assert loss.item() == pytest.approx(-(Y.double() * torch.log(P)).sum(dim=1).mean().item(), rel=1e-6)
    assert worst_relative_error(gradient, (P - Y.double()).T @ X / 300) < 1e-5


def test_the_products_and_the_logits_gradient_are_laid_out_class_by_class(monkeypatch):
    """The logits are the transpose of a (c, n) tensor; with Y so laid out, the gradient of the logits is too."""
    pixel_bytes = random_pixels()
    X = PixelMatrix(pixel_bytes)
    Theta = torch.randn(10, 785, generator=torch.Generator().manual_seed(10))
    logits = X @ Theta.T
    assert logits.shape == (300, 10) and logits.T.is_contiguous()
    Y = pixels.class_major(softmax.one_hot(torch.arange(300) % 10, 10))
    assert torch.equal(Y, softmax.one_hot(torch.arange(300) % 10, 10)) and Y.T.is_contiguous()

    seen = []
    transposed_times = PixelMatrix.transposed_times
    monkeypatch.setattr(PixelMatrix, "transposed_times", lambda self, G: seen.append(G) or transposed_times(self, G))
    softmax.gradient(X, Theta, Y)
    assert len(seen) == 1 and seen[0].T.is_contiguous()


def test_a_slice_of_rows_is_those_rows_of_x():
    pixel_bytes = random_pixels()
    W = torch.randn(785, 10, generator=torch.Generator().manual_seed(6))
    whole = PixelMatrix(pixel_bytes)
    assert whole.shape == (300, 785) and whole.dtype == torch.float32
    assert torch.equal(whole[100:164] @ W, PixelMatrix(pixel_bytes[100:164]) @ W)
    with pytest.raises(TypeError):
        whole[[1, 2]]


def test_the_gradient_of_more_rows_than_an_int32_sum_holds_is_taken_in_parts(monkeypatch):
    """ROWS_PER_SUM keeps 60,000 rows in one int32 sum; more rows are summed in parts, in int64."""
    pixel_bytes = random_pixels()
    X = PixelMatrix(pixel_bytes)
    G = torch.randn(300, 10, generator=torch.Generator().manual_seed(7))
    whole = X.transposed_times(G)
    monkeypatch.setattr(pixels, "ROWS_PER_SUM", 64)
    assert torch.equal(X.transposed_times(G), whole)
    assert pixels.ROWS_PER_SUM * pixels.PIXEL_SHIFT**2 < 2**31


def test_only_uint8_pixels_are_taken():
    with pytest.raises(ValueError, match="uint8"):
        PixelMatrix(random_pixels().float())


def test_gradient_descent_gives_the_same_bytes_on_one_and_two_threads():
    """The integer sums are exact in any order, so the thread count cannot move a digit."""
    pixel_bytes = random_pixels(2000, seed=8)
    labels = torch.randint(0, 10, (2000,), generator=torch.Generator().manual_seed(9))
    Y = softmax.one_hot(labels, 10)
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            results.append(softmax.gradient_descent(PixelMatrix(pixel_bytes), Y, 0.1, 20, 0.0))
    finally:
        torch.set_num_threads(threads)
    one, two = results
    assert torch.equal(one.Theta, two.Theta) and one.loss_history == two.loss_history
