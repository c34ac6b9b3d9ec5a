"""Feature and relation losses against their formulas written out with loops, gradients reaching the student only,
and the hook that taps named layers."""

import math

import pytest
import torch
from torch import nn

from edgedistill.distill.knowledge import FEATURE_LOSSES, FeatureTap, regressor

g = torch.Generator().manual_seed(0)


def _pair(*shape):
    return torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)


def test_hint_is_mean_squared_error():
    s, t = _pair(3, 4, 2, 2)
    want = sum((s[i, c, h, w] - t[i, c, h, w]) ** 2 for i in range(3) for c in range(4) for h in range(2)
               for w in range(2)) / (3 * 4 * 2 * 2)
    assert float(FEATURE_LOSSES.get("hint")(s, t)) == pytest.approx(float(want), rel=1e-5)


def test_cosine_is_one_minus_cosine_per_sample():
    s, t = _pair(4, 6)
    want = 0.0
    for i in range(4):
        dot = sum(float(s[i, k] * t[i, k]) for k in range(6))
        want += 1 - dot / (math.sqrt(sum(float(v) ** 2 for v in s[i])) * math.sqrt(sum(float(v) ** 2 for v in t[i])))
    assert float(FEATURE_LOSSES.get("cosine")(s, t)) == pytest.approx(want / 4, rel=1e-5)


def test_attention_transfer_formula():
    s, t = _pair(2, 3, 4, 4)
    want = 0.0
    for i in range(2):
        qs = [sum(float(s[i, c, h, w]) ** 2 for c in range(3)) / 3 for h in range(4) for w in range(4)]
        qt = [sum(float(t[i, c, h, w]) ** 2 for c in range(3)) / 3 for h in range(4) for w in range(4)]
        ns, nt = math.sqrt(sum(v * v for v in qs)), math.sqrt(sum(v * v for v in qt))
        want += sum((a / ns - b / nt) ** 2 for a, b in zip(qs, qt))
    assert float(FEATURE_LOSSES.get("at")(s, t)) == pytest.approx(want / (2 * 16), rel=1e-4)


def _smooth_l1(a, b):
    d = abs(a - b)
    return 0.5 * d * d if d < 1 else d - 0.5


def test_rkd_distance_formula():
    s, t = _pair(5, 3)

    def dists(e):
        d = {(i, j): math.dist(e[i].tolist(), e[j].tolist()) for i in range(5) for j in range(5) if i != j}
        mu = sum(d.values()) / len(d)
        return {k: v / mu for k, v in d.items()}

    ds, dt = dists(s), dists(t)
    want = sum(_smooth_l1(ds[k], dt[k]) for k in ds) / len(ds)
    assert float(FEATURE_LOSSES.get("rkd_distance")(s, t)) == pytest.approx(want, rel=1e-4)


def test_rkd_angle_formula():
    s, t = _pair(4, 3)

    def cosines(e):
        out = []
        for j in range(4):
            for i in range(4):
                for k in range(4):
                    a, b = e[i] - e[j], e[k] - e[j]
                    na, nb = float(a.norm()), float(b.norm())
                    out.append(0.0 if na == 0 or nb == 0 else float((a / na) @ (b / nb)))
        return out

    cs, ct = cosines(s), cosines(t)
    want = sum(_smooth_l1(a, b) for a, b in zip(cs, ct)) / len(cs)
    assert float(FEATURE_LOSSES.get("rkd_angle")(s, t)) == pytest.approx(want, rel=1e-4, abs=1e-6)


def test_similarity_preserving_formula():
    s, t = _pair(3, 2, 2, 2)

    def gram(f):
        f = f.flatten(1)
        rows = [[float(f[i] @ f[j]) for j in range(3)] for i in range(3)]
        return [[v / math.sqrt(sum(x * x for x in r)) for v in r] for r in rows]

    gs, gt = gram(s), gram(t)
    want = sum((gs[i][j] - gt[i][j]) ** 2 for i in range(3) for j in range(3)) / 9
    assert float(FEATURE_LOSSES.get("sp")(s, t)) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("name", FEATURE_LOSSES.names())
def test_gradient_reaches_the_student_only(name):
    s, t = _pair(6, 4, 3, 3)
    s.requires_grad_(True)
    t.requires_grad_(True)  # even a teacher tensor that tracks gradients must not get any
    loss = FEATURE_LOSSES.get(name)(s, t)
    loss.backward()
    assert s.grad is not None and float(s.grad.abs().sum()) > 0
    assert t.grad is None
    assert float(FEATURE_LOSSES.get(name)(t.detach(), t.detach())) == pytest.approx(0.0, abs=1e-6)


def test_regressor_maps_student_width_to_teacher_shape():
    r = regressor((8, 14, 14), (32, 7, 7))
    assert r(torch.zeros(2, 8, 14, 14)).shape == (2, 32, 7, 7)
    assert regressor((16,), (64,))(torch.zeros(3, 16)).shape == (3, 64)


def test_feature_tap_names_missing_layers_and_keeps_outputs():
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(KeyError, match="no layer named 'block9'; available: 0, 1, 2"):
        FeatureTap(m, ["block9"], "student")
    tap = FeatureTap(m, ["1"], "student")
    m(torch.ones(5, 3))
    assert tap.outputs["1"].shape == (5, 4)
    tap.close()
