"""Ranges that follow the weights: during QAT training every calibrated activation quantizer tracks its batch
extremes (quantize/fake.py), so a layer whose outputs grow while training is not left saturating; frozen ranges
clip it. Untouched layers keep their calibrated range."""

import torch
from torch import nn

from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.quantize.ranges import QMAX, QMIN


def _saturation(q, layer: str, x: torch.Tensor) -> float:
    """Share of `layer`'s outputs whose code lies beyond the int8 grid (clipped), in the float pass of the graph."""
    seen = {}
    op = q.ops[layer]
    hook = op.register_forward_hook(lambda m, i, o: seen.__setitem__("y", o))
    mode = op.out_q.mode
    q.set_mode("float")  # the unclipped values, to compare with the grid
    with torch.no_grad():
        q(x)
    q.set_mode(mode)
    hook.remove()
    code = torch.round(seen["y"] / float(op.out_q.scale)) + int(op.out_q.zero_point)
    return float(((code < QMIN) | (code > QMAX)).float().mean())


def _grown(tracking: bool):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Sigmoid(), nn.Linear(16, 16), nn.Linear(16, 3)).eval()
    x = torch.randn(512, 6)
    q = calibrate(to_quant_student(model, rounding="xnnpack"), x[:256])
    first, _, second, _ = [k for k, _, _ in q.steps]  # Linear, LOGISTIC, Linear, Linear
    before = (float(q.ops[first].out_q.scale), float(q.ops[second].out_q.scale))
    with torch.no_grad():
        q.ops[second].weight.mul_(3.0)  # as training might: the middle layer's outputs grow threefold
    q.set_tracking(tracking)
    q.train()
    with torch.no_grad():
        for i in range(400):  # training batches (forward passes; the optimizer is beside the point here)
            q(x[torch.randint(0, 512, (64,))])
    q.eval()
    q.set_tracking(False)
    return q, first, second, before, x


def test_a_layer_whose_range_grows_is_not_saturated_with_tracking():
    q, first, second, (s1, s2), x = _grown(tracking=True)
    assert _saturation(q, second, x) < 0.005
    assert float(q.ops[second].out_q.scale) > 2.0 * s2  # the grid followed the threefold growth
    assert abs(float(q.ops[first].out_q.scale) / s1 - 1) < 0.1  # an unchanged layer stays near its calibration


def test_frozen_ranges_leave_the_grown_layer_clipping():
    q, _, second, (_, s2), x = _grown(tracking=False)
    assert float(q.ops[second].out_q.scale) == s2
    assert _saturation(q, second, x) > 0.05


def test_tracking_never_moves_fixed_grids_and_stops_in_eval():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 2)).eval()
    x = torch.randn(128, 4)
    q = calibrate(to_quant_student(model), x)
    scales = [float(m.scale) for m in q.quantizers()]
    q.set_tracking(True)
    q.eval()
    with torch.no_grad():
        q(x * 50)  # eval passes never move a range
    assert [float(m.scale) for m in q.quantizers()] == scales
    q.train()
    with torch.no_grad():
        for _ in range(50):
            q(x * 50)
    fixed = [m for m in q.quantizers() if m.fixed is not None]
    assert fixed and all(float(m.scale) == m.fixed[0] and int(m.zero_point) == m.fixed[1] for m in fixed)


def _tracking_quantizer():
    from edgedistill.quantize.fake import ActQuant

    q = ActQuant()
    q.mode = "observe"
    for seed in range(4):
        q(torch.randn(64, 8, generator=torch.Generator().manual_seed(seed)))
    q.freeze()
    q.track = True
    q.train()
    return q


def test_tracking_follows_the_batch_extremes_by_the_ema_formula():
    from edgedistill.quantize.fake import EMA_DECAY

    q = _tracking_quantizer()
    for seed in range(20):
        x = torch.randn(32, 8, generator=torch.Generator().manual_seed(100 + seed)) * (1 + seed / 4)
        before = q.ranges.clone()
        q(x)
        want_lo = EMA_DECAY * float(before[4]) + (1 - EMA_DECAY) * float(x.min())
        want_hi = EMA_DECAY * float(before[5]) + (1 - EMA_DECAY) * float(x.max())
        assert float(q.ranges[4]) == want_lo and float(q.ranges[5]) == want_hi
    assert float(q.scale) > float(_tracking_quantizer().scale)  # the grid followed the growing batches


def test_a_batch_with_a_non_finite_value_or_no_values_moves_nothing():
    q = _tracking_quantizer()
    for bad in (float("nan"), float("inf"), float("-inf")):
        x = torch.randn(32, 8) * 10
        x[3, 5] = bad
        state = (q.ranges.clone(), float(q.scale), int(q.zero_point))
        q(x)
        assert torch.equal(q.ranges, state[0]) and (float(q.scale), int(q.zero_point)) == state[1:]
    state = q.ranges.clone()
    q(torch.empty(0, 8))
    assert torch.equal(q.ranges, state)


def _tracking_scores_grid(room: float):
    """A causal scores grid (CAUSAL_HEADROOM below) calibrated on [-1, 1], tracking in training, with `room`."""
    from edgedistill.quantize.attention_ops import CAUSAL_HEADROOM
    from edgedistill.quantize.fake import ActQuant

    q = ActQuant()
    q.headroom_below, q.min_room_below = CAUSAL_HEADROOM, room
    q.mode = "observe"
    for _ in range(4):
        q(torch.linspace(-1.0, 1.0, 100))
    q.freeze()
    q.track = True
    q.train()
    return q


def _floor(q) -> float:
    return (QMIN - int(q.zero_point)) * float(q.scale)  # the grid's lowest value


def test_a_grid_that_must_keep_room_below_follows_a_sinking_batch_at_once():
    """A causal mask's scores grid keeps CAUSAL_MIN_ROOM below every score (else a row's only visible score can
    reach the floor, tie with the masked keys and attend to the future: seen after 3 QAT steps at lr 3e-3). The
    moving average alone left the floor where it was; with min_room_below the grid re-derives from the batch."""
    from edgedistill.quantize.attention_ops import CAUSAL_MIN_ROOM

    def grid_after(room: float) -> float:
        q = _tracking_scores_grid(room)
        q(torch.linspace(-5.0, 1.0, 100))  # a batch 4 below the calibrated low
        return _floor(q)

    assert grid_after(0.0) > -5.0 - CAUSAL_MIN_ROOM  # the average moved the floor by 1 % of the change
    assert grid_after(CAUSAL_MIN_ROOM) <= -5.0 - CAUSAL_MIN_ROOM + 0.1  # within a step: the zero point is a code


def test_the_room_below_holds_on_every_batch_of_a_drift_not_every_other():
    """A breaking session saw the floor drop for a sinking batch and rise again on the next (the 1 % rescale rule
    compared the moving average with the range just derived from the batch): every second batch had 4 of the 7
    units of room. Over a drift, then a recovery, every batch now keeps the room, and the grid comes back up."""
    from edgedistill.quantize.attention_ops import CAUSAL_MIN_ROOM

    q = _tracking_scores_grid(CAUSAL_MIN_ROOM)
    floors = []
    for low in [-5.0] * 6 + [-6.5] * 3 + [-1.0] * 3:
        q(torch.linspace(low, 1.0, 100))
        floors.append(_floor(q))
        assert low - floors[-1] >= CAUSAL_MIN_ROOM - float(q.scale), (low, floors)  # within a step (integer zp)
    assert floors[-1] > floors[8] + 3  # back up once the scores are
