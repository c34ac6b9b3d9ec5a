"""The transformer's knobs (heads, ffn, activation, pool): parsed from --student and config files, shown by
`edgedistill list`, honoured by the builder, recorded in the architecture, refused in one paragraph when bad; and
activation=gelu built as its substitute on a target whose operator set has no GELU."""

import pytest
import torch
from torch import nn

from edgedistill.config import DistillConfig
from edgedistill.errors import ConfigError
from edgedistill.pipeline.inputs import Inputs, fit_student_to_target
from edgedistill.profile.opsets import runtime_ops
from edgedistill.students import StudentArch, build_student
from edgedistill.students.activations import fit_activation
from edgedistill.students.spec import parse_student_spec
from edgedistill.students.layers import FirstToken, MeanTokens


def test_spec_parses_the_transformer_knobs():
    got = parse_student_spec("transformer:width=48,heads=3,ffn=40,activation=GELU,pool=first")
    assert got == {"family": "transformer", "width": 48,
                   "knobs": {"activation": "gelu", "ffn": 40, "heads": 3, "pool": "first"}}
    assert parse_student_spec("transformer") == {"family": "transformer"}  # defaults: no knobs recorded


@pytest.mark.parametrize("spec, words", [
    ("transformer:activation=swish", ["activation takes one of relu, gelu, hardswish", "'swish'"]),
    ("transformer:pool=cls", ["pool takes one of mean, first"]),
    ("transformer:heads=0", ["heads takes a whole number from 1 to 64"]),
    ("transformer:ffn=1.5", ["ffn takes a whole number from 1 to 4,096"]),
    ("transformer:ffn=1000000000", ["ffn takes a whole number from 1 to 4,096", "'1000000000'"]),  # not an OOM
    ("cnn:heads=2", ["unknown knob 'heads'", "heads is a knob of transformer", "transformer:heads=2"]),
    ("transformer:dropout=0.1", ["unknown knob 'dropout'", "also heads, ffn, activation, pool"]),
])
def test_bad_knobs_are_one_paragraph(spec, words):
    with pytest.raises(ConfigError) as exc:
        parse_student_spec(spec)
    msg = str(exc.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_config_file_knobs_are_checked_and_reach_the_architecture():
    c = DistillConfig(student={"family": "transformer", "knobs": {"activation": "hardswish", "heads": "4"}})
    assert c.student.arch("text") == StudentArch("transformer", 64, 2, knobs=(("activation", "hardswish"),
                                                                              ("heads", 4)))
    c = DistillConfig(student="transformer:pool=first")  # the --student spelling in a config file
    assert dict(c.student.knobs) == {"pool": "first"}
    with pytest.raises(Exception, match="activation takes one of"):
        DistillConfig(student={"family": "transformer", "knobs": {"activation": "tanh"}})


def test_architecture_round_trips_its_knobs_and_old_records_stay_as_they_were():
    a = StudentArch("transformer", 32, 1).with_knobs(activation="gelu", pool="first")
    assert StudentArch.from_dict(a.to_dict()) == a
    assert "activation=gelu" in a.describe()
    assert StudentArch("transformer", 32, 1).to_dict() == {"family": "transformer", "width": 32, "depth": 1}


def test_builder_honours_the_knobs():
    arch = StudentArch("transformer", 48, 2).with_knobs(heads=3, ffn=40, activation="gelu", pool="first")
    m = build_student(arch, (10,), 4, None, vocab_size=50).eval()
    layer = m.layers[0]
    assert layer.attn.heads == 3 and layer.ff1.out_features == 40 and isinstance(layer.act, nn.GELU)
    assert isinstance(m.pool, FirstToken)
    ids = torch.randint(1, 50, (2, 10))
    x = m.embed(ids) + m.pos
    for lay in m.layers:
        x = lay(x, ids)
    torch.testing.assert_close(m(ids), m.head(x[:, 0]))  # first-token pooling reads position 0
    d = build_student(StudentArch("transformer", 64, 1), (10,), 4, None, vocab_size=50)
    assert d.layers[0].attn.heads == 2 and d.layers[0].ff1.out_features == 128  # defaults unchanged
    assert isinstance(d.layers[0].act, nn.ReLU) and isinstance(d.pool, MeanTokens)


def test_heads_that_do_not_divide_the_width_are_refused():
    with pytest.raises(ConfigError, match="multiple of its 5 heads .*heads=5"):
        build_student(StudentArch("transformer", 32, 1).with_knobs(heads=5), (10,), 4, None, vocab_size=50)


def test_gelu_gets_its_substitute_where_the_runtime_has_no_gelu():
    """The derived operator sets: TFLite Micro has no GELU (hardswish instead, with a note), LiteRT has it."""
    knobs, note = fit_activation({"activation": "gelu", "heads": 2}, runtime_ops("tflm"), "cortex-m4")
    assert knobs == {"activation": "hardswish", "heads": 2}
    assert "no GELU kernel" in note and "hardswish" in note
    assert "HARD_SWISH" in runtime_ops("tflm")  # the substitute runs there
    assert fit_activation({"activation": "gelu"}, runtime_ops("litert"), "cpu") == ({"activation": "gelu"}, None)
    assert fit_activation({"activation": "relu"}, runtime_ops("tflm"), "cortex-m4") == ({"activation": "relu"}, None)


@pytest.mark.parametrize("target, built", [("cortex-m4", "hardswish"), ("cortex-m7", "hardswish"), ("cpu", "gelu")])
def test_the_build_config_names_what_is_built_and_notes_it_once(target, built):
    c = DistillConfig(student="transformer:activation=gelu", target=target)
    fitted, inputs = fit_student_to_target(c, Inputs(None, None, ()))
    assert fitted.student.knobs["activation"] == built
    assert len(inputs.notes) == (built != "gelu")
    assert fit_student_to_target(fitted, inputs)[1].notes == inputs.notes  # a second pass adds nothing


def test_list_shows_the_knobs():
    from click.testing import CliRunner

    from edgedistill.cli import main

    lines = CliRunner().invoke(main, ["list", "students"]).output.splitlines()
    family = next(i for i, x in enumerate(lines) if x.strip().startswith("transformer "))
    line = lines[family + 1]  # the family's knobs line (the decoder's comes first and has other knobs)
    assert "knobs:" in line and "activation=relu|gelu|hardswish (default relu)" in line and "pool=mean|first (default mean)" in line


def test_search_skips_the_widths_a_knob_does_not_fit_and_refuses_when_none_fits():
    """heads=3 divides only some of the transformer grid's widths: those are searched, the others skipped; a knob
    that fits no width is the builder's own one-paragraph refusal."""
    from edgedistill.budget import Budget
    from edgedistill.students.search import search

    res = search("text", (16,), 4, Budget(), ["transformer"], vocab_size=100, knobs={"heads": 3})
    widths = {c.arch.width for c in res.candidates}
    assert widths and all(w % 3 == 0 for w in widths) and {48, 96} <= widths
    assert all(dict(c.arch.knobs)["heads"] == 3 for c in res.candidates)
    with pytest.raises(ConfigError, match="heads"):
        search("text", (16,), 4, Budget(), ["transformer"], vocab_size=100, knobs={"heads": 7})


@pytest.mark.parametrize("weight", ["inf", "nan", "0", "-1"])
def test_a_feature_weight_must_be_a_finite_positive_number(weight):
    """weight=inf used to pass the config and diverge at the first step, leaving OUT.partial behind."""
    from edgedistill.config import load_config

    with pytest.raises(ConfigError, match="weight"):
        load_config(None, {"kd": {"features": [{"loss": "cosine", "weight": weight}]}})
