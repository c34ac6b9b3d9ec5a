"""Stage 1, inputs: read the data and the teachers, and check that they fit each other and the student. Writes nothing.

Every check a user's input can fail runs here, before any output exists: the teacher runs on the data and returns
one logit per class, augmentation fits the samples, the student family fits the data, feature-term layers exist,
the scheme's needs are met, and (with --qat) the student is expressible in int8.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from edgedistill import distributed as ddp
from edgedistill.config import DistillConfig
from edgedistill.data import DataSplits, RawDataset, Split, make_splits, read_dataset
from edgedistill.data.splits import VAL_SCORED_MAX, scored_subset
from edgedistill.data.text import TextCorpus
from edgedistill.data.text_encode import encode_corpus
from edgedistill.distill import datafree
from edgedistill.distill.datafree import parse_synthetic
from edgedistill.distill.schemes import check_online_teacher
from edgedistill.errors import ConfigError
from edgedistill.pipeline.checks import check_feature_terms, check_teacher_fits, input_range_warning
from edgedistill.pipeline.data_form import arrays_source, data_form
from edgedistill.pipeline.text_inputs import encode_text
from edgedistill.students import StudentArch, build_student
from edgedistill.teachers import Teacher, TeacherSpec, load_teacher
from edgedistill.teachers.cache import default_cache_dir


def _read_only_tensor(a: np.ndarray) -> torch.Tensor:
    """A tensor over `a` without a copy. A memory-mapped split is read-only; these tensors are only ever read, so
    torch's warning about a non-writable array is noise to the user (it printed on every x.npy folder run)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(a))


@dataclass(frozen=True)
class Inputs:
    """The user's data (read and split) and teachers (loaded), checked against each other. `notes`: the readers'
    one-line advice (a large .npz), shown at once and kept among metrics.json's warnings."""

    raw: RawDataset
    splits: DataSplits
    teachers: tuple[Teacher, ...]
    notes: tuple[str, ...] = ()
    data_form: dict | None = None  # in memory or memory-mapped, and an .npz's conversion (pipeline/data_form.py)

    @property
    def teacher_window(self) -> int | None:
        """The lone text teacher's sequence length for this data (pipeline/text_inputs._window); None otherwise."""
        text = self.splits.text
        rows = [] if text is None else [t for t in text.teacher_truncation if t.get("window")]
        return int(rows[0]["window"]) if len(rows) == 1 else None

    @property
    def tokenizer_bytes(self) -> int | None:
        """The flash the student tokenizer's device tables take beside the model file (StudentTokenizer.
        device_bytes(): 0 for bytes, the teacher's vocabulary for vocab); None for data that is not text."""
        text = self.splits.text
        return None if text is None else text.tokenizer.device_bytes()


@dataclass(frozen=True)
class EvalTensors:
    """The transfer / validation / test splits as tensors (y_transfer is None for an unlabelled transfer set).
    x_val / y_val are what every evaluation point and tuning trial scores: the validation split, or on large data a
    seeded subset of VAL_SCORED_MAX samples (`val_scored` records which); the test split is whole. The transfer
    samples keep their stored dtype (the trainer converts each batch); validation and test are float32."""

    x_transfer: torch.Tensor
    y_transfer: torch.Tensor | None
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    val_scored: dict | None = None

    @classmethod
    def of(cls, s: DataSplits, seed: int = 0, cap: int = VAL_SCORED_MAX) -> "EvalTensors":
        t = _read_only_tensor
        pick = scored_subset(len(s.val), seed, cap)
        val = s.val if pick is None else s.val.take(pick)
        scored = {"samples": len(val), "of": len(s.val), "cap": cap, "seed": seed, "subset": pick is not None}
        return cls(t(s.transfer.x), t(s.transfer.y) if s.transfer.labeled else None, t(val.x), t(val.y),
                   t(s.test.x), t(s.test.y), scored)


def load_teachers(config: DistillConfig) -> tuple[Teacher, ...]:
    return tuple(load_teacher(TeacherSpec(t.path, t.format, t.factory, t.factory_kwargs, t.allow_pickle, t.output,
                                          t.allow_remote_code, t.tokenizer))
                 for t in config.teachers)


def read_inputs(config: DistillConfig, show_progress: bool = False) -> Inputs:
    """Read data and teachers and check that they fit each other. Raises EdgeDistillError; writes nothing but the
    memory-mapped folder a large .npz or image folder is converted into, once, in the cache (pipeline/data_form.py)."""
    if config.kd.seq_kd:  # a causal LM's option, which a classifier would silently ignore
        raise ConfigError(f"--seq-kd {config.kd.seq_kd} adds teacher-generated text for a causal LM "
                          "(--task causal-lm); this run distills a classifier. Leave --seq-kd out.")
    d = config.data
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    source, converted = arrays_source(d.source, d.data_form, cache_dir, show_progress and ddp.is_main())
    raw = read_dataset(source, d.text_field, d.label_field)
    if converted is not None:
        raw = replace(raw, source=d.source)  # the user's file, not the cache folder, names the data
    notes = list(getattr(raw, "notes", []))
    teachers = load_teachers(config)
    if isinstance(raw, TextCorpus):  # texts -> the student's token ids (pipeline/text_inputs.py)
        raw = encode_text(config, raw, teachers)
    transfer = None
    synthetic = parse_synthetic(config.data.transfer, config.train.seed)
    if config.data.transfer and synthetic is None:
        t_source, _ = arrays_source(config.data.transfer, d.data_form, cache_dir, show_progress and ddp.is_main())
        t = read_dataset(t_source, d.text_field, d.label_field, label_required=False)  # may be unlabelled
        if isinstance(t, TextCorpus) != (raw.text is not None):
            raise ConfigError(f"The transfer set {config.data.transfer} and the data {config.data.source} must both "
                              "be texts or both be arrays.")
        if isinstance(t, TextCorpus):
            t = encode_corpus(t, raw.text.tokenizer, raw.text.max_length, classes=list(raw.class_names))
        transfer = Split(t.train.x, t.train.y)
        notes += getattr(t, "notes", [])
    splits = make_splits(raw, val_fraction=config.data.val_fraction, test_fraction=config.data.test_fraction,
                         seed=config.data.seed, transfer=transfer, max_train=config.data.max_train,
                         max_test=config.data.max_test)
    for spec, teacher in zip(config.teachers, teachers):
        check_teacher_fits(teacher, spec.input, splits)
        notes += filter(None, [input_range_warning(teacher, spec.input, splits, spec.path)])
    if synthetic is not None:
        datafree.check_teacher(config, list(teachers))
    why = config.augment.recipe().check(len(splits.input_shape), text=splits.text is not None)
    if why:
        raise ConfigError(f"Augmentation {config.augment.recipe().describe()} does not fit this data (samples of "
                          f"shape {splits.input_shape}): {why}. Change or drop --augment.")
    return Inputs(raw, splits, teachers, tuple(notes), data_form(splits.transfer.x, converted))


def fit_student_to_target(config: DistillConfig, inputs: Inputs, show: bool = False) -> tuple[DistillConfig, Inputs]:
    """The student's activation knob against the target's operator set: where the target lacks the op (GELU on
    TFLite Micro) the config names the documented substitute (students/activations.py), and the inputs carry a
    note saying so (printed once when `show`, kept among metrics.json's warnings). Otherwise both are unchanged."""
    knobs = dict(config.student.knobs)
    if not knobs.get("activation"):
        return config, inputs
    from edgedistill.profile.opsets import target_ops
    from edgedistill.students.activations import fit_activation
    from edgedistill.targets import load_target

    target = load_target(config.target)
    fitted, note = fit_activation(knobs, target_ops(target), target.name)
    if note is None:
        return config, inputs
    if show and ddp.is_main():
        from edgedistill.progress import console

        console.print(f"note: {note}", markup=False, highlight=False)
    student = config.student.model_copy(update={"knobs": fitted})
    return config.model_copy(update={"student": student}), replace(inputs, notes=inputs.notes + (note,))


def student_arch(config: DistillConfig, splits: DataSplits) -> StudentArch:
    """The student the config names (family 'auto': the default family of the data's kind and, for text, of the
    student's tokenizer; or the user's factory)."""
    return config.student.arch(splits.kind, None if splits.text is None else splits.text.tokenizer.name)


def check_student(config: DistillConfig, inputs: Inputs, arch: StudentArch) -> None:
    """The student against the data, the feature terms, the scheme and (with --qat) the int8 op set."""
    splits = inputs.splits
    student = build_student(arch, splits.input_shape, splits.num_classes, splits.normalizer,
                            splits.vocab_size)  # family vs data
    if config.kd.features:
        check_feature_terms(config, list(inputs.teachers), student, splits)
    if config.kd.scheme == "mutual" and (config.kd.features or ddp.active()):
        raise ConfigError("Mutual learning (--scheme mutual) cannot be combined with feature terms or run under "
                          "torch.distributed yet; use the offline or born-again scheme for those.")
    if config.kd.online_teacher:
        check_online_teacher(config, list(inputs.teachers), splits)
    if config.quant.qat:
        from edgedistill.quantize import to_quant_student

        to_quant_student(student)  # an architecture int8 cannot express fails now, not after training
