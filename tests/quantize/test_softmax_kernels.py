"""RSQRT's int8 table (quantize/softmax_kernels.py), which QAT rebuilds whenever a LayerNorm's tracked grids move:
the memoized per-value step must give the same table as computing every code afresh, and the table must be
1/sqrt on the grids within one output code."""

import math

import numpy as np
import pytest

from edgedistill.quantize import mcu
from edgedistill.quantize.softmax_kernels import _inv_sqrt_multiplier_exp, rsqrt_table


def _fresh_table(s_in, zp_in, s_out, zp_out, rounding):
    """The table with every code computed from scratch (the kernel's two MultiplyByQuantizedMultiplier steps)."""
    m0, shift = mcu._quantize_multiplier_scalar(1.0 / (math.sqrt(float(np.float32(s_in))) * float(np.float32(s_out))))
    out = []
    for code in range(-128, 128):
        value = code - zp_in
        if value <= 0:
            out.append(127)
            continue
        inv_m, inv_shift = _inv_sqrt_multiplier_exp(value)
        data = mcu._mbqm(1, inv_m, inv_shift + 20, rounding)
        out.append(min(max(mcu._mbqm(data, m0, shift - 20, rounding) + zp_out, -128), 127))
    return np.array(out)


def _grids(n):
    rng = np.random.default_rng(0)
    for _ in range(n):
        yield (float(10 ** rng.uniform(-4, 0)), int(rng.integers(-128, 0)), float(10 ** rng.uniform(-2, 0)),
               int(rng.integers(-128, 128)))


@pytest.mark.parametrize("rounding", ["double", "single"])
def test_rsqrt_table_equals_every_code_computed_afresh(rounding):
    for grid in _grids(12):
        for r in (rounding, "double" if rounding == "single" else "single", rounding):  # the cache keys rounding
            np.testing.assert_array_equal(rsqrt_table(*grid, r), _fresh_table(*grid, r))


def test_rsqrt_table_is_one_over_sqrt_within_one_code():
    for s_in, zp_in, s_out, zp_out in _grids(12):
        table = rsqrt_table(s_in, zp_in, s_out, zp_out)
        for code in range(zp_in + 1, 128):
            want = round(1.0 / math.sqrt(s_in * (code - zp_in)) / s_out) + zp_out
            assert abs(int(table[code + 128]) - min(max(want, -128), 127)) <= 1, (code, s_in, zp_in, s_out, zp_out)
