"""QAT's exact-integer schedule (quant.exact_share): the last share of training steps computes the runtime's integers,
earlier steps torch's fake quantization alone, and evaluation the runtime's integers always; and the fake quantizer's
gradient, which every QAT step takes, equals torch's built-in one."""

import pytest
import torch

from edgedistill.config import load_config
from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings
from edgedistill.errors import ConfigError
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.quantize.fake import ActQuant
from edgedistill.quantize.ops import GraphOp
from edgedistill.quantize.qat import qat_distill
from edgedistill.students.decoder_family import decoder
from tiny_models import tiny_cnn

V, L = 32, 8


def _ids(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(1, V, (n, L), generator=torch.Generator().manual_seed(seed)).int()


def _quant_decoder(rounding: str):
    torch.manual_seed(0)
    student = decoder((L,), V, 16, 1, V, heads=2).eval()
    return calibrate(to_quant_student(student, rounding=rounding), _ids(64))


def test_a_training_forward_without_exact_integers_is_the_fake_quantized_model():
    """The tflm graph with exact training off computes what the same graph under rounding "float" computes (and
    differs from its exact forward, so the switch is real); evaluation computes the exact integers either way."""
    exact, fake = _quant_decoder("tflm"), _quant_decoder("float")
    ids = _ids(16, 1)
    with torch.no_grad():
        exact.eval()
        evaluated = exact(ids)
        exact.train()
        exact.set_exact_training(True)
        trained_exact = exact(ids)
        exact.set_exact_training(False)
        trained_fake = exact(ids)
        exact.eval()
        evaluated_again = exact(ids)
        fake.train()
        reference = fake(ids)
    assert torch.equal(trained_fake, reference)
    assert torch.equal(trained_exact, evaluated) and torch.equal(evaluated_again, evaluated)
    assert not torch.equal(trained_fake, trained_exact)


@pytest.mark.parametrize("share, total, exact_steps", [(0.25, 8, [6, 7]), (0.25, 10, [7, 8, 9]), (0.0, 5, []),
                                                       (1.0, 3, [0, 1, 2]), (0.5, 1, [0])])
def test_the_last_share_of_steps_computes_the_exact_integers(share, total, exact_steps):
    q = _quant_decoder("tflm")
    q.exact_share = share
    ops = [m for m in q.modules() if isinstance(m, GraphOp)]
    seen = []
    for done in range(total):
        q.before_train_step(done, total)
        assert len({op.exact_in_training for op in ops}) == 1  # every op, inside attention and LayerNorm too
        if ops[0].exact_in_training:
            seen.append(done)
    assert seen == exact_steps


def test_qat_distill_schedules_the_exact_steps_and_ends_exact():
    """qat_distill with exact_share 0.5 on 8 steps: the last 4 training forwards compute the integers (recorded by
    a spy on the classifier's int8 op), every validation forward does, and the returned model computes them in training
    too."""
    torch.manual_seed(0)
    model = tiny_cnn(4)
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 4, (64,))
    data = TrainSet(x, y, None)
    calls = []
    original = GraphOp.exact.fget

    def spy(self):
        value = original(self)
        if self.kind == "linear":  # the classifier, once a forward
            calls.append((self.training, value))
        return value

    GraphOp.exact = property(spy)
    try:
        q, res = qat_distill(model, data, x[:32], x[:16], y[:16], Objective(teacher=False),
                             TrainSettings(epochs=1, batch_size=8, lr=1e-3), rounding="tflm", exact_share=0.5)
    finally:
        GraphOp.exact = property(original)
    training = [v for t, v in calls if t]
    assert res.steps == 8 and training == [False] * 4 + [True] * 4
    assert all(v for t, v in calls if not t)  # validation
    assert q.exact_in_training and all(op.exact_in_training for op in q.modules() if isinstance(op, GraphOp))


def test_exact_share_is_a_checked_setting():
    assert load_config(None, {"quant": {"exact_share": 0.5}}).quant.exact_share == 0.5
    assert load_config(None, {}).quant.exact_share == 0.25
    with pytest.raises(ConfigError, match="exact_share"):
        load_config(None, {"quant": {"exact_share": 1.5}})


def _codes_at_every_boundary(scale: float, zero_point: int) -> torch.Tensor:
    """Values across the whole grid and beyond: every half step (the ties), just either side of each, the grid's
    ends, zero of both signs, and far outside."""
    k = torch.arange(-300, 301, dtype=torch.float32) * 0.5 - zero_point
    ties = k * scale
    near = torch.cat([ties, torch.nextafter(ties, torch.full_like(ties, 1e9)),
                      torch.nextafter(ties, torch.full_like(ties, -1e9))])
    return torch.cat([near, torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e6, -1e6]), torch.randn(4096) * 100 * scale])


@pytest.mark.parametrize("scale, zero_point", [(0.02, 3), (0.5, -128), (1.0 / 255, -128), (0.013, 0), (7.0, 127)])
def test_fake_quant_gradient_is_torchs(scale, zero_point):
    q = ActQuant()
    q.scale.fill_(scale)
    q.zero_point.fill_(zero_point)
    q.mode = "quant"
    x = _codes_at_every_boundary(scale, zero_point).requires_grad_()
    ours = q(x)
    ours.backward(torch.arange(len(x), dtype=torch.float32) + 1)
    x2 = x.detach().clone().requires_grad_()
    theirs = torch.fake_quantize_per_tensor_affine(x2, scale, zero_point, -128, 127)
    theirs.backward(torch.arange(len(x), dtype=torch.float32) + 1)
    assert torch.equal(ours, theirs)
    assert torch.equal(x.grad, x2.grad)
    if zero_point == -128:  # the fused ReLU: relu then fake quantization, in one pass
        x.grad = None
        fused = q.after_relu(x)
        fused.backward(torch.arange(len(x), dtype=torch.float32) + 1)
        x3 = x.detach().clone().requires_grad_()
        plain = torch.fake_quantize_per_tensor_affine(torch.relu(x3), scale, zero_point, -128, 127)
        plain.backward(torch.arange(len(x), dtype=torch.float32) + 1)
        assert torch.equal(fused, plain)
        assert torch.equal(x.grad, x3.grad)


@pytest.mark.parametrize("share, steps, says", [
    (0.25, None, "the last 25 % of its steps computing the runtime's integers"),
    (0.25, 393, "the last 99 of its 393 steps computing the runtime's integers"),
    (1e-9, 10, "the last 1 of its 10 steps"), (0.25, 2, "the last 1 of its 2 steps"), (0.999, 10, None),
    (0.0, 10, "its steps fake-quantized"), (0.0, None, "its steps fake-quantized"), (1.0, 5, None), (None, 5, None)])
def test_the_report_conditions_say_which_qat_steps_computed_the_integers(share, steps, says):
    """As many steps as the schedule ran exact (QuantStudent.before_train_step: the last ceil(share · steps))."""
    from edgedistill.report.render import _conditions

    q = _quant_decoder("tflm")
    if steps:  # the count the report states is the one the schedule runs
        q.exact_share = share if share is not None else 1.0
        ran = 0
        for done in range(steps):
            q.before_train_step(done, steps)
            ran += q.exact_in_training
        assert (says or "").startswith(f"the last {ran} of") or ran in (0, steps)
    line = _conditions({"epochs": 4, "qat_epochs": 1, "qat_steps": None, "qat_exact_share": share,
                        "qat_steps_run": steps, "augment": "none", "loss": "kd", "temperature": 2.0, "alpha": 0.5,
                        "teacher_outputs": "cached per sample"})
    assert "1 QAT epoch" in line
    if says is None:
        assert "fake-quantized" not in line and "runtime's integers" not in line
    else:
        assert says in line


def test_a_qat_checkpoint_resumes_only_under_the_same_arithmetic_and_share():
    """distill/resume.py and lm_resume.py fingerprint a QAT graph's rounding and exact_share: a run interrupted under
    one share does not resume under another (its steps so far trained otherwise)."""
    from edgedistill.distill.lm_resume import lm_fingerprint
    from edgedistill.distill.lm_trainer import LMTrainSettings
    from edgedistill.distill.resume import fingerprint

    q = _quant_decoder("tflm")
    data = TrainSet(torch.rand(8, 1, 8, 8), torch.zeros(8, dtype=torch.long), None)
    settings, objective = TrainSettings(epochs=1, batch_size=4), Objective(teacher=False)
    ids = _ids(4)

    def both():
        return (fingerprint(settings, objective, data, q),
                lm_fingerprint(LMTrainSettings(steps=10), 1.0, 0.5, [ids, None], q, True))

    q.exact_share = 0.25
    quarter = both()
    q.exact_share = 1.0
    whole = both()
    q.set_rounding("xnnpack")
    other = both()
    for i in range(2):
        assert len({quarter[i], whole[i], other[i]}) == 3
