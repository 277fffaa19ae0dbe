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
- The float operand (Theta's columns, or G's) becomes 24-bit fixed point
  per column, float32's own precision: integers q = round(v / scale) with
  |q| < 2**23, whose three bytes (of q + 2**23) are three int8 digits, so
  one int8 product with 31 columns computes the 10 columns' three digits
  at once, and the sums of X's bytes in the last column.
- The int32 sums come back together in float64, exactly (every partial sum
  is an integer below 2**53), and are scaled once by scale / 255.

The only rounding is of the float operand to 24 bits (at most one unit in
its column's 24th bit) and of the result to float32. The sums are exact in
any order, so the result does not depend on the thread count or on how a
library splits the work.
"""

import torch

PIXEL_SHIFT = 128  # int8 holds pixel - 128 (0..255 -> -128..127); a digit is byte - 128 alike
DIGITS = 3
DIGIT_WEIGHTS = (65536.0, 256.0, 1.0)  # bytes of q + 2**23, most significant first
Q_OFFSET = 2**23  # makes q non-negative, below 2**24: three bytes
# Headroom below 2**23 for float32's rounding of v / scale.
FIXED_POINT_LIMIT = 2**23 - 2**8
# The digits d_k = byte_k - 128 add up to q minus this: 128 * (65536 + 256 + 1) - 2**23.
DIGITS_OFFSET = PIXEL_SHIFT * sum(DIGIT_WEIGHTS) - Q_OFFSET
# Rows per gradient product: each int32 sum holds at most this many products of 128 x 128 (< 2**31).
ROWS_PER_SUM = 2**31 // (PIXEL_SHIFT * PIXEL_SHIFT) - 1


def to_fixed_point(values):
    """(m, c) float32 -> ((m, c) int32 q, (c,) float32 scale) with values ~ q * scale, |q| < 2**23."""
    smallest, largest = torch.aminmax(values, dim=0)
    largest = torch.maximum(largest, -smallest)
    scale = torch.where(largest > 0, largest / FIXED_POINT_LIMIT, torch.ones_like(largest))
    return torch.round(values * (1 / scale)).to(torch.int32), scale


def to_digits(q):
    """(m, c) int32 q -> (m, 3c + 1) int8: each column's three digits (most significant first), then ones.

    Digit k of a column is byte k of q + 2**23 minus 128, so the digits
    weighed by DIGIT_WEIGHTS add up to q - DIGITS_OFFSET. The ones column
    makes the product also sum X's bytes, which that offset needs.
    """
    m, c = q.shape
    little_endian = (q + Q_OFFSET).contiguous().view(torch.uint8).view(m, c, 4)
    digits = torch.empty(m, DIGITS * c + 1, dtype=torch.uint8, device=q.device)
    digits[:, :-1].view(m, c, DIGITS).copy_(little_endian[..., :DIGITS].flip(2))
    digits[:, -1] = PIXEL_SHIFT + 1
    return digits.bitwise_xor_(PIXEL_SHIFT).view(torch.int8)


def from_digits(sums, q):
    """(m, 3c + 1) int32 products of bytes and digits -> (m, c) float64 products of pixels (u = byte + 128) and q."""
    c = q.shape[1]
    # Column 3j + k of the sums weighs DIGIT_WEIGHTS[k] in column j; the bytes' sums weigh DIGITS_OFFSET in each.
    weights = torch.zeros(DIGITS * c + 1, c, dtype=torch.float64, device=sums.device)
    for k, weight in enumerate(DIGIT_WEIGHTS):
        weights[k:-1:DIGITS].fill_diagonal_(weight)
    weights[-1] = DIGITS_OFFSET
    # Integers below 2**53: float64 adds them exactly, in any order.
    return sums.double() @ weights + PIXEL_SHIFT * q.sum(dim=0, dtype=torch.int64).double()


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
        """X @ W: (n, c) float32."""
        q, scale = to_fixed_point(W.detach())
        sums = from_digits(torch._int_mm(self.rows, to_digits(q)), q)
        return (sums * (scale.double() / 255)).float()

    def transposed_times(self, G):
        """X^T @ G for an (n, c) float G: (f + 1, c) float32."""
        q, scale = to_fixed_point(G)
        digits = to_digits(q)
        n = digits.shape[0]
        if n <= ROWS_PER_SUM:
            sums = torch._int_mm(self.columns.contiguous(), digits)
        else:  # int32 sums of at most ROWS_PER_SUM rows each, added in int64
            sums = sum(torch._int_mm(self.columns[:, start:start + ROWS_PER_SUM].contiguous(),
                                     digits[start:start + ROWS_PER_SUM]).long()
                       for start in range(0, n, ROWS_PER_SUM))
        return (from_digits(sums, q) * (scale.double() / 255)).float()


class _Product(torch.autograd.Function):
    """X @ W with its gradient for W, X^T @ dL/d(X @ W): what autograd takes of the product."""

    @staticmethod
    def forward(ctx, W, X):
        ctx.X = X
        return X.times(W)

    @staticmethod
    def backward(ctx, grad_output):
        return ctx.X.transposed_times(grad_output), None
