"""Typed, validated configuration. Configs name registry keys and values; they never import or execute code
(a teacher factory is a 'module:function' string resolved only when the teacher is loaded)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Literal, Union

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgedistill.config_errors import errors_paragraph, takes_bool, wanted
from edgedistill.errors import ConfigError
from edgedistill.run_names import default_out

Auto = Literal["auto"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v, info):
        """pydantic reads true as 1 for a number: `temperature = true` in a TOML file trained at T = 1 without a
        word. A true / false where the setting is not a switch is refused."""
        if isinstance(v, bool) and not takes_bool(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"takes {wanted(cls.model_fields[info.field_name].annotation)}, not {str(v).lower()}")
        return v


class DataConfig(_Strict):
    source: str = Field("builtin:digits", description="builtin:NAME, a .npz file, an IDX directory or image folder")
    transfer: str | None = Field(None, description="optional separate (possibly unlabeled) transfer set (.npz ...)")
    val_fraction: float = Field(0.1, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="held out when the data has no test split")
    seed: int = 0
    max_train: int | None = Field(None, gt=0, description="use at most this many training samples")
    max_test: int | None = Field(None, ge=100, description="score at most this many test samples (a seeded subset; "
                                 "the intervals widen accordingly)")
    workers: Union[int, Auto] = Field("auto", description="DataLoader worker processes building training batches, "
                                      "or auto (0 for samples in memory, 2 for memory-mapped samples); changes no "
                                      "result")
    data_form: Literal["auto", "memory", "mapped"] = Field(
        "auto", validation_alias=AliasChoices("data_form", "npz"),
        description="an .npz or an image folder: read whole into memory, or convert it once into a memory-mapped "
                    ".npy folder in the cache (auto: past 1 GiB of arrays / of decoded float32 images); `npz` is the "
                    "former name")
    max_length: int | None = Field(None, ge=1, le=4096, description="text: tokens per sample (default: the 99th "
                                   "percentile of the training texts' token counts, at most 256)")
    text_field: str | None = Field(None, min_length=1, description="text: the JSON field / CSV column holding the "
                                   "text (default: text)")
    label_field: str | None = Field(None, min_length=1, description="text: the JSON field / CSV column holding the "
                                    "label; a field named here must occur in the file (default: label, optional)")

    @field_validator("workers")
    @classmethod
    def _workers(cls, v):
        if v != "auto" and not 0 <= int(v) <= 64:
            raise ValueError("workers must be in 0..64 (DataLoader worker processes) or 'auto'")
        return v


class TeacherConfig(_Strict):
    path: str = Field(description="model file, or builtin:NAME")
    format: Literal["auto", "torch", "torchscript", "exported", "onnx", "tflite", "transformers", "onnx-text",
                    "tflite-text"] = "auto"
    factory: str | None = Field(None, description="'package.module:function' or 'path/to/file.py:function' "
                                                 "building the nn.Module (weights files)")
    factory_kwargs: dict = Field(default_factory=dict)
    allow_pickle: bool = Field(False, description="allow unpickling arbitrary objects from a torch weights file")
    input: Literal["raw", "normalized"] = Field("raw", description="feed the teacher raw or train-normalised samples")
    output: str | None = Field(None, description="which output holds the class scores: its name or index "
                               "(default: the only output, or the one with one value per class)")
    allow_remote_code: bool = Field(False, description="load a transformers folder whose config needs the model's "
                                    "own code (only for folders you trust)")
    tokenizer: str | None = Field(None, description="a text teacher's tokenizer.json (default: the one in or beside "
                                  "the model)")


class StudentConfig(_Strict):
    """A registered family with width / depth, or your own model: `factory` ('path/file.py:function' or
    'package.module:function', called with num_classes (+ in_channels / input_shape if it takes them) and
    `factory_kwargs`). A relative file path is resolved against the current directory and stored absolute."""

    family: str = Field("auto", description="registered family name, auto (from the data's shape), or custom")
    width: int | None = Field(None, ge=1, le=1024, description="the family's width knob (default: the family's)")
    depth: int | None = Field(None, ge=1, le=12, description="the family's depth knob (default: the family's)")
    knobs: dict = Field(default_factory=dict, description="the family's own knobs besides width / depth, e.g. "
                        "transformer: heads, ffn, activation (relu, gelu, hardswish), pool (mean, first); "
                        "`edgedistill list students` shows each family's")
    factory: str | None = Field(None, description="your own student: 'path/file.py:function' or 'pkg.mod:function'")
    factory_kwargs: dict = Field(default_factory=dict, description="keyword arguments for the student factory")
    tokenizer: Literal["auto", "bytes", "vocab"] = Field(
        "auto", description="text: how the student tokenizes: bytes (UTF-8, no tokenizer on the device), vocab (the "
        "teacher's vocabulary cut to the tokens the data uses), or auto (vocab when the teacher has a tokenizer and "
        "the median training text has at least 3 words, else bytes; on every target)")
    max_vocab: int | None = Field(None, ge=3, description="text, vocab tokenizer: keep at most this many ids "
                                  "(padding and unknown included; the rarest tokens become unknown)")

    @field_validator("factory")
    @classmethod
    def _factory(cls, v):
        from edgedistill.students.spec import check_factory

        return None if v is None else check_factory(v)

    @model_validator(mode="after")
    def _family_or_factory(self):
        from edgedistill.students import CUSTOM, STUDENT_FAMILIES
        from edgedistill.students.spec import check_factory_kwargs

        if self.factory is None:
            if self.factory_kwargs:
                raise ValueError("factory_kwargs are given but no factory; name one (factory = 'file.py:function')")
            if self.family not in ("auto", *STUDENT_FAMILIES.names()):
                raise ValueError(f"unknown student family {self.family!r}; choose from auto, "
                                 f"{', '.join(STUDENT_FAMILIES.names())}, or name your own factory")
            if self.knobs:
                from edgedistill.students.knobs import check_knobs

                fam = "" if self.family == "auto" else self.family
                try:
                    object.__setattr__(self, "knobs", check_knobs(fam, self.knobs, "student knobs"))
                except ConfigError as exc:
                    raise ValueError(str(exc).removeprefix("student knobs: ")) from None
        elif self.family not in ("auto", CUSTOM):
            raise ValueError(f"give either a student family ({self.family!r}) or a factory ({self.factory!r}), "
                             "not both")
        else:
            check_factory_kwargs(self.factory_kwargs)
            object.__setattr__(self, "family", CUSTOM)
        return self

    def arch(self, kind: str, tokenizer: str | None = None):
        """The StudentArch to build for data of `kind` (image / signal / features / text; for text, `tokenizer`
        names the student's tokenizer, which the default family follows)."""
        from edgedistill.students import StudentArch, default_family, family_defaults

        if self.factory:
            return StudentArch.custom(self.factory, self.factory_kwargs)
        family = default_family(kind, tokenizer) if self.family == "auto" else self.family
        width, depth = family_defaults(family)
        return StudentArch(family, self.width or width, self.depth or depth, knobs=tuple(sorted(self.knobs.items())))


class AugmentConfig(_Strict):
    """Training-batch augmentation. With a teacher, turning it on makes the teacher run on every augmented batch
    (function matching) instead of reading cached per-sample logits; the no-teacher twin gets the same batches."""

    shift: int = Field(0, ge=0, le=16, description="random translation by up to this many pixels / steps (0 = off)")
    hflip: bool = Field(False, description="random left-right mirroring (only for mirror-invariant classes)")
    mixup: Union[float, Auto] = Field("auto", description="mixup Beta(a, a) parameter (0 = off), or auto: "
                                      "function matching on small data, mixup 1 with the teacher only below 10,000 "
                                      "transfer samples, else off (edgedistill.data.augment.auto_mixup)")
    mixup_twin: bool = Field(True, description="whether the no-teacher twin mixes too (False for the auto mixup)")
    token_dropout: float = Field(0.0, ge=0, le=1, description="text: each token becomes the mask id with this "
                                 "probability (0 = off); the teacher labels the view (function matching)")
    span_mask: float = Field(0.0, ge=0, le=1, description="text: one contiguous span of this fraction of each "
                             "sentence becomes mask ids (0 = off)")

    @field_validator("mixup", mode="before")
    @classmethod
    def _mixup_spelling(cls, v):
        if isinstance(v, str) and v.strip() != "auto":
            try:
                return float(v)
            except ValueError:
                raise ValueError(f"mixup is a number (the Beta(a, a) parameter; 0 turns it off) or 'auto', not {v!r}"
                                 ) from None
        return v

    @field_validator("mixup")
    @classmethod
    def _mixup(cls, v):
        if v != "auto" and not 0 <= float(v) <= 10:
            raise ValueError("mixup must be between 0 and 10, or 'auto'")
        return v

    def recipe(self):
        """The Augment this config describes; an unresolved auto mixup counts as off (see `resolved`)."""
        from edgedistill.data.augment import Augment

        return Augment(self.shift, self.hflip, 0.0 if self.mixup == "auto" else float(self.mixup), self.mixup_twin,
                       self.token_dropout, self.span_mask)

    def resolved(self, n_transfer: int, teacher: bool = True, text: bool = False, byte_tokens: bool = False,
                 labelled_fraction: float = 0.0) -> "AugmentConfig":
        """A concrete copy for a transfer set of n samples: auto mixup becomes auto_mixup(n), the teacher's alone;
        for text (token ids do not mix) it becomes auto_token_dropout(n, teacher, byte_tokens, labelled_fraction),
        the teacher's alone, unless the config names text views of its own (then student and twin share them)."""
        if self.mixup != "auto":
            return self
        from edgedistill.data.augment import auto_mixup, auto_token_dropout

        if not text:
            return self.model_copy(update={"mixup": auto_mixup(n_transfer, teacher), "mixup_twin": False})
        if self.token_dropout or self.span_mask:
            return self.model_copy(update={"mixup": 0.0})
        return self.model_copy(update={"mixup": 0.0, "mixup_twin": False,
                                       "token_dropout": auto_token_dropout(n_transfer, teacher, byte_tokens,
                                                                           labelled_fraction)})


class FeatureTermConfig(_Strict):
    """One feature / relation term: weight · loss(student layer, teacher layer), by module name."""

    loss: str = Field(description="hint, cosine, at, rkd_distance, rkd_angle or sp; text: cosine or minilm")
    student: str = Field("auto", description="student module name, e.g. features.2 (edgedistill lists them on a "
                         "typo); text: auto = the classifier's input (cosine) / the last attention layer (minilm)")
    teacher: str = Field("auto", description="teacher module name, e.g. layer2; text: a layer index (auto = last)")
    weight: float = Field(1.0, gt=0, allow_inf_nan=False)

    @field_validator("loss")
    @classmethod
    def _known(cls, v):
        from edgedistill.distill.knowledge import FEATURE_LOSSES
        from edgedistill.distill.text_knowledge import TEXT_FEATURE_LOSSES

        names = sorted(set(FEATURE_LOSSES.names()) | set(TEXT_FEATURE_LOSSES.names()))
        if v not in names:
            raise ValueError(f"unknown feature loss {v!r}; choose from {', '.join(names)}")
        return v


class KDConfig(_Strict):
    loss: str = Field("kd", description="soft loss: kd (Hinton), dkd (decoupled), kd-std (standardized logits), "
                                        "mse (logit matching), or auto (chosen with T and alpha on validation)")
    temperature: Union[float, Auto] = "auto"
    alpha: Union[float, Auto] = "auto"
    tune_epochs: int | None = Field(None, ge=1, description="epochs per auto-tuning trial (default: epochs // 3)")
    tune_max_samples: int = Field(10000, ge=100, description="transfer samples used by each tuning trial")
    features: list[FeatureTermConfig] = Field(default_factory=list, description="feature / relation terms added to "
                                              "the response loss during float distillation (torch teachers only)")
    scheme: Literal["offline", "born-again", "mutual"] = Field(
        "offline", description="offline: learn from the frozen teacher; born-again: then `generations` more students "
        "of the same architecture, each learning from the previous one; mutual: `peers` students train together, "
        "each also matching the others' predictions (deep mutual learning)")
    generations: int = Field(1, ge=1, le=10, description="born-again: generations after the first")
    peers: int = Field(2, ge=2, le=8, description="mutual: number of students trained together")
    mutual_weight: float = Field(1.0, gt=0, description="mutual: weight of the KL term towards the peers")
    online_teacher: bool = Field(False, description="mutual: the teacher (one torch teacher) joins the peers and "
                                 "keeps training with them (online distillation) instead of staying frozen")
    teacher_lr_scale: float = Field(0.1, gt=0, le=1, description="online_teacher: the teacher's learning rate as a "
                                    "fraction of the students'")
    top_k: int = Field(32, ge=1, le=4096, description="causal LM: the teacher's largest logits cached per position "
                       "(the rest of the vocabulary as one tail bucket)")
    seq_kd: int | None = Field(None, ge=0, le=1_000_000, description="causal LM: sequence-level KD (Kim & Rush 2016): "
                               "this many greedy teacher continuations of seeded training prompts added as extra "
                               "training windows (the no-teacher twin never sees them); 0: off, and like any number a "
                               "fixed choice that turns the automatic choice of the losses off; unset: left to that "
                               "choice (with --temperature auto), else off")

    @field_validator("loss")
    @classmethod
    def _loss(cls, v):
        from edgedistill.distill.losses import SOFT_LOSSES

        if v != "auto" and v not in SOFT_LOSSES.names():
            raise ValueError(f"unknown loss {v!r}; choose from {', '.join(SOFT_LOSSES.names())} or auto")
        return v

    @field_validator("temperature")
    @classmethod
    def _t(cls, v):
        if v != "auto" and not (0 < float(v) <= 100):
            raise ValueError("temperature must be in (0, 100] or 'auto'")
        return v

    @field_validator("alpha")
    @classmethod
    def _a(cls, v):
        if v != "auto" and not (0 <= float(v) <= 1):
            raise ValueError("alpha must be in [0, 1] or 'auto'")
        return v


class TrainConfig(_Strict):
    """The optimizer's budget. epochs and batch_size default to "auto": sized from the number of transfer samples
    (edgedistill.distill.schedule: at least 6,000 optimizer steps or 400,000 sample passes, 10 epochs at batch 128 on a large set); `steps`
    gives the optimizer steps instead of the epochs."""

    epochs: Union[int, Auto] = Field("auto", description="training epochs, or auto (sized from the data)")
    batch_size: Union[int, Auto] = Field("auto", description="samples per optimizer step, or auto (32 / 64 / 128 "
                                         "by data size)")
    steps: int | None = Field(None, ge=1, le=10_000_000,
                              description="optimizer steps in all, exactly (instead of epochs): the run stops "
                              "mid-epoch after the last one and the learning rate schedule ends there")
    min_steps: int | None = Field(None, ge=1, le=10_000_000,
                                  description="classifiers, with given epochs: at least this many optimizer steps "
                                  "(more epochs when the given ones are fewer; build's default: 4 epochs, at least "
                                  "800 steps); a causal LM trains its epochs or --steps as given")
    lr: float = Field(3e-3, gt=0)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    schedule: Literal["cosine", "onecycle", "constant"] = "cosine"
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    seed: int = 0
    threads: int | None = Field(None, ge=1, le=1024, description="torch CPU threads (default: all cores; at most "
                                "1,024: a larger count only fails to start its threads)")

    @field_validator("epochs", "batch_size")
    @classmethod
    def _positive(cls, v, info):
        top = {"epochs": 10000, "batch_size": 1 << 20}[info.field_name]
        if v != "auto" and not (1 <= int(v) <= top):
            raise ValueError(f"{info.field_name} must be in 1..{top} or 'auto'")
        return v

    @model_validator(mode="after")
    def _epochs_or_steps(self):
        if self.steps is not None and self.epochs != "auto":
            raise ValueError("give epochs or steps, not both")
        return self


class QuantConfig(_Strict):
    qat: bool = Field(False, description="after float distillation, distill on with int8 fake quantization")
    qat_epochs: Union[int, Auto] = Field("auto", description="QAT epochs, or auto: 3 with explicit epochs, "
                                         "else 0.3 × the sized float epochs (at least 3)")
    qat_steps: int | None = Field(None, ge=1, le=10_000_000, description="QAT optimizer steps in all, exactly "
                                  "(instead of qat_epochs); default with train.steps: 0.3 × train.steps")
    qat_lr_scale: float = Field(0.1, gt=0, le=1, description="QAT learning rate = train.lr × this")
    qat_max_samples: int | None = Field(None, ge=100, description="QAT fine-tunes on at most this many transfer "
                                        "samples (a seeded subset; default: all)")
    rounding: Literal["auto", "float", "tflm", "reference", "xnnpack"] = Field(
        "auto", description="the integer arithmetic QAT computes: xnnpack (LiteRT's default CPU delegate), tflm "
        "(TFLite Micro), reference (LiteRT's reference kernels), float (torch fake quantization, as onnxruntime's QDQ "
        "reference), or auto: that of the target's runtime (xnnpack without a target)")
    exact_share: float = Field(
        0.25, ge=0, le=1, description="the share of QAT steps, the last ones, that compute the rounding's exact "
        "integers; the earlier steps use torch's fake quantization (same grids, a third to half the step time), and "
        "validation and the exported model compute the exact integers always; 1: every step")

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, v):
        if isinstance(v, dict) and "int8_tolerance" in v:
            raise ValueError("int8_tolerance was removed: parity no longer allows an accuracy loss; every int8 file "
                             "must agree with the trained model computing its runtime's arithmetic (top-1 >= 99.9 %, "
                             "logits within one output step). Delete the setting.")
        return v

    @model_validator(mode="after")
    def _qat_epochs_or_steps(self):
        if self.qat_steps is not None and self.qat_epochs != "auto":
            raise ValueError("give qat_epochs or qat_steps, not both")
        return self

    @field_validator("qat_epochs")
    @classmethod
    def _qat_epochs(cls, v):
        if v != "auto" and int(v) < 1:
            raise ValueError("qat_epochs must be >= 1 or 'auto'")
        return v

    input_head: Literal["auto", "on", "off"] = Field(
        "auto", description="standardise the input in float before one QUANTIZE op (the file then takes raw float32 "
        "samples): auto when the input channels' ranges cannot share one int8 scale")
    ranges: Literal["ema", "frozen"] = Field(
        "ema", description="activation ranges during QAT: ema (follow each batch's extremes, a moving average) or "
        "frozen (as calibrated)")
    max_qat_drop: float = Field(3.0, ge=0, le=100, description="the run fails when QAT int8 ends more than this many "
                                "accuracy points below the float student, beyond the test split's noise")
    calibration: Literal["minmax", "percentile", "mse"] = "minmax"
    int16: list[Literal["layernorm", "attention"]] = Field(
        default_factory=list, description="op kinds built with int16 activations and int8 weights (TFLite's 16×8 "
        "mode, where LiteRT and TFLite Micro have the kernels): layernorm keeps a LayerNorm's mean, variance, "
        "1/σ and normalized values in int16 (docs/int16.md: within noise of int8 on builtin:langid, +1.4 % file, "
        "+2.1 % arena); attention keeps the scores, mask, SOFTMAX and context of each attention (two or more heads) "
        "in int16 (within noise of int8 on builtin:langid, +3.3 % file, +39 % arena)")

    @field_validator("int16")
    @classmethod
    def _int16_once(cls, v):
        if len(set(v)) != len(v):
            raise ValueError(f"quant.int16 names an op kind more than once ({v}); name each kind once")
        return v

    calibration_size: int = Field(1000, ge=16, description="training samples drawn (seeded) for calibration")
    formats: list[Literal["onnx", "tflite"]] = Field(default_factory=lambda: ["onnx", "tflite"])
    tflm_max_samples: int = Field(1000, ge=1, description="test samples run through TFLite Micro (1 per invoke)")
    kv_cache: bool = Field(False, description="causal LM: also export the int8 KV-cache decoder step (one token per "
                           "call, the key / value caches as int8 inputs and outputs) beside the full-window files, "
                           "with parity against them on every runtime and its tokens/s")


class DistillConfig(_Strict):
    """Everything `edgedistill distill` needs. Saved, resolved, as config.json beside the outputs."""

    data: DataConfig = DataConfig()
    teachers: list[TeacherConfig] = Field(default_factory=list)
    ensemble: Literal["arithmetic", "geometric"] = "arithmetic"
    student: StudentConfig = StudentConfig()
    augment: AugmentConfig = AugmentConfig()
    kd: KDConfig = KDConfig()
    train: TrainConfig = TrainConfig()
    quant: QuantConfig = QuantConfig()
    task: Literal["auto", "classification", "causal-lm"] = Field(
        "auto", description="classification, causal-lm (next-token prediction on plain text), or auto: causal-lm "
        "when the teacher is a transformers folder whose config.json describes a causal LM")

    @field_validator("augment", mode="before")
    @classmethod
    def _augment_spelling(cls, v):
        """`augment = "none"` / `"shift=2,mixup=0.2"` in a config file mean what `--augment` means."""
        if isinstance(v, str):
            from edgedistill.data.augment import parse_augment_spec

            try:
                return parse_augment_spec(v, option="augment")
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("augment: ")) from None
        return v

    @field_validator("student", mode="before")
    @classmethod
    def _student_spelling(cls, v):
        """`student = "cnn:width=8"` in a config file means what `--student cnn:width=8` means."""
        if isinstance(v, str):
            from edgedistill.students.spec import parse_student_spec

            try:
                return parse_student_spec(v) if v.strip() else v
            except ConfigError as exc:
                raise ValueError(str(exc).replace("--student", "student")) from None
        return v

    target: str = Field("cpu", description="target profile for the report's estimate and fit checks (with --qat)")
    report: bool = Field(True, description="with --qat: profile the files and write report.json / .md / .html")
    baseline: bool = Field(True, description="also train the no-teacher twin (same student, epochs, data order)")
    cache_dir: str | None = None
    out: str | None = Field(None, description="output directory; default runs/distill-DATA[-TEACHERS][-int8], "
                            "named after the data, the teachers when not the data's built-in one, and --qat")

    @model_validator(mode="after")
    def _default_teacher(self):
        if not self.teachers:
            from edgedistill.data.sources import check_source_exists

            check_source_exists(self.data.source)  # a missing file is the first thing to say, before "no teacher"
            name = self.data.source.removeprefix("builtin:") if self.data.source.startswith("builtin:") else None
            from edgedistill.teachers.loader import BUILTIN_TEACHERS

            if name not in BUILTIN_TEACHERS:
                data = sorted(n for n, spec in BUILTIN_TEACHERS.items() if spec[2] == f"builtin:{n}")
                raise ValueError("no teacher given; name one with --teacher (the data sets with a built-in teacher: "
                                 f"{', '.join('builtin:' + n for n in data)})")
            object.__setattr__(self, "teachers", [TeacherConfig(path=f"builtin:{name}")])
        if self.out is None:
            object.__setattr__(self, "out", default_out(self))
        return self


def load_config(path: str | Path | None, overrides: dict | None = None, flag_of=None) -> DistillConfig:
    """Read a TOML or JSON config file (optional), apply CLI overrides (nested dicts), validate. Raises ConfigError
    (one paragraph) for a missing or unparsable file and for invalid settings, each named where it was given: the
    file, or the flag that overrode it (`flag_of`: a validation error's path -> the flag's name, or None)."""
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"Config file {p} does not exist.")
        kind = "TOML" if p.suffix == ".toml" else "JSON"
        try:
            raw = tomllib.loads(p.read_text()) if kind == "TOML" else json.loads(p.read_text())
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Config file {p} does not parse as {kind} (a .toml file is read as TOML, any other "
                              f"as JSON): {exc}.") from None
        except OSError as exc:
            raise ConfigError(f"Config file {p} cannot be read: {exc.strerror or exc}.") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"Config file {p} must hold a table of settings (data, teachers, student, train ...), "
                              f"not a {type(raw).__name__}.")
    merged = _merge(raw, overrides or {})
    try:
        return DistillConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(errors_paragraph(exc, DistillConfig, str(path) if path else None, raw, overrides or {},
                                           flag_of)) from None


def _merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`, nested; None in `over` keeps `base`. A non-table in `base` where `over` has a table
    is kept when `over` sets nothing in it, so validation names the wrong setting (`data = 5`) instead of crashing."""
    out = dict(base)
    for k, v in over.items():
        if v is None:
            continue
        if isinstance(v, dict):
            sub = out.get(k)
            if sub is not None and not isinstance(sub, dict):
                if any(x is not None for x in v.values()):
                    out[k] = _merge({}, v)
                continue
            out[k] = _merge(sub or {}, v)
        else:
            out[k] = v
    return out
