"""The training matrix X = [1, pixels / 255] of the scratch model, multiplied in integers.

Gradient descent spends its time in two products per iteration: the logits
X @ Theta.T and the gradient's X^T G. In float32 on a CPU both are bound by
arithmetic, not memory: a matrix with 10 columns keeps the vector units
busy with little reuse (docs/speed.md). But X's entries are bytes over 255:
a pixel is an integer 0..255, the intercept column is 255 / 255 = 1. So
each product is taken as a product of int8 matrices with int32 sums
(`torch._int_mm`, several times faster than float32 here), which is exact:

- X's bytes are held as int8, pixel - 128, in two layouts (rows for the
  logits, columns for the gradient): 94 MB, half of the float32 matrix.
- The float operand (Theta, or G's transpose: one row per class) becomes
  24-bit fixed point per class, float32's own precision: integers
  q = round(v / scale) with |q| < 2**23, whose three bytes (of q + 2**23)
  are three int8 digits, so one int8 product with 31 columns computes the
  10 classes' three digits at once, and the sums of X's bytes in the last.
- The int32 sums come back together in float64, exactly (every partial sum
  is an integer below 2**53), and are scaled once by scale / 255.

The only rounding is of the float operand to 24 bits (at most one unit in
its class's 24th bit) and of the result to float32. The sums are exact in
any order, so the result does not depend on the thread count or on how a
library splits the work.

Both results are laid out class by class: the logits are (n, c) with the
n rows of each class next to each other in memory (the transpose of a
contiguous (c, n) tensor). torch's elementwise work keeps that layout, so
softmax's sums over the 10 classes add 10 contiguous runs of n values, and
the gradient of the logits arrives already as the (c, n) rows that its
fixed point and digits are made from.
"""

import functools
import sys

import torch

PIXEL_SHIFT = 128  # int8 holds pixel - 128 (0..255 -> -128..127); a digit is byte - 128 alike
DIGITS = 3
DIGIT_WEIGHTS = (65536.0, 256.0, 1.0)  # bytes of q + 2**23, most significant first
Q_OFFSET = 2**23  # makes q non-negative, below 2**24: three bytes
# Where the low three bytes of an int32 lie in memory, the most significant first.
_BYTES_MOST_SIGNIFICANT_FIRST = (2, 1, 0) if sys.byteorder == "little" else (1, 2, 3)
# Headroom below 2**23 for float32's rounding of v / scale.
FIXED_POINT_LIMIT = 2**23 - 2**8
# The digits d_k = byte_k - 128 add up to q minus this: 128 * (65536 + 256 + 1) - 2**23.
DIGITS_OFFSET = PIXEL_SHIFT * sum(DIGIT_WEIGHTS) - Q_OFFSET
# Rows per gradient product: each int32 sum holds at most this many products of 128 x 128 (< 2**31).
ROWS_PER_SUM = 2**31 // (PIXEL_SHIFT * PIXEL_SHIFT) - 1


def to_fixed_point(values):
    """(c, m) float32 -> ((c, m) int32 q, (c, 1) float32 scale) with values ~ q * scale, |q| < 2**23."""
    largest = values.abs().amax(dim=1, keepdim=True)
    scale = torch.where(largest > 0, largest / FIXED_POINT_LIMIT, torch.ones_like(largest))
    return torch.round(values * (1 / scale)).to(torch.int32), scale


def to_digits(q):
    """(c, m) int32 q -> (3c + 1, m) int8: each row's most significant digits, the middle ones, the least, then ones.

    Digit k of an entry is byte k of q + 2**23 (most significant first)
    minus 128, so the digits weighed by DIGIT_WEIGHTS add up to
    q - DIGITS_OFFSET. The row of ones makes the product also sum X's
    bytes, which that offset needs.
    """
    c, m = q.shape
    # Each int32's four bytes, in the order the machine stores them.
    in_memory = (q + Q_OFFSET).contiguous().view(torch.uint8).view(c, m, 4)
    digits = torch.empty(DIGITS * c + 1, m, dtype=torch.uint8, device=q.device)
    for k, byte in enumerate(_BYTES_MOST_SIGNIFICANT_FIRST):
        digits[k * c:(k + 1) * c] = in_memory[..., byte]
    digits[-1] = PIXEL_SHIFT + 1
    return digits.bitwise_xor_(PIXEL_SHIFT).view(torch.int8)


@functools.cache
def _digit_weights(c, device):
    """(c, 3c + 1) float64: sums column k * c + j weighs DIGIT_WEIGHTS[k] in class j, the bytes' sums DIGITS_OFFSET."""
    weights = torch.zeros(c, DIGITS * c + 1, dtype=torch.float64, device=device)
    for k, weight in enumerate(DIGIT_WEIGHTS):
        weights[:, k * c:(k + 1) * c].fill_diagonal_(weight)
    weights[:, -1] = DIGITS_OFFSET
    return weights


def from_digits(sums, q):
    """(m, 3c + 1) int32 products of bytes and digits -> (c, m) float64 products of pixels (u = byte + 128) and q."""
    weights = _digit_weights(q.shape[0], sums.device)
    pixel_shift_sums = PIXEL_SHIFT * q.sum(dim=1, keepdim=True, dtype=torch.int64).double()
    # Integers below 2**53: float64 adds them exactly, in any order.
    return torch.addmm(pixel_shift_sums, weights, sums.double().T)


def scaled(sums, scale):
    """(c, m) float64 exact sums times (c, 1) scale / 255, rounded once to float32."""
    result = torch.empty(sums.shape, dtype=torch.float32, device=sums.device)
    return torch.mul(sums, scale.double() / 255, out=result)


def class_major(values):
    """An (n, c) tensor laid out class by class, as PixelMatrix's products are: the same values."""
    return values.T.contiguous().T


class PixelMatrix:
    """X = [1, pixels / 255] for (n, f) uint8 pixels: `X @ W` for an (f + 1, c) float32 W, with autograd.

    Behaves as the (n, f + 1) float32 matrix in what softmax.py asks of X:
    its shape, dtype and device, a slice of rows, and the product.
    """

    dtype = torch.float32

    def __init__(self, pixels=None, *, rows=None, columns=None):
        if pixels is not None:
            if pixels.dtype != torch.uint8 or pixels.dim() != 2:
                raise ValueError(f"PixelMatrix wants (n, f) uint8 pixels, got {tuple(pixels.shape)} {pixels.dtype}")
            ones = torch.full((pixels.shape[0], 1), 255, dtype=torch.uint8, device=pixels.device)
            # u - 128 as int8 is u with its top bit flipped.
            rows = torch.cat([ones, pixels], dim=1).bitwise_xor_(PIXEL_SHIFT).view(torch.int8)
            columns = rows.T.contiguous()
        self.rows, self.columns = rows, columns

    @property
    def shape(self):
        return self.rows.shape

    @property
    def device(self):
        return self.rows.device

    def __getitem__(self, rows):
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("PixelMatrix takes a slice of rows")
        return PixelMatrix(rows=self.rows[rows], columns=self.columns[:, rows])

    def __matmul__(self, W):
        return _Product.apply(W, self)

    def times(self, W):
        """X @ W: (n, c) float32, laid out class by class (class_major)."""
        q, scale = to_fixed_point(W.detach().T)
        sums = torch._int_mm(self.rows, to_digits(q).T.contiguous())
        return scaled(from_digits(sums, q), scale).T

    def transposed_times(self, G):
        """X^T @ G for an (n, c) float G: (f + 1, c) float32."""
        q, scale = to_fixed_point(G.T)
        digits = to_digits(q)
        n = digits.shape[1]
        if n <= ROWS_PER_SUM:
            sums = torch._int_mm(self.columns.contiguous(), digits.T)
        else:  # int32 sums of at most ROWS_PER_SUM rows each, added in int64
            sums = sum(torch._int_mm(self.columns[:, start:start + ROWS_PER_SUM].contiguous(),
                                     digits[:, start:start + ROWS_PER_SUM].T).long()
                       for start in range(0, n, ROWS_PER_SUM))
        return scaled(from_digits(sums, q), scale).T


class _Product(torch.autograd.Function):
    """X @ W with its gradient for W, X^T @ dL/d(X @ W): what autograd takes of the product."""

    @staticmethod
    def forward(ctx, W, X):
        ctx.X = X
        return X.times(W)

    @staticmethod
    def backward(ctx, grad_output):
        return ctx.X.transposed_times(grad_output), None
