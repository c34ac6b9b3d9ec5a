"""The reference families: shapes, knobs, family defaults, the ops they use, and that `list` shows them."""

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from edgedistill.cli import main
from edgedistill.cli_args import parse_student
from edgedistill.config import load_config
from edgedistill.data import Normalizer
from edgedistill.errors import ConfigError
from edgedistill.quantize import to_quant_student
from edgedistill.students import StudentArch, build_student
from edgedistill.students.blocks import BasicBlock, InvertedResidual, SqueezeExcite

NEW = {"resnet8": (3, 32, 32), "resnet8_1d": (2, 64), "mobilenetv1": (3, 32, 32), "mbv3": (3, 32, 32),
       "mbv3_1d": (2, 64)}


def _build(family, shape, width=8, depth=3, classes=7):
    return build_student(StudentArch(family, width, depth), shape, classes,
                         Normalizer([0.5] * shape[0], [0.2] * shape[0], "channel"))


def test_list_shows_every_family():
    r = CliRunner().invoke(main, ["list", "students"])
    assert r.exit_code == 0
    for fam in [*NEW, "cnn", "dscnn", "conv1d", "mlp"]:
        assert f"  {fam} " in r.output


@pytest.mark.parametrize("family", sorted(NEW))
@pytest.mark.parametrize("shape_scale", [1, 4])  # tiny inputs too: downsampling stops at 4 wide
def test_families_run_and_are_expressible_in_int8(family, shape_scale):
    shape = NEW[family]
    shape = (shape[0],) + tuple(max(8, s // shape_scale) for s in shape[1:])
    m = _build(family, shape, width=4, depth=2).eval()
    assert m(torch.rand(3, *shape)).shape == (3, 7)
    to_quant_student(m)  # every op in the int8 set, or this raises naming the layer


def test_width_and_depth_are_knobs():
    def params(family, w, d):
        return sum(p.numel() for p in _build(family, NEW[family], w, d).parameters())

    for fam in NEW:
        assert params(fam, 4, 2) < params(fam, 8, 2) < params(fam, 8, 3)


def test_block_structure_is_the_papers():
    r = _build("resnet8", (3, 32, 32), 16, 3)
    stacks = [r.features.stack1, r.features.stack2, r.features.stack3]
    assert all(isinstance(s, BasicBlock) for s in stacks)
    assert isinstance(stacks[0].shortcut, nn.Identity)  # same channels, stride 1: identity
    assert [s.shortcut.kernel_size for s in stacks[1:]] == [(1, 1), (1, 1)]  # 1x1 projections, stride 2
    assert [s.conv1.conv.out_channels for s in stacks] == [16, 32, 64]
    m = _build("mbv3", (3, 32, 32), 8, 3)
    kinds = {type(x) for x in m.modules()}
    assert {InvertedResidual, SqueezeExcite, nn.Hardswish, nn.Hardsigmoid} <= kinds
    assert any(b.residual for b in m.modules() if isinstance(b, InvertedResidual))
    v = _build("mobilenetv1", (3, 96, 96), 8, 5)
    dw = [x for x in v.modules() if isinstance(x, nn.Conv2d) and x.groups > 1]
    assert len(dw) == 13 and v.features.stage5.block2.pw.conv.out_channels == 256  # 1024 · α, α = 0.25


def test_family_defaults_apply_when_knobs_are_not_given():
    cfg = load_config(None, {"student": parse_student("mobilenetv1")})
    assert cfg.student.arch("image") == StudentArch("mobilenetv1", 8, 5)
    cfg = load_config(None, {"student": parse_student("mobilenetv1:depth=3")})
    assert cfg.student.arch("image") == StudentArch("mobilenetv1", 8, 3)
    assert load_config(None).student.arch("image") == StudentArch("cnn", 16, 3)


def test_families_refuse_data_they_do_not_fit():
    with pytest.raises(ConfigError, match="C×H×W images"):
        _build("resnet8", (2, 64))
    with pytest.raises(ConfigError, match="C×L signals"):
        _build("mbv3_1d", (3, 32, 32))
    with pytest.raises(ConfigError, match="at most 5 stages"):
        _build("mobilenetv1", (3, 32, 32), 8, 6)
