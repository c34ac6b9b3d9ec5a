"""Stage 2, teacher outputs: every teacher's logits on the transfer and test splits, from the on-disk cache when the
same teacher already ran on the same bytes; with augmentation, a stream that runs the teachers on each augmented
batch instead (function matching, edgedistill.teachers.stream)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from edgedistill.config import DistillConfig
from edgedistill.data import DataSplits
from edgedistill.distill.topk_table import TopKTable
from edgedistill.distill.trainer import TrainSet
from edgedistill.distill.tuning import LOSS_TEMPERATURES
from edgedistill.pipeline.inputs import EvalTensors
from edgedistill.pipeline.text_inputs import teacher_input_tag, teacher_view
from edgedistill.teachers import LogitCache, Teacher, combine
from edgedistill.teachers.cache_form import CacheForm, choose_form
from edgedistill.teachers.stream import TeacherStream


@dataclass(frozen=True)
class TeacherOutputs:
    """`data`: the transfer set with the teachers' outputs attached (cached members, a top-k table or a stream);
    `test_members`: (teachers, N_test, classes) logits on the test split, or its top-k table; `form`: the cache
    form chosen (teachers/cache_form.py) with, for top-k, the teacher's mean mass outside its top k."""

    data: TrainSet
    test_members: torch.Tensor | TopKTable
    stream: TeacherStream | None
    seconds: float
    form: dict


def test_predictions(test_members: torch.Tensor | TopKTable, ensemble: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each teacher's predicted class on the test split (int64 (N,) each) and the ensemble's (at T = 1)."""
    if isinstance(test_members, TopKTable):
        top = test_members.top1()
        return [top], top
    return [m.argmax(1) for m in test_members], combine(test_members, ensemble, 1.0).argmax(1)


def _transform(spec, splits: DataSplits):
    """What a teacher reads of a batch: the texts the student's token ids spell (text), the normalised samples
    (--teacher-input normalized), or the raw samples (None)."""
    view = teacher_view(splits)
    if view is not None:
        return view
    return splits.normalizer.apply if spec.input == "normalized" else None


def _members(teachers, specs, cache: LogitCache, x: np.ndarray, splits: DataSplits, update) -> torch.Tensor:
    parts = []
    for teacher, spec in zip(teachers, specs):
        parts.append(cache.get(teacher, x, teacher_input_tag(spec.input, splits), _transform(spec, splits),
                               progress=lambda k: update(k)))
    return parts[0][None] if len(parts) == 1 else torch.stack(parts)  # one teacher: a view, not an N×K copy


def _top_k(teacher, spec, form: CacheForm, cache: LogitCache, x: np.ndarray, splits: DataSplits,
           update) -> TopKTable:
    records = cache.get_topk(teacher, x, form.k, form.temperatures, teacher_input_tag(spec.input, splits),
                             _transform(spec, splits), progress=lambda k: update(k))
    return TopKTable(records, form.temperatures)


def _stream(teachers, specs, splits: DataSplits, cache: LogitCache) -> TeacherStream:
    """The teachers run on each augmented batch (function matching); see edgedistill.teachers.stream."""
    transforms = [_transform(spec, splits) for spec in specs]

    def members(xb: torch.Tensor) -> torch.Tensor:
        x = xb.numpy()
        return torch.stack([t.logits(f(x) if f else x) for t, f in zip(teachers, transforms)])

    identity = "|".join(f"{t.identity()}|{teacher_input_tag(spec.input, splits)}" for t, spec in zip(teachers, specs))
    return TeacherStream(members, identity, cache.directory if cache.enabled else None)


def _text_features(config: DistillConfig, teacher: Teacher, splits: DataSplits):
    """Text feature terms: the teacher's features of each training batch (pipeline.text_features)."""
    from edgedistill.pipeline.text_features import needs_alignment, text_features_source

    return text_features_source(teacher, splits.text.tokenizer, needs_alignment(config))


def teacher_outputs(config: DistillConfig, teachers: tuple[Teacher, ...], splits: DataSplits, ev: EvalTensors,
                    cache: LogitCache, augmenting: bool, ui) -> TeacherOutputs:
    t0 = time.perf_counter()
    total = len(teachers) * ((0 if augmenting else len(splits.transfer)) + len(splits.test))
    update = ui.task("teacher logits", total)
    form = choose_form(splits.num_classes, config.kd.loss, config.kd.temperature, len(teachers),
                       LOSS_TEMPERATURES["kd"])  # the search's grid: every T it tries is stored
    topk_tr = members_tr = None
    if form.kind == "top-k":
        topk_tr = None if augmenting else _top_k(teachers[0], config.teachers[0], form, cache, splits.transfer.x,
                                                 splits, update)
        members_te = _top_k(teachers[0], config.teachers[0], form, cache, splits.test.x, splits, update)
    else:
        members_tr = None if augmenting else _members(teachers, config.teachers, cache, splits.transfer.x, splits,
                                                      update)
        members_te = _members(teachers, config.teachers, cache, splits.test.x, splits, update)
    seconds = time.perf_counter() - t0
    stream = _stream(teachers, config.teachers, splits, cache) if augmenting else None
    text, features = splits.text is not None, bool(config.kd.features)
    data = TrainSet(ev.x_transfer, ev.y_transfer, members_tr, config.ensemble, stream,
                    teachers[0].torch_module() if features and not text else None,
                    _text_features(config, teachers[0], splits) if features and text else None, topk_tr)
    record = form.to_dict()
    if topk_tr is not None:  # the cost of the form: the soft target's mass whose inner shape was not kept
        record["tail_mass"] = topk_tr.tail_mass()
    return TeacherOutputs(data, members_te, stream, seconds, record)
