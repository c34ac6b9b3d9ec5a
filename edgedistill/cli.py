"""Command-line interface: thin click commands that build a config and call the same API the tests call."""

from __future__ import annotations

import json
import sys

import click

from edgedistill.cli_args import parse_formats
from edgedistill.cli_errors import user_errors
from edgedistill.cli_options import (
    build_options,
    build_overrides,
    distill_options,
    distill_overrides,
    flag_namer,
    text_field_options,
)
from edgedistill.cli_summary import (print_distill_summary, print_lm_parity_table, print_parity_table, print_profile,
                                     print_warnings)
from edgedistill.errors import RUN_FAILED, ConfigError, RunFailed
from edgedistill.quiet import keep_log_in, third_party_to_log


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="edgedistill")
def main() -> None:
    """edgedistill turns a big teacher model into a small student that fits an edge device.

    Start with `edgedistill build --target android` on the built-in example (no other arguments needed), then
    point --teacher and --data at your own model and data; `edgedistill distill` runs the training steps alone.
    `edgedistill list` shows the registered losses, student families, data sets and teacher formats.

    Exit codes, the same in every command: 0 done; 1 it ran and a check failed (parity, the gate, a profile that
    does not fit); 2 an input, option or path was refused; 130 interrupted.
    """


@main.command()
@distill_options
@user_errors
@third_party_to_log
def distill(quiet, overwrite, **options):
    """Distill a teacher (or an ensemble) into a small student, and train its no-teacher twin for comparison.

    Writes to --out: student.safetensors + student.json (the distilled student), baseline.* (the same student
    trained on hard labels only, same epochs and data order), config.json (the resolved configuration) and
    metrics.json (teacher / baseline / student test accuracy, parameter counts, timings). Re-running an
    interrupted command resumes from the last finished epoch.
    """
    from edgedistill.api import distill as run_distill
    from edgedistill.config import load_config

    cfg = load_config(options["config_file"], distill_overrides(options),
                      flag_namer(click.get_current_context().command))
    if options.get("target") and not cfg.quant.qat:
        from edgedistill.targets import load_target

        load_target(options["target"])  # an unknown name is an error with or without --qat
        print_warnings([f"--target {options['target']} applies to int8 runs (its fit checks, estimate and, on a "
                        "microcontroller, TFLite Micro's rounding in QAT); without --qat it is ignored."])
    if cfg.quant.int16 and not cfg.quant.qat:
        print_warnings([f"quant.int16 = {list(cfg.quant.int16)} applies to int8 files, and without --qat this run "
                        "writes none; config.json records it, and `edgedistill export --int8` of this run quantizes "
                        "the student post-training in that 16×8 form."])
    keep_log_in(cfg.out)
    result = run_distill(cfg, overwrite=overwrite, show_progress=not quiet)
    if result.metrics:  # empty on the ranks other than 0 of a distributed run
        print_distill_summary(result.metrics, result.out_dir)


@main.command("export")
@click.argument("checkpoint", type=click.Path(file_okay=False))
@click.option("--formats", "formats", help="Comma-separated formats to write: onnx, tflite. [default: both]")
@click.option("--format", "format_alias", hidden=True, help="Deprecated spelling of --formats.")
@click.option("--int8", is_flag=True, help="Also write int8 files: the checkpoint's QAT weights when it has them "
              "(distill --qat), else post-training quantization calibrated on the training data (a causal-LM run: "
              "its QAT weights only).")
@click.option("--data", help="Data for calibration and parity. [default: the data named in CHECKPOINT/config.json]")
@click.option("--calibration", type=click.Choice(["minmax", "percentile", "mse"]), default="minmax",
              show_default=True, help="Post-training quantization's range method (not used with QAT weights).")
@click.option("--calibration-size", type=int, default=1000, show_default=True,
              help="Samples calibrating post-training quantization (not used with QAT weights).")
@click.option("--out", type=click.Path(file_okay=False), help="Output directory. [default: CHECKPOINT/export]")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export's output directory.")
@user_errors
@third_party_to_log
def export_cmd(checkpoint, formats, format_alias, int8, data, calibration, calibration_size, out, overwrite):
    """Export a distilled student (a directory written by `edgedistill distill` or `build`, a causal LM's too) to
    ONNX and TFLite, and run every file on its own runtime (onnxruntime, LiteRT, TFLite Micro) against the torch
    model it came from. A causal-LM run's files come from its QAT weights, windowed with its own tokenizer (copied
    beside them)."""
    from pathlib import Path

    from rich.console import Console

    from edgedistill.api import export_checkpoint
    from edgedistill.export.parity import ParityRow

    if format_alias is not None:
        click.echo("note: --format is deprecated; it is spelled --formats (as for distill).", err=True)
        if formats is not None and parse_formats(formats) != parse_formats(format_alias):
            raise ConfigError(f"--formats {formats!r} and --format {format_alias!r} disagree; give --formats only.")
    fmts = parse_formats(formats if formats is not None else format_alias) or ["onnx", "tflite"]
    out_dir = Path(out) if out else Path(checkpoint) / "export"
    keep_log_in(out_dir)  # the converters' log lines go to OUT/third_party.log, not the terminal
    res = export_checkpoint(Path(checkpoint), out_dir, fmts, int8, data, calibration, calibration_size,
                            overwrite=overwrite, started=lambda: click.echo(
                                "exporting and checking every file on its runtimes ...", err=True))
    console = Console(width=None if sys.stdout.isatty() else 140)
    if any("positions" in r for r in res.record["parity"]):  # a causal LM's decoder step
        print_lm_parity_table(console, res.record["parity"])
    else:
        print_parity_table(console, res.record["parity"])
    for note in res.record.get("parity_skipped", []):  # a file TFLite Micro cannot load (a GELU student)
        console.print(f"note: {note}", markup=False, highlight=False)
    if res.record.get("causality"):  # a causal LM's files probed for causality (export/causality.py)
        from edgedistill.pipeline.lm_report import causality_line

        console.print(causality_line(res.record["causality"])[-1], markup=False, highlight=False)
    for r in (res.record.get("kv_cache") or {}).get("parity", []):  # a causal LM's KV-cache step files
        console.print(f"KV-cache step {r['artifact']} on {r['runtime']}: next-token top-1 agreement "
                      f"{r['qat_agreement']:.3f} % with the QAT model, up to {r['qat_max_steps']:.2f} output steps: "
                      f"{('ok' if r['passed'] else 'FAIL') if r['checked'] else 'informational'}")
    source = {"qat": ", int8 from the run's QAT weights"}.get(res.record.get("int8_source") or "", "")
    console.print(f"wrote {len(res.record['artifacts'])} file(s){source} and export.json to {res.out_dir}")
    if not res.record["parity_passed"]:
        failed = res.record.get("failures") or [ParityRow(**r).failure() for r in res.record["parity"]
                                                if r["checked"] and not r["passed"]]
        raise RunFailed(f"Parity check failed: {'; '.join(failed)}. See {res.out_dir / 'export.json'}.")


def _check_device_url(url: str) -> None:
    """Refuse a --device URL its runner cannot read (device/runners.check_url) in one paragraph, exit 2."""
    from edgedistill.device.runners import check_url
    from edgedistill.errors import ConfigError, DeviceError

    try:
        check_url(url)
    except DeviceError as exc:
        raise ConfigError(f"--device: {exc}") from None


@main.command("profile")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--target", "target", default="cpu", show_default=True, help="Target profile (edgedistill targets list).")
@click.option("--runs", type=click.IntRange(min=1), default=100, show_default=True,
              help="Timed runs after warm-up (at least 1 s).")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the full profile as JSON here.")
@click.option("--device", "device_url", help="Also measure on a device: local[?cores=0], ssh://user@host[:port]"
              "[?key=PATH&python=python3], adb://SERIAL?benchmark_model=PATH. The device must reproduce this "
              "machine's outputs (parity on the device).")
@click.option("--device-inputs", type=click.Path(dir_okay=False), help=".npy of samples for the device run. "
              "[default: 32 seeded random samples of the model's input shape]")
@click.option("--tokenizer", "tokenizer", default="auto", show_default=True, metavar="auto|none|bytes|FILE",
              help="A text model's device tokenizer, whose tables flash holds beside the file: auto reads the "
              "tokenizer.json a build writes beside its model, when there is one; none counts the file alone; bytes "
              "is the byte tokenizer (no tables); FILE names the student's tokenizer.json.")
@click.option("--verbose", is_flag=True, help="Show the runtimes' own log lines (LiteRT, absl) instead of dropping "
              "them.")
@user_errors
@third_party_to_log
def profile_cmd(model, target, runs, warmup, json_out, device_url, device_inputs, tokenizer):
    """Profile any .onnx or .tflite file for a target: exact cost (MACs, weight bytes, activation arena), latency
    measured on this machine with the real runtime (and TFLite Micro for int8 TFLite), the target estimate with its
    model, and fit checks (flash, RAM, operators, precision). Every figure says how it was obtained."""
    from pathlib import Path

    from edgedistill.profile.run import profile_model
    from edgedistill.util import write_json

    if device_url is not None:
        _check_device_url(device_url)
    if json_out and not Path(json_out).resolve().parent.is_dir():  # before the timing runs, not after them
        import errno

        raise FileNotFoundError(errno.ENOENT, "no such folder", str(Path(json_out).resolve().parent))
    rep = profile_model(Path(model), target, runs=runs, warmup=warmup, tokenizer=tokenizer)
    from edgedistill.device.show import echo_device, profile_on_device, target_threads

    if device_url:
        rep["device"] = profile_on_device(device_url, Path(model), device_inputs, target_threads(target), runs,
                                           warmup)
    print_profile(rep, click.echo)
    if device_url:
        echo_device(rep["device"])
    if json_out:
        write_json(Path(json_out), rep)
    if rep.get("fits") is False:  # every figure is printed and saved above; the verdict decides the exit status
        click.echo(f"  {rep['verdict']}", err=True)
        sys.exit(RUN_FAILED)
    if device_url and (rep["device"]["status"] != "measured" or rep["device"]["parity"].get("passed") is False):
        sys.exit(RUN_FAILED)  # the host figures are printed and saved; the device part the user asked for failed


@main.command("build")
@build_options
@user_errors
@third_party_to_log
def build_cmd(budget_text, device_url, quiet, **options):
    """Build a deployable student for a target: search under the budget, distill (float, then QAT int8), export
    ONNX and TFLite, prove parity on the real runtimes, profile, report, and gate. With no --data/--teacher it builds
    the built-in Fashion-MNIST example. Re-running with nothing changed (or only a budget that picks the same
    student) only re-checks; an interrupted build resumes. Exit code: 0 when the gate passes, 1 when it fails (or parity fails), 2 when an input or
    option is refused (nothing is trained)."""
    from edgedistill.api import build
    from edgedistill.config import load_config

    if device_url is not None:  # refused before anything is trained (a device that fails later is a warning)
        _check_device_url(device_url)
    overrides = build_overrides(options)
    keep_log_in(overrides["out"])
    config = load_config(options["config_file"], overrides, flag_namer(click.get_current_context().command))
    from edgedistill.budget import Budget
    from edgedistill.targets import load_target

    for note in Budget.parse(budget_text or "").looser_than(load_target(config.target)):
        click.echo(f"note: {note}", err=True)
    res = build(config, budget_text, show_progress=not quiet, device=device_url or None)
    if res is None:  # a rank other than 0 of a distributed build: rank 0 reports
        return
    c = res.search.chosen
    click.echo(f"student: {c.arch.describe()}, {c.params:,} parameters ({res.search.rule}); "
               f"{_rerun_words(res) if res.reused else 'built'} -> {res.out_dir}")
    if res.task == "causal-lm":  # metrics.json and report.md, no report.json (pipeline/lm_build.py)
        print_distill_summary(json.loads((res.out_dir / "metrics.json").read_text()), res.out_dir, "build")
        sys.exit(0 if res.verdict.passed else RUN_FAILED)
    rep = json.loads((res.out_dir / "report.json").read_text())
    click.echo(f"report: {res.out_dir / 'report.html'} (and report.md, report.json)")
    from edgedistill.report.render import headline

    for k, v in headline(rep):
        click.echo(f"  {k}: {v}")
    print_warnings(rep.get("warnings", []))  # as distill prints them (e.g. distillation lost to the twin)
    if rep.get("device"):
        from edgedistill.device.show import echo_device

        echo_device(rep["device"])
    from edgedistill.gate import markdown

    click.echo(markdown(res.verdict))
    sys.exit(0 if res.verdict.passed else RUN_FAILED)


def _rerun_words(res) -> str:
    if res.rebudgeted:
        return "the same student under the new budget: nothing retrained, re-checked only"
    return "nothing changed: re-checked only"


@main.command("search")
@click.option("--target", default="android", show_default=True, help="Target whose flash / RAM limits apply.")
@click.option("--budget", "budget_text", help="Tighten the limits: flash=64KiB,ram=128KiB,macs=2M,latency=5ms "
              "(latency: the target's int8 estimate per candidate). On a microcontroller the model gets a quarter "
              "of the flash by default; flash=... sets its share, up to the whole flash (a larger value is capped).")
@click.option("--data", default="builtin:fashion-mnist", show_default=True, help="Data (only its shape is used).")
@click.option("--teacher", "teacher_paths", multiple=True, help="The teacher `build` would use (repeatable for an "
              "ensemble): caps the student at half the largest one's parameters, as `build` does (without it, this "
              "search has no such cap).")
@click.option("--family", "families", multiple=True, help="Restrict to these student families (repeatable).")
@click.option("--all", "show_all", is_flag=True, help="List every candidate, not only the ten largest that fit.")
@text_field_options
@user_errors
def search_cmd(target, budget_text, data, teacher_paths, families, show_all, text_field, label_field):
    """Cost every candidate student for the data's shape and choose the largest that fits the budget (no training).
    An infeasible budget fails here, naming the limit and the smallest budget that would work."""
    from edgedistill.budget import Budget
    from edgedistill.data import kind_of, read_dataset
    from edgedistill.students.search import search
    from edgedistill.targets import load_target

    raw = read_dataset(data, text_field, label_field)
    profile = load_target(target)
    user = Budget.parse(budget_text or "")
    budget = Budget.for_target(profile, user)
    for note in user.looser_than(profile):
        click.echo(f"note: {note}")
    from edgedistill.data.text import TextCorpus

    if isinstance(raw, TextCorpus):  # the search's student reads UTF-8 bytes (build may cut a teacher's vocabulary)
        from edgedistill.data.text_encode import encode_corpus
        from edgedistill.data.tokenizers import ByteTokenizer
        from edgedistill.pipeline.text_inputs import MAX_LENGTH_CAP

        raw = encode_corpus(raw, ByteTokenizer(), cap=MAX_LENGTH_CAP)
    from edgedistill.data.labels import fit_label_map  # labels 1..K are K classes, -1 marks unlabelled samples

    num_classes = fit_label_map([raw.train.y], raw.class_names, raw.source).num_classes if raw.train.labeled else 2
    max_params = None
    if teacher_paths:
        from edgedistill.pipeline.search import teacher_params
        from edgedistill.teachers import TeacherSpec, load_teacher

        max_params = teacher_params([load_teacher(TeacherSpec(p)) for p in teacher_paths]) // 2
    res = search(kind_of(raw.train.x), tuple(raw.train.x.shape[1:]), num_classes, budget, list(families) or None,
                 max_params=max_params, target=profile,
                 vocab_size=None if raw.text is None else raw.text.tokenizer.vocab_size)
    rows = res.candidates if show_all else sorted((c for c in res.candidates if c.fits), key=lambda c: -c.params)[:10]
    limits = ", ".join([f"{name} <= {v:,.0f}" for name, v in (
        ("flash", budget.flash_bytes), ("RAM", budget.ram_bytes), ("MACs", budget.macs), ("params", max_params))
        if v is not None] + ([f"latency <= {budget.latency_ms:g} ms (estimated on {profile.name})"]
                             if budget.latency_ms is not None else [])) or "no limits"
    click.echo(f"{len(res.candidates)} candidates, {sum(c.fits for c in res.candidates)} fit ({limits}); "
               f"rule: {res.rule}")
    if max_params is None:
        click.echo("note: `build` also caps the student at half its teacher's parameters; pass --teacher to apply it.")
    if budget.min_accuracy is not None or budget.max_accuracy_drop is not None:
        click.echo("note: accuracy limits cannot be judged before training; the gate checks them after the build.")
    if raw.text is not None:
        click.echo("note: this search costs byte-tokenizer students (no tokenizer tables in flash); `build` picks the "
                   "teacher's vocabulary instead for passages (--tokenizer auto: e.g. builtin:docs), whose tables it "
                   "adds to every file, so it may choose a smaller student than this list shows.")
    lat = any(c.latency_ms is not None for c in rows)
    name_w = max([len("student")] + [len(c.arch.describe()) for c in rows]) + 2  # mobilenetv1(width=32, depth=5)
    click.echo(f"{'student':<{name_w}}{'params':>11}{'MACs':>12}{'file B':>11}{'RAM B':>10}"
               + (f"{'est. ms':>10}" if lat else "") + "  fits")
    for c in rows:
        mark = "<- chosen" if c is res.chosen else ("yes" if c.fits else "no: " + ",".join(c.violations))
        ms = (f"{c.latency_ms:>10.3g}" if c.latency_ms is not None else f"{'n/a':>10}") if lat else ""
        click.echo(f"{c.arch.describe():<{name_w}}{c.params:>11,}{c.macs:>12,}{c.file_bytes:>11,}"
                   f"{c.ram_bytes:>10,}{ms}  {mark}")


@main.command("gate")
@click.argument("report", type=click.Path())
@click.option("--budget", "budget_text", help="Tighten the target's limits, e.g. flash=64KiB,ram=128KiB,latency=5ms,"
              "macs=2M,accuracy=90%,drop=1.0 (KB/MB = powers of 1000, KiB/MiB = powers of 1024); for a causal-LM "
              "run's metrics.json: perplexity=40,int8_rise=2%,top1=30%,top3=50%,tokens_per_s=50,latency=20ms,"
              "macs=2M (per token),flash=...,ram=....")
@click.option("--baseline", type=click.Path(), help="An older report.json (or its run directory): fail on "
              "regressions.")
@click.option("--tolerance", help="Allowed regression vs --baseline: accuracy=POINTS,latency=PCT%,size=PCT%. "
              "[default: accuracy=0.5,latency=10%,size=5%]")
@click.option("--junit", type=click.Path(dir_okay=False), help="Write JUnit XML here (CI test reports).")
@click.option("--summary", type=click.Path(dir_okay=False),
              help="Append the Markdown summary to this file, keeping what it holds (e.g. $GITHUB_STEP_SUMMARY); "
              "created when missing.")
@user_errors
def gate_cmd(report, budget_text, baseline, tolerance, junit, summary):
    """Judge a run (its output directory, its report.json, or a causal-LM run's metrics.json) against its target's
    limits and your budget; exit 0 if every check passes, 1 if not, 2 when an input is refused (a missing report, a
    budget typo)."""
    from pathlib import Path

    from edgedistill.budget import Budget
    from edgedistill.gate import Tolerance, gate, junit_xml, load_report, markdown, report_budget
    from edgedistill.gate_lm_file import is_lm_run, run_file

    for name, value in (("--junit", junit), ("--summary", summary)):
        if value is not None and not value.strip():
            raise ConfigError(f"{name} was given an empty path (an unset variable such as $GITHUB_STEP_SUMMARY "
                              "outside CI?); name a file or leave the option out.")
    user = Budget.parse(budget_text or "")
    report, baseline = run_file(Path(report)), (run_file(Path(baseline)) if baseline else None)
    if is_lm_run(Path(report)):
        verdict = _lm_verdict(Path(report), user, baseline)
    else:
        rep = load_report(Path(report))
        if baseline and is_lm_run(Path(baseline)):
            raise ConfigError(f"--baseline {baseline} is a causal-LM run's metrics.json, and {report} a classifier "
                              "run's report: a baseline must be an earlier run of the same kind (a classifier's "
                              "report.json or its run directory).")
        base = load_report(Path(baseline)) if baseline else None
        verdict = gate(rep, report_budget(rep).tighten(user), base, Tolerance.parse(tolerance))
    md = markdown(verdict)
    click.echo(md)
    if junit:
        Path(junit).write_text(junit_xml(verdict))
    if summary:
        with open(summary, "a") as fh:
            fh.write(md)
    sys.exit(0 if verdict.passed else RUN_FAILED)


def _lm_verdict(path, user, baseline):
    """The causal-LM gate (edgedistill.gate_lm) on a run's metrics.json under the budget it was gated under,
    tightened by --budget."""
    from edgedistill.gate_lm import lm_gate
    from edgedistill.gate_lm_file import lm_run_budget, load_lm_metrics

    if baseline:
        raise ConfigError(f"--baseline compares two classifier reports; {path} is a causal-LM run, whose gate has no "
                          "regression checks yet. Leave --baseline out and set the limits with --budget "
                          "(perplexity=, top1=, tokens_per_s=, flash=, ...).")
    metrics = load_lm_metrics(path)
    return lm_gate(metrics, lm_run_budget(metrics).tighten(user))


@main.group()
def targets():
    """Target profiles (targets/*.toml): what each device class runs and can do, with a source for every figure."""


@targets.command("list")
@user_errors
def targets_list():
    """One line per known target."""
    from edgedistill.targets import load_profile_file, profile_files

    for name, path in profile_files().items():
        p = load_profile_file(path)
        ram = f"{p.ram_bytes / 1024:,.0f} KiB RAM" if p.ram_bytes else "RAM unconstrained"
        click.echo(f"{name:<12} {p.kind:<12} {p.runtime:<12} {'/'.join(p.precisions):<14} {ram:<22} {p.description}")


@targets.command("show")
@click.argument("name")
@user_errors
def targets_show(name):
    """Every field of one target with its source."""
    from edgedistill.targets import field_text, load_target

    p = load_target(name)
    for field in type(p).model_fields:
        if field == "sources":
            continue
        click.echo(f"{field:<30} {field_text(p, field)}")
        if field in p.sources:
            click.echo(f"{'':<30} source: {p.sources[field]}")


@main.command("list")
@click.argument("what", required=False,
                type=click.Choice(["losses", "students", "datasets", "teachers", "ensembles", "optimizers",
                                   "calibration", "exporters", "runtimes"]))
def list_(what):
    """Show what is registered (losses, student families, built-in data sets, teacher formats ...)."""
    from edgedistill.data import BUILTIN_DATASETS
    from edgedistill.data.builtin_lm import LM_DATASETS
    from edgedistill.data.builtin_text import TEXT_DATASETS
    from edgedistill.distill.losses import SOFT_LOSSES
    from edgedistill.distill.optim import OPTIMIZERS, SCHEDULES
    from edgedistill.export.registry import EXPORTERS
    from edgedistill.quantize.ranges import RANGE_METHODS
    from edgedistill.runtimes import RUNTIMES
    from edgedistill.students import STUDENT_FAMILIES
    from edgedistill.students.knobs import FAMILY_KNOBS, describe_knobs
    from edgedistill.teachers import ENSEMBLE_METHODS, TEACHER_FORMATS

    sections = {
        "losses": SOFT_LOSSES, "students": STUDENT_FAMILIES,
        "datasets": sorted([*BUILTIN_DATASETS, *TEXT_DATASETS, *LM_DATASETS], key=lambda e: e.name),
        "teachers": TEACHER_FORMATS, "ensembles": ENSEMBLE_METHODS, "optimizers": OPTIMIZERS,
        "calibration": RANGE_METHODS, "exporters": EXPORTERS, "runtimes": RUNTIMES,
    }
    for name, reg in sections.items():
        if what and name != what:
            continue
        click.echo(f"{name}:")
        rows = [(e.name, e.summary) for e in reg]
        if name == "optimizers":
            rows += [(f"schedule {e.name}", e.summary) for e in SCHEDULES]
        width = max([14] + [len(n) for n, _ in rows])  # one summary column per section, however long a name
        for n, summary in rows:
            click.echo(f"  {n:<{width}} {summary}")
            if name == "students" and n in FAMILY_KNOBS:  # a family's own knobs, in --student's spelling
                click.echo(f"  {'':<{width}}   knobs: {describe_knobs(n)}")


if __name__ == "__main__":  # python -m edgedistill.cli (python -m edgedistill works too)
    main()
