"""Teacher adapters (one per format), ensembles and the on-disk logit cache."""

from edgedistill.teachers.base import Teacher, file_digest
from edgedistill.teachers.cache import LogitCache
from edgedistill.teachers.ensemble import ENSEMBLE_METHODS, combine
from edgedistill.teachers.loader import BUILTIN_TEACHERS, TEACHER_FORMATS, TeacherSpec, load_teacher

__all__ = [
    "BUILTIN_TEACHERS",
    "ENSEMBLE_METHODS",
    "LogitCache",
    "TEACHER_FORMATS",
    "Teacher",
    "TeacherSpec",
    "combine",
    "file_digest",
    "load_teacher",
]
