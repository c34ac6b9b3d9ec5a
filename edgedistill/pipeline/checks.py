"""Checks on the user's inputs that run before anything trains or is written: the teacher runs on the data, feature
terms name layers that exist and fit (the output directory's rule is edgedistill.pipeline.rundir)."""

from __future__ import annotations

import numpy as np
import torch

from edgedistill.config import DistillConfig
from edgedistill.data import DataSplits
from edgedistill.distill.feature_terms import FeatureTerms
from edgedistill.distill.trainer import FeatureTerm, Objective, TrainSet
from edgedistill.errors import ConfigError, DataError
from edgedistill.teachers import Teacher


def feature_terms(config: DistillConfig) -> tuple[FeatureTerm, ...]:
    return tuple(FeatureTerm(f.loss, f.weight, f.student, f.teacher) for f in config.kd.features)


def check_feature_terms(config: DistillConfig, teachers: list[Teacher], student: torch.nn.Module,
                        splits: DataSplits) -> None:
    """Layer names and shapes are checked on a dry run before anything trains or is written."""
    if splits.text is not None:
        from edgedistill.pipeline.text_features import check_text_feature_terms

        return check_text_feature_terms(config, teachers, student, splits)
    text_only = [f.loss for f in config.kd.features if f.loss == "minilm"]
    unnamed = [f.loss for f in config.kd.features if "auto" in (f.student, f.teacher)]
    if text_only or unnamed:
        raise ConfigError(f"Feature terms on arrays name both layers (--feature loss=NAME,student=LAYER,teacher=LAYER)"
                          f"{'' if not unnamed else ': ' + ', '.join(unnamed) + ' names no layer'}"
                          f"{'' if not text_only else '; minilm is the attention transfer for text students'}.")
    module = teachers[0].torch_module()
    if module is None:
        raise ConfigError(f"Feature terms ({', '.join(f.loss for f in config.kd.features)}) need a teacher whose "
                          f"internals are visible (a torch format); {teachers[0].name!r} is {teachers[0].format}, "
                          "so only response-based losses (kd, dkd, kd-std, mse) apply.")
    if config.teachers[0].input != "raw":
        raise ConfigError("Feature terms need a teacher fed raw samples (teacher input 'raw').")
    probe = TrainSet(torch.from_numpy(splits.val.x[:2]), None, None, teacher_module=module)
    try:
        FeatureTerms(student, probe, Objective(features=feature_terms(config))).close()
    except KeyError as exc:
        raise ConfigError(f"Feature terms: {exc.args[0]}.") from None
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"Feature terms: the chosen layers do not fit each other: {str(exc).splitlines()[0]}.") \
            from None


def check_teacher_fits(teacher: Teacher, input_mode: str, splits: DataSplits) -> None:
    sample = splits.val.x[:32]
    if getattr(teacher, "is_text", False) != (splits.text is not None):
        raise DataError(f"Teacher {teacher.name!r} ({teacher.format}) " + (
            "is a text model, but the data are arrays; give texts (a .jsonl / .csv / .tsv file or a text folder)."
            if splits.text is None else "takes arrays, but the data are texts."))
    if splits.text is not None:
        sample = splits.text.tokenizer.decode(sample)  # the teacher reads what the student sees, as text
    elif input_mode == "normalized":
        sample = splits.normalizer.apply(sample)
    if splits.text is not None and splits.class_names != [str(i) for i in range(splits.num_classes)]:
        teacher.match_classes(splits.class_names)  # named classes: the teacher's outputs in the data's order
    try:
        teacher.bind(splits.num_classes, sample)  # which output, logits or probabilities, layout
        out = teacher.logits(sample)
    except DataError:
        raise
    except Exception as exc:  # whatever the runtime raises, the cause is data that does not fit the model
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"The data's samples have shape {splits.input_shape} but teacher {teacher.name!r} ({teacher.format}) "
            f"cannot run on them: {msg[:300]}"
        ) from None
    if out.ndim < 1 or out.shape[0] != len(sample):
        raise DataError(
            f"Teacher {teacher.name!r} ({teacher.format}) returned outputs of shape {tuple(out.shape)} for a batch of "
            f"{len(sample)} samples of shape {splits.input_shape}: one row per sample was expected. The teacher "
            "probably expects another input shape (it may fold the batch into its features); give data whose "
            "samples have the shape the teacher was trained on."
        )
    if out.shape != (len(sample), splits.num_classes):
        raise DataError(
            f"Teacher {teacher.name!r} returns outputs of shape {tuple(out.shape[1:])} per sample, but the data has "
            f"{splits.num_classes} classes{_label_note(splits)}{_names_note(teacher)}; the teacher must output one "
            "logit per class. If your labels use only some of the teacher's classes, give the data all of them: "
            "`class_names` in the .npz (or class_names.npy beside x.npy) listing every class the teacher outputs, "
            "in its order, with labels as indices into it."
        )
    if not torch.isfinite(out).all():
        raise DataError(f"Teacher {teacher.name!r} returns NaN or infinite logits on the first samples.")


RANGE_FACTOR = 4.0  # warn when the data reach past the trained range by more than (factor - 1) × its width
RANGE_SAMPLES = 10_000  # rows of the transfer set whose range is read (evenly spaced: memory-mapped data stay cheap)


def input_range_warning(teacher: Teacher, input_mode: str, splits: DataSplits, name: str) -> str | None:
    """One line when the arrays `teacher` reads lie far outside the range it was trained on (`teacher.input_range`,
    known for the built-in image teachers): past low − 3w or high + 3w for a trained range [low, high] of width w,
    e.g. raw sklearn digits (0..16) for builtin:digits, trained on [0, 1] (max 16 > 4 × 1). Its soft targets are
    then those of inputs it never saw. None for text, an unknown range, or data within reach."""
    if teacher.input_range is None or splits.text is not None or len(splits.transfer.x) == 0:
        return None
    x = splits.transfer.x
    rows = x[np.unique(np.linspace(0, len(x) - 1, min(len(x), RANGE_SAMPLES)).astype(np.int64))]
    if input_mode == "normalized":
        rows = splits.normalizer.apply(rows)
    lo, hi = float(np.min(rows)), float(np.max(rows))
    low, high = teacher.input_range
    reach = (RANGE_FACTOR - 1.0) * (high - low)
    if lo >= low - reach and hi <= high + reach:
        return None
    return (f"Teacher {name} was trained on inputs in [{low:g}, {high:g}], but the data it reads span "
            f"[{lo:.4g}, {hi:.4g}]: on inputs that far outside its range its soft targets mean little. Scale the "
            f"data as the teacher's were (e.g. divide them by their maximum, {hi:.4g}, for [0, 1]).")


def _names_note(teacher: Teacher) -> str:
    names = getattr(teacher, "class_names", None)
    return f" (the teacher's classes: {', '.join(map(repr, names))})" if names else ""


def _label_note(splits: DataSplits) -> str:
    lm = splits.label_map
    return "" if lm is None or lm.identity else f" (its {lm.describe()})"
