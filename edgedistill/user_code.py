"""Loading a callable the user named: `package.module:function` or `path/to/file.py:function`.

Used for teacher factories (`--teacher-factory`) and student factories (`--student file.py:fn`). Importing the
user's code is the user's explicit choice; nothing here evaluates strings. A file path is resolved against the
current directory once (callers record the absolute path), and the file's own directory is put on `sys.path` while
it executes, so it may import its siblings whatever the working directory is.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from edgedistill.errors import EdgeDistillError, ModelLoadError

_FILE_MODULES: dict[tuple[str, int], object] = {}  # (resolved path, mtime_ns) -> module: execute a file once


def is_factory_spec(text: str) -> bool:
    """'pkg.mod:fn' or 'dir/file.py:fn' (the part after the last colon an identifier, before it non-empty)."""
    head, colon, attr = text.rpartition(":")
    return bool(colon and head and attr.isidentifier())


def split_spec(spec: str) -> tuple[str, str]:
    """'a/b.py:fn' -> ('a/b.py', 'fn'). The last colon separates, so a Windows drive letter survives."""
    head, _, attr = spec.rpartition(":")
    return head, attr


def is_file_spec(spec: str) -> bool:
    head, _ = split_spec(spec)
    return head.endswith(".py") or "/" in head or "\\" in head


def absolute_spec(spec: str) -> str:
    """A file spec with its path made absolute (so a recorded spec works from any directory); others unchanged."""
    if not is_file_spec(spec):
        return spec
    head, attr = split_spec(spec)
    return f"{Path(head).expanduser().resolve()}:{attr}"


def _load_file(path: Path, spec: str, error: type[EdgeDistillError]):
    if not path.is_file():
        raise error(f"The factory file {path} named in {spec!r} does not exist.")
    key = (str(path), path.stat().st_mtime_ns)
    if key in _FILE_MODULES:
        return _FILE_MODULES[key]
    name = f"edgedistill_user_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    mod_spec = importlib.util.spec_from_file_location(name, path)
    if mod_spec is None or mod_spec.loader is None:
        raise error(f"Cannot load {path} as Python code (factory {spec!r}); name a .py file.")
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    try:
        mod_spec.loader.exec_module(module)
    except Exception as exc:  # the user's file failed at import: one paragraph, not its traceback
        sys.modules.pop(name, None)
        raise error(f"Importing {path} (factory {spec!r}) raised {type(exc).__name__}: {exc}.") from None
    finally:
        sys.path.remove(str(path.parent))
    _FILE_MODULES[key] = module
    return module


def import_factory(spec: str, error: type[EdgeDistillError] = ModelLoadError):
    """Resolve `package.module:callable` or `path/to/file.py:callable` to the callable.

    Raises `error` (one paragraph) when the spec is malformed, the module or file cannot be imported, or the name
    is missing or not callable.
    """
    if not is_factory_spec(spec):
        raise error(f"Model factory {spec!r} must look like 'package.module:function' or 'path/to/file.py:function'.")
    head, attr = split_spec(spec)
    if is_file_spec(spec):
        path = Path(head).expanduser().resolve()
        module, where = _load_file(path, spec, error), str(path)
    else:
        where = head
        try:
            module = importlib.import_module(head)
        except ImportError as exc:
            raise error(f"Cannot import module {head!r} for model factory {spec!r}: {exc} (a module must be "
                        "importable from the current directory or PYTHONPATH; or give the file: "
                        "path/to/file.py:function).") from None
        except Exception as exc:  # the module exists but its own code failed
            raise error(f"Importing module {head!r} (factory {spec!r}) raised {type(exc).__name__}: {exc}.") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        hint = f" Callables defined there: {', '.join(found[:12])}." if found else ""
        raise error(f"Module {where!r} has no callable {attr!r} (model factory {spec!r}).{hint}")
    return fn
