"""The search's flash limit judges each candidate's file plus the tokenizer's device tables: a budget is built so that
the tables alone decide whether the largest candidate fits."""

import re

import pytest

from edgedistill.budget import Budget
from edgedistill.students.search import InfeasibleBudgetError, search

SHAPE, CLASSES, VOCAB = (16,), 4, 120


@pytest.fixture(scope="module")
def unlimited():
    return search("text", SHAPE, CLASSES, Budget(), ["textcnn"], vocab_size=VOCAB)


def test_a_file_that_fits_is_refused_when_its_tokenizer_tables_do_not(unlimited):
    largest = max(unlimited.candidates, key=lambda c: c.file_bytes)
    below = max(c.file_bytes for c in unlimited.candidates if c.file_bytes < largest.file_bytes)
    limit, tables = largest.file_bytes, largest.file_bytes - below  # the next file down fits exactly with its tables
    assert search("text", SHAPE, CLASSES, Budget(flash_bytes=limit), ["textcnn"],
                  vocab_size=VOCAB).candidates[unlimited.candidates.index(largest)].fits  # without tables it fits
    res = search("text", SHAPE, CLASSES, Budget(flash_bytes=limit), ["textcnn"], vocab_size=VOCAB,
                 tokenizer_bytes=tables)
    by_arch = {c.arch: c for c in res.candidates}
    big = by_arch[largest.arch]
    assert big.file_bytes <= limit < big.flash_bytes == big.file_bytes + tables and big.violations == ("flash",)
    # the choice, recomputed from the unlimited costs: most parameters among files that leave room for the tables
    room = [c for c in unlimited.candidates if c.file_bytes + tables <= limit]
    expected = max(room, key=lambda c: (c.params, -c.macs))
    assert res.chosen.arch == expected.arch and res.chosen.flash_bytes <= limit
    assert all(c.fits == (c.file_bytes + tables <= limit) for c in res.candidates)
    assert res.chosen.to_dict()["flash_bytes"] == res.chosen.file_bytes + tables


def test_an_infeasible_flash_budget_names_the_tables_and_the_figure_that_works(unlimited):
    smallest = min(c.file_bytes for c in unlimited.candidates)
    with pytest.raises(InfeasibleBudgetError) as info:
        search("text", SHAPE, CLASSES, Budget(flash_bytes=smallest), ["textcnn"], vocab_size=VOCAB,
               tokenizer_bytes=500)
    msg = str(info.value)
    figure = int(re.search(r"best candidate needs ([\d,]+) B", msg).group(1).replace(",", ""))
    assert figure == smallest + 500 and "500 B of tokenizer tables" in msg
    with pytest.raises(InfeasibleBudgetError) as info:  # the caller's other way out, named where the tables count
        search("text", SHAPE, CLASSES, Budget(flash_bytes=smallest), ["textcnn"], vocab_size=VOCAB,
               tokenizer_bytes=500, flash_hint=" (or X)")
    assert "would work (or X)" in str(info.value)


def test_a_build_names_its_student_before_training(unlimited, capsys):
    """`build` said which student it trains only in its final summary, after up to an hour of training: the search's
    choice is now announced on stderr first (and not with -q)."""
    from edgedistill.pipeline.search import announce
    from edgedistill.students.search import GIVEN_RULE

    announce(unlimited, "runs/x", True)
    err = capsys.readouterr().err
    c = unlimited.chosen
    assert err.startswith(f"training {c.arch.describe()}: {c.params:,} parameters (of "
                          f"{len(unlimited.candidates)} candidates costed") and err.rstrip().endswith("-> runs/x")
    own = search("text", SHAPE, CLASSES, Budget(), vocab_size=VOCAB, arch=c.arch)  # a user's student: not searched
    assert own.rule == GIVEN_RULE
    announce(own, "runs/x", True)
    assert f"({GIVEN_RULE})" in capsys.readouterr().err
    announce(unlimited, "runs/x", False)
    assert capsys.readouterr().err == ""
    # the limits as resolved: a newcomer's flash=64kb was 64,000 B (decimal), and nothing said so before training
    announce(unlimited, "runs/x", True, Budget.parse("flash=64kb,latency=2.5ms"))
    assert "  under flash <= 64,000 B, latency <= 2.5 ms" in capsys.readouterr().err.splitlines()


def test_a_build_says_when_it_replaces_an_earlier_build(unlimited, capsys, tmp_path):
    """A build into a directory holding a build of other settings (same data and target) replaced it without a
    word (a newcomer lost a 300-step build to a 40-step one in the default --out)."""
    from edgedistill.pipeline.search import announce

    announce(unlimited, tmp_path, True)
    assert "replacing" not in capsys.readouterr().err
    (tmp_path / "manifest.json").write_text("{}")
    announce(unlimited, tmp_path, True)
    assert f"replacing the earlier build in {tmp_path}" in capsys.readouterr().err


def test_a_build_gives_the_chosen_students_estimated_speed(unlimited, capsys):
    """A decoder that fills a microcontroller's flash decodes about a token a second there, and the build said so
    only in its final gate: the estimate is now announced before training, as tokens/s for a decoder."""
    from dataclasses import replace

    from edgedistill.pipeline.search import announce

    announce(replace(unlimited, chosen=replace(unlimited.chosen, latency_ms=2.5)), "runs/x", True, None, "cpu")
    assert "  estimated 2.5 ms per inference on cpu (the target profile's estimate; --budget latency=MS limits it)" \
        in capsys.readouterr().err
    decoder = replace(unlimited.chosen, arch=replace(unlimited.chosen.arch, family="decoder"), latency_ms=812.4)
    announce(replace(unlimited, chosen=decoder), "runs/x", True, None, "cortex-m4")
    assert "estimated 812 ms per generated token on cortex-m4 (1.23 tokens/s, the target profile's estimate; " \
           "--budget tokens_per_s=N asks for more)" in capsys.readouterr().err
    announce(unlimited, "runs/x", True, None, None)  # no target: no estimate line
    assert "estimated" not in capsys.readouterr().err
