"""The option sets of the two training commands (`distill`, `build`) and how their values become config overrides.

Kept apart from cli.py so the commands there stay short: each option here is a field of edgedistill.config, and
each `*_overrides` function maps the parsed values onto the config's tables (None = not given, the config decides).
"""

from __future__ import annotations

import click

from edgedistill.cli_args import float_or_auto, parse_augment, parse_feature, parse_formats, parse_student
from edgedistill.run_names import build_out

# what --data reads, said once for both commands (edgedistill.data.sources decides by the argument's form)
DATA_FORMS = ("builtin:NAME (digits, fashion-mnist; langid, docs: texts; docs-lm: a causal-LM corpus), a .npz file (x, optional y, x_test, "
              "y_test), a folder of x.npy / y.npy (read memory-mapped), a directory of IDX files, an image folder "
              "(one sub-folder per class), or texts: a .jsonl / .csv / .tsv file (fields text and label; a null / "
              "empty label: unlabelled), a folder of .txt files (one sub-folder per class, unlabeled/ allowed), or a "
              "folder holding train.jsonl|csv|tsv and optionally test.* (its test split).")
TEXT_FIELD_OPTIONS = [
    click.option("--text-field", help="Text: the JSON field / CSV column that holds each text; a name the file does "
                 "not have is refused, listing the fields it has. [default: text]"),
    click.option("--label-field", help="Text: the JSON field / CSV column that holds each label (a null / empty value: "
                 "an unlabelled text); named, it must occur in the file. [default: label, or none: every text "
                 "unlabelled]"),
]
MAX_TRAIN_HELP = "Use at most this many training samples (a seeded subset; validation and test are not cut)."
WORKERS_HELP = ("DataLoader worker processes that build training batches (reading, converting to float32, augmenting) "
                "while the model steps; the batches, and so every result, are the same with any number. [default: "
                "auto: 0 for samples in memory, 2 for a memory-mapped folder of .npy files]")
DATA_FORM_HELP = ("An .npz archive or an image folder: read whole into memory (memory), or convert it once, with "
                  "progress, into a memory-mapped folder of .npy files in the cache, reused by later runs (mapped). "
                  "--npz is the former name. [default: auto: mapped past 1 GiB of arrays, or of images decoded to "
                  "float32]")
MAX_TEST_HELP = ("Score at most this many test samples (a seeded subset, at least 100): quicker evaluation and "
                 "parity on a large test split; the report's intervals widen accordingly. [default: every test sample]")

DISTILL_OPTIONS = [
    click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML or JSON config; flags override it."),
    click.option("--data", help=f"Data: {DATA_FORMS} [default: builtin:digits]"),
    click.option("--transfer", help="Separate transfer set to distill on (.npz etc.; labels optional), or "
                 "'synthetic[:samples=2048,steps=200,range=0:1]' for data-free distillation: inputs synthesized from "
                 "the teacher's BatchNorm statistics, no real training sample used (not for text: give unlabelled "
                 "texts)."),
    click.option("--max-train", type=int, help=MAX_TRAIN_HELP),
    click.option("--max-test", type=int, help=MAX_TEST_HELP),
    click.option("--workers", type=int, help=WORKERS_HELP),
    click.option("--data-form", "--npz", "data_form", type=click.Choice(["auto", "memory", "mapped"]),
                 help=DATA_FORM_HELP),
    *TEXT_FIELD_OPTIONS,
    click.option("--max-length", type=int, help="Text: tokens per sample. [default: the 99th percentile of the "
                 "training texts' token counts, at most 256; truncation is counted in the report]"),
    click.option("--tokenizer", type=click.Choice(["auto", "bytes", "vocab"]), help="Text: how the student tokenizes: "
                 "bytes (UTF-8, no tokenizer on the device), vocab (the teacher's vocabulary cut to the tokens the "
                 "data uses). [default: auto: vocab when the teacher has a tokenizer and the median training text has at least 3 words (sentences, passages), else bytes (words, names, codes), on every target]"),
    click.option("--teacher-tokenizer", type=click.Path(dir_okay=False),
                 help="Text: the tokenizer.json of an ONNX / TFLite text teacher. [default: the one beside the model]"),
    click.option("--teacher", "teachers", multiple=True, help="Teacher model: .onnx, .tflite, .pt2, TorchScript, "
                 "weights (.safetensors/.pt, with --teacher-factory) or builtin:NAME. Repeat for an ensemble. "
                 "[default: the built-in teacher of a built-in data set]"),
    click.option("--teacher-factory", help="'package.module:function' (an importable module) or "
                 "'path/to/file.py:function' that builds the teacher nn.Module for weights files."),
    click.option("--teacher-format", type=click.Choice(["auto", "torch", "torchscript", "exported", "onnx", "tflite"]),
                 help="Override format detection for every --teacher."),
    click.option("--teacher-input", type=click.Choice(["raw", "normalized"]),
                 help="Feed teachers the raw samples (default) or samples normalised with train statistics."),
    click.option("--teacher-output", help="Which output of a multi-output teacher holds the class scores: NAME or INDEX."),
    click.option("--teacher-allow-pickle", is_flag=True, default=None,
                 help="Allow unpickling arbitrary objects from a torch weights file (only for files you trust)."),
    click.option("--teacher-allow-remote-code", is_flag=True, default=None,
                 help="Load a transformers folder whose config needs the model's own Python code (only for folders "
                 "you trust)."),
    click.option("--ensemble", type=click.Choice(["arithmetic", "geometric"]),
                 help="Combine several teachers by mean of probabilities or of log-probabilities. [default: arithmetic]"),
    click.option("--student", help="Student family and knobs, e.g. cnn, dscnn:width=8, mlp:width=32,depth=2. "
                 "[default: chosen from the data's shape, width 16, depth 3]"),
    click.option("--loss", type=click.Choice(["kd", "dkd", "kd-std", "mse", "auto"]),
                 help="Soft loss: Hinton KD, decoupled KD, KD on standardized logits, logit MSE, or auto (picked with T "
                 "and alpha on the validation split). [default: kd]"),
    click.option("--augment", "augment_text", help="Batch augmentation, e.g. shift=2,hflip,mixup=0.2 (arrays) or "
                 "token_dropout=0.1,span_mask=0.15 (texts). With a teacher, "
                 "the teacher then runs on every augmented batch (function matching); the twin sees the same batches. "
                 "[default: auto: below 10,000 transfer samples the teacher's alone, mixup 1 for arrays and token "
                 "dropout 0.1 for texts (the twin trains without it), else none; 'none' or mixup=0 turns it off]"),
    click.option("--feature", "features", multiple=True, help="Add a feature / relation term (float phase; torch "
                 "teachers), e.g. loss=hint,student=body.1,teacher=layer2,weight=0.5. Losses: hint, cosine, at, "
                 "rkd_distance, rkd_angle, sp; for text students cosine (any tokenizer) and minilm (transformer student with "
                 "--tokenizer vocab), e.g. loss=cosine,weight=1; causal LM: loss=cosine[,weight=B] alone (last hidden states). Repeat to compose; a wrong layer name lists the "
                 "available ones."),
    click.option("--scheme", type=click.Choice(["offline", "born-again", "mutual"]), help="offline: learn from the "
                 "frozen teacher; born-again: then --generations more students, each taught by the previous one; "
                 "mutual: --peers students train together and match each other. [default: offline]"),
    click.option("--generations", type=int, help="Born-again generations after the first. [default: 1]"),
    click.option("--peers", type=int, help="Students trained together by --scheme mutual. [default: 2]"),
    click.option("--online-teacher", is_flag=True, default=None, help="With --scheme mutual: the (torch) teacher trains "
                 "along with the students at a tenth of their learning rate, instead of staying frozen."),
    click.option("--temperature", "-T", help="Softmax temperature, or 'auto' (searched on validation; causal LM, "
                 "without --feature / --seq-kd: token KD's T among 1, 2, 4 (reference 2) in three trials of 50 % of the "
                 "steps, then token KD, + hidden-state cosine and + sequence-level KD at that T in three of 20 %, "
                 "on validation perplexity: 210 % more steps in all; a fixed T runs no trials). "
                 "[default: auto]"),
    click.option("--alpha", help="Weight of the soft loss against hard labels (0..1), or 'auto'. [default: auto]"),
    click.option("--tune-epochs", type=int, help="Epochs per auto-tuning trial. [default: epochs // 3]"),
    click.option("--epochs", type=int, help="Training epochs for the student and its twin. [default: sized from the "
                 "number of transfer samples: at least 6,000 optimizer steps or 400,000 sample passes, 10 epochs at batch 128 on a large set]"),
    click.option("--steps", type=int, help="Optimizer steps in all, exactly, instead of --epochs: the run stops "
                 "mid-epoch if need be, the learning rate schedule ends there, the twin takes the same steps and QAT "
                 "0.3 × them."),
    click.option("--batch-size", type=int, help="[default: 32 below 1,024 transfer samples, 64 below 4,096, else 128]"),
    click.option("--lr", type=float, help="Peak learning rate. [default: 0.003]"),
    click.option("--optimizer", type=click.Choice(["adamw", "sgd"]), help="[default: adamw]"),
    click.option("--schedule", type=click.Choice(["cosine", "onecycle", "constant"]), help="[default: cosine]"),
    click.option("--weight-decay", type=float, help="[default: 0.0001]"),
    click.option("--seed", type=int, help="Seed for initialisation and data order. [default: 0]"),
    click.option("--threads", type=int, help="Torch CPU threads. [default: all cores]"),
    click.option("--task", type=click.Choice(["auto", "classification", "causal-lm"]), help="What the teacher "
                 "does: classification, or causal-lm (a next-token language model on plain text: a .txt file one "
                 "document a line, a folder of .txt files, JSONL text). [default: auto: causal-lm for a transformers "
                 "folder whose config.json is a causal LM]"),
    click.option("--seq-kd", type=int, help="Causal LM: sequence-level KD (Kim & Rush 2016): add this many greedy "
                 "teacher continuations of seeded training prompts (a quarter window each) as extra training text; "
                 "the no-teacher twin never trains on them. Any N, 0 (off) included, turns the automatic choice of "
                 "--temperature auto off. [default: off, unless that choice picks it]"),
    click.option("--top-k", type=int, help="Causal LM: the teacher's largest logits cached per position. [default: "
                 "32]"),
    click.option("--qat", is_flag=True, default=None, help="After float distillation, distill on quantization-aware "
                 "(int8), export ONNX and TFLite (float and int8) and check parity on onnxruntime, LiteRT, TFLite Micro."),
    click.option("--qat-epochs", type=int, help="QAT epochs (at lr × 0.1). [default: 3 with --epochs, else 0.3 × the "
                 "sized epochs, at least 3]"),
    click.option("--qat-steps", type=int, help="QAT optimizer steps in all, exactly, instead of --qat-epochs. "
                 "[default with --steps: 0.3 × them]"),
    click.option("--calibration", type=click.Choice(["minmax", "percentile", "mse"]),
                 help="How activation ranges are chosen from the calibration set. [default: minmax]"),
    click.option("--calibration-size", type=int, help="Training samples used for calibration. [default: 1000]"),
    click.option("--formats", help="Export formats, comma-separated: onnx,tflite. [default: both]"),
    click.option("--kv-cache", "kv_cache", is_flag=True, default=None, help="Causal LM: also export the int8 "
                 "KV-cache decoder step (student_int8_kv.tflite / .onnx: one token per call, the key / value caches "
                 "as int8 inputs and outputs), check that its logits equal the full-window file's at every position "
                 "on every runtime, and time its tokens/s beside the window step's."),
    click.option("--target", help="With --qat: target profile for the report's estimate and fit checks "
                 "(edgedistill targets list). [default: cpu]"),
    click.option("--no-baseline", is_flag=True, default=None, help="Skip the no-teacher twin (not recommended)."),
    click.option("--cache-dir", type=click.Path(file_okay=False),
                 help="Teacher-logit cache. [default: $EDGEDISTILL_CACHE or ~/.cache/edgedistill/logits]"),
    click.option("--out", type=click.Path(file_okay=False), help="Output directory. [default: runs/distill-DATA, "
                 "plus -TEACHER... when not the data's built-in teacher, plus -int8 with --qat]"),
    click.option("--overwrite", is_flag=True, help="Replace a non-empty output directory (only after success)."),
    click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
    click.option("--verbose", is_flag=True, help="Show third-party log lines (otherwise kept in OUT/third_party.log)."),
]

BUILD_OPTIONS = [
    click.option("--target", default="android", show_default=True, help="Target profile (edgedistill targets list)."),
    click.option("--budget", "budget_text", help="Tighten the target's limits: flash=64KiB,ram=128KiB,latency=5ms,"
                 "macs=2M,accuracy=90%,drop=1.0 (a causal LM: tokens_per_s=50). On a microcontroller the model gets a quarter of the flash by "
                 "default; flash=... sets its share, up to the whole flash (a larger value is capped there)."),
    click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML or JSON config; flags override it."),
    click.option("--data", help=f"Training data: {DATA_FORMS} [default: builtin:fashion-mnist]"),
    click.option("--teacher", "teachers", multiple=True, help="Teacher model(s), as for distill. [default: built-in]"),
    click.option("--teacher-factory", help="'package.module:function' or 'path/to/file.py:function' for "
                 "weights-only teacher files."),
    click.option("--family", help="Restrict the search to one student family. [default: by the data's shape]"),
    click.option("--task", type=click.Choice(["auto", "classification", "causal-lm"]), help="What the teacher does: "
                 "classification, or causal-lm (a decoder student searched under the budget, tokens_per_s=N a "
                 "floor on its decoding speed). [default: auto: causal-lm for a transformers folder whose config.json "
                 "is a causal LM]"),
    click.option("--max-train", type=int, help=MAX_TRAIN_HELP + " [default: 30,000 for the built-in example, else "
                 "every sample]"),
    click.option("--max-test", type=int, help=MAX_TEST_HELP),
    click.option("--workers", type=int, help=WORKERS_HELP),
    click.option("--data-form", "--npz", "data_form", type=click.Choice(["auto", "memory", "mapped"]),
                 help=DATA_FORM_HELP),
    *TEXT_FIELD_OPTIONS,
    click.option("--max-length", type=int, help="Text: tokens per sample. [default: the 99th percentile of the "
                 "training texts' token counts, at most 256; truncation is counted in the report]"),
    click.option("--tokenizer", type=click.Choice(["auto", "bytes", "vocab"]), help="Text: how the student tokenizes: "
                 "bytes (UTF-8, no tokenizer on the device), vocab (the teacher's vocabulary cut to the tokens the "
                 "data uses). [default: auto: vocab when the teacher has a tokenizer and the median training text has at least 3 words (sentences, passages), else bytes (words, names, codes), on every target]"),
    click.option("--teacher-tokenizer", type=click.Path(dir_okay=False),
                 help="Text: the tokenizer.json of an ONNX / TFLite text teacher. [default: the one beside the model]"),
    click.option("--epochs", type=int, help="Float distillation epochs. [default: 4, more where 4 are fewer than 800 "
                 "optimizer steps; the built-in example: 4 on 30,000 training samples, then 1 QAT epoch on 20,000: "
                 "about 3.5 minutes on 2 idle cores]"),
    click.option("--steps", type=int, help="Float optimizer steps in all, exactly, instead of --epochs (the run stops "
                 "mid-epoch if need be; the twin takes the same steps)."),
    click.option("--qat-epochs", type=int, help="QAT epochs. [default: 1]"),
    click.option("--qat-steps", type=int, help="QAT optimizer steps in all, exactly, instead of --qat-epochs. "
                 "[default with --steps: 0.3 × them]"),
    click.option("--temperature", "-T", help="Softmax temperature, or 'auto' (chosen on validation, as for "
                 "distill; a fixed T runs no trials and so makes a causal-LM build much shorter). [default: auto]"),
    click.option("--alpha", help="Weight of the soft loss against hard labels (0..1), or 'auto'. [default: auto for "
                 "a classifier, 0.5 for a causal LM]"),
    click.option("--threads", type=int, help="Torch CPU threads. [default: all cores]"),
    click.option("--seed", type=int, help="[default: 0]"),
    click.option("--kv-cache", "kv_cache", is_flag=True, default=None, help="Causal LM: also export the int8 "
                 "KV-cache decoder step (student_int8_kv.tflite / .onnx: one token per call, the key / value caches "
                 "as int8 inputs and outputs), check that its logits equal the full-window file's at every position "
                 "on every runtime, and time its tokens/s beside the window step's."),
    click.option("--out", type=click.Path(file_okay=False), help="Build directory. [default: runs/build-TARGET for "
                 "the built-in example, runs/build-TARGET-DATA with --data (e.g. runs/build-cortex-m4-langid), so "
                 "builds of other data never replace one another]"),
    click.option("--device", "device_url", help="Measure the int8 TFLite file on a device (local, ssh://..., adb://...; "
                 "see `edgedistill profile --help`); its latency then feeds the gate (a causal LM: the window step's "
                 "tokens/s). A device failure marks the device figures missing in the report."),
    click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
    click.option("--verbose", is_flag=True, help="Show third-party log lines (otherwise kept in OUT/third_party.log)."),
]


def _apply(options):
    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


distill_options = _apply(DISTILL_OPTIONS)
build_options = _apply(BUILD_OPTIONS)
text_field_options = _apply(TEXT_FIELD_OPTIONS)


# config paths whose flag is not `--` and the path's last key (kd.temperature: --temperature), first match wins
_FLAGS = (("data.source", "--data"), ("teachers.path", "--teacher"), ("teachers", "--teacher-"), ("kd.features",
          "--feature"), ("baseline", "--no-baseline"), ("student.tokenizer", "--tokenizer"), ("student", "--student"),
          ("augment", "--augment"))


def flag_namer(command: click.Command):
    """A validation error's path (("kd", "temperature"), ("teachers", 0, "factory")) -> the flag of `command` that
    sets it (--temperature, --teacher-factory), or None where no flag of `command` does (a build default), for
    edgedistill.config.load_config's messages."""
    opts = {o for p in command.params for o in getattr(p, "opts", [])}

    def flag_of(loc: tuple) -> str | None:
        keys = [str(k) for k in loc if not isinstance(k, int)]
        path = ".".join(keys)
        flag = next((f for p, f in _FLAGS if path == p or path.startswith(p + ".")), None) if keys else None
        if flag == "--teacher-":  # the teacher options shared by every --teacher: --teacher-factory, ...
            flag = "--teacher-" + keys[1].replace("_", "-") if len(keys) > 1 else "--teacher"
        elif flag is None and keys:
            flag = "--" + keys[-1].replace("_", "-")
        if flag == "--student" and flag not in opts:  # build chooses the family alone
            flag = "--family"
        return flag if flag in opts else None

    return flag_of


def _with_tokenizer(student: dict | None, tokenizer: str | None) -> dict | None:
    return student if tokenizer is None else {**(student or {}), "tokenizer": tokenizer}


def distill_overrides(o: dict) -> dict:
    """`distill`'s parsed option values -> nested config overrides."""
    teacher_cfgs = None
    if o["teachers"]:
        common = {"factory": o["teacher_factory"], "format": o["teacher_format"], "input": o["teacher_input"],
                  "allow_pickle": o["teacher_allow_pickle"], "output": o["teacher_output"],
                  "allow_remote_code": o["teacher_allow_remote_code"], "tokenizer": o["teacher_tokenizer"]}
        teacher_cfgs = [{"path": t, **{k: v for k, v in common.items() if v is not None}} for t in o["teachers"]]
    return {
        "data": {"source": o["data"], "transfer": o["transfer"], "max_train": o["max_train"],
                 "max_test": o["max_test"], "workers": o["workers"], "data_form": o["data_form"],
                 "max_length": o["max_length"],
                 "text_field": o["text_field"],
                 "label_field": o["label_field"]},
        "teachers": teacher_cfgs,
        "ensemble": o["ensemble"],
        "student": _with_tokenizer(parse_student(o["student"]), o["tokenizer"]),
        "augment": parse_augment(o["augment_text"]),
        "kd": {"loss": o["loss"], "temperature": float_or_auto(o["temperature"], "--temperature"),
               "alpha": float_or_auto(o["alpha"], "--alpha"),
               "tune_epochs": o["tune_epochs"], "features": [parse_feature(f) for f in o["features"]] or None,
               "scheme": o["scheme"], "generations": o["generations"], "peers": o["peers"],
               "online_teacher": o["online_teacher"], "top_k": o["top_k"], "seq_kd": o["seq_kd"]},
        "train": {**{k: o[k] for k in ("epochs", "steps", "batch_size", "lr", "optimizer", "schedule", "weight_decay",
                                       "seed", "threads")},
                  # --steps on the command line replaces a config file's epochs (flags override the file)
                  **({"epochs": "auto"} if o["steps"] is not None and o["epochs"] is None else {})},
        "quant": {"qat": o["qat"], "qat_epochs": o["qat_epochs"], "qat_steps": o["qat_steps"],
                  "calibration": o["calibration"],
                  "calibration_size": o["calibration_size"],
                  "formats": parse_formats(o["formats"]), "kv_cache": o["kv_cache"]},
        "baseline": False if o["no_baseline"] else None,
        "target": o["target"],
        "task": o["task"],
        "cache_dir": o["cache_dir"],
        "out": o["out"],
    }


BUILD_EPOCHS = 4  # build's float budget: 4 epochs (the built-in example: 30,000 samples, 940 steps) ...
BUILD_MIN_STEPS = 800  # ... and at least 800 optimizer steps: 4 epochs of builtin:docs are 272 (see schedule.py)


def _build_epochs(epochs: int | None, steps: int | None, config_file: str | None, default: int):
    """build's epochs: the flag; else "auto" when steps are given (steps replace epochs, also a config file's); else
    the build default without a config file, or the file's own."""
    if epochs is not None:
        return epochs
    if steps is not None:
        return "auto"
    return None if config_file else default


def build_overrides(o: dict) -> dict:
    """`build`'s parsed option values -> nested config overrides (with no --data / --config: the built-in example,
    4 + 1 epochs on part of the training set, about 3.5 minutes on 2 idle cores)."""
    return {
        "data": {"source": o["data"] or ("builtin:fashion-mnist" if not o["config_file"] else None),
                 "max_train": o["max_train"] or (30000 if not (o["data"] or o["config_file"]) else None),
                 "max_test": o["max_test"], "workers": o["workers"], "data_form": o["data_form"],
                 "max_length": o["max_length"], "text_field": o["text_field"], "label_field": o["label_field"]},
        "teachers": [{"path": t, **({"factory": o["teacher_factory"]} if o["teacher_factory"] else {}),
                      **({"tokenizer": o["teacher_tokenizer"]} if o["teacher_tokenizer"] else {})}
                     for t in o["teachers"]] or None,
        "student": _with_tokenizer({"family": o["family"]} if o["family"] else None, o["tokenizer"]),
        "train": {"epochs": _build_epochs(o["epochs"], o["steps"], o["config_file"], BUILD_EPOCHS), "steps": o["steps"],
                  "seed": o["seed"], "threads": o["threads"],
                  **({"min_steps": BUILD_MIN_STEPS} if not (o["epochs"] or o["steps"] or o["config_file"]) else {})},
        "kd": {**({"tune_max_samples": 3000} if not o["config_file"] else {}),
               **({"temperature": float_or_auto(o["temperature"], "--temperature")}
                  if o["temperature"] is not None else {}),
               **({"alpha": float_or_auto(o["alpha"], "--alpha")} if o["alpha"] is not None else {})} or None,
        "quant": {"qat": True, "qat_epochs": _build_epochs(o["qat_epochs"], o["qat_steps"] or o["steps"], o["config_file"], 1),
                  "qat_steps": o["qat_steps"], "qat_max_samples": 20000 if not o["config_file"] else None,
                  "kv_cache": o["kv_cache"]},
        "target": o["target"],
        "task": o["task"],
        "out": o["out"] or build_out(o["target"], o["data"]),
    }
