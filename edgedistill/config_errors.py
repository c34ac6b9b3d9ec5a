"""A config's validation errors as one paragraph, each setting named where it was given: the command-line flag that
set it (which overrides the file) or the config file (edgedistill.config.load_config raises it as a ConfigError)."""

from __future__ import annotations

from typing import Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError


def _given(tree, loc: tuple) -> bool:
    """True when `tree` (a config file's table or the CLI's overrides) sets something at `loc` (a validation
    error's path; a union member's tag after a scalar is ignored)."""
    for k in loc:
        if isinstance(tree, dict) and k in tree:
            tree = tree[k]
        elif isinstance(tree, list) and isinstance(k, int) and k < len(tree):
            tree = tree[k]
        elif not isinstance(tree, (dict, list)):
            break
        else:
            return False
    return any(_given(v, ()) for v in tree.values()) if isinstance(tree, dict) else tree is not None


def _source(loc: tuple, raw: dict, overrides: dict) -> str:
    """Where the value a validation error names came from: "flag" (a command-line flag, which overrides the file),
    "file", or "both" (a table both set, or a rule over the whole config where flags were given too)."""
    flag, file = _given(overrides, loc), _given(raw, loc)
    if flag and file and isinstance(_at(overrides, loc), dict):
        return "both"  # a rule across a table's keys, some from each
    if flag:
        return "flag"
    return "file" if file or not _given(overrides, ()) else "both"


def _at(tree, loc: tuple):
    for k in loc:
        if not isinstance(tree, (dict, list)):
            return tree
        tree = tree[k]
    return tree


def errors_paragraph(exc: ValidationError, model: type[BaseModel], path, raw: dict, overrides: dict,
                     flag_of=None) -> str:
    """One paragraph naming each invalid setting where it was given: the flag (`flag_of(loc)`: the CLI's
    --temperature for kd.temperature) with the setting's path when a flag set it, the config file when the file did;
    `flag_of` None (the Python API) names the path alone. `model`: the validated config class (an unknown
    top-level key is pointed to the section of `model` that has it)."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])  # "" for a rule across settings (no teacher given): no name
        msg = err["msg"].removeprefix("Value error, ").rstrip(".")
        if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
            home = [name for name, f in model.model_fields.items() if isinstance(f.annotation, type)
                    and issubclass(f.annotation, BaseModel) and err["loc"][0] in f.annotation.model_fields]
            msg = "unknown key" + (f"; it belongs in the [{home[0]}] section ({home[0]}.{err['loc'][0]})" if home
                                   else "")
        source = _source(tuple(err["loc"]), raw, overrides) if path else "flag"
        parts.append((source, (flag_of and flag_of(tuple(err["loc"]))) if source == "flag" else None, loc, msg))
    sources = {p[0] for p in parts}
    where = "command line" if sources == {"flag"} else str(path) if sources == {"file"} else \
        f"{path} and the command line"

    def name(source: str, flag: str | None, loc: str) -> str:
        if source == "flag":
            return f"{flag} ({loc})" if flag else loc if where == "command line" else f"{loc} on the command line"
        return f"{loc} in {path}" if source == "file" and where != str(path) else loc

    return f"Invalid configuration ({where}): " + "; ".join(
        f"{name(*p[:3])}: {p[3]}" if p[2] else p[3] for p in parts) + "."


def takes_bool(annotation) -> bool:
    """Whether a field's type admits true / false (bool itself, or a union or Literal holding it)."""
    if annotation is bool or annotation is True or annotation is False:
        return True
    return any(takes_bool(a) for a in get_args(annotation))


def _takes(annotation, types: tuple) -> bool:
    return annotation in types or any(_takes(a, types) for a in get_args(annotation))


def wanted(annotation) -> str:
    """What a setting takes, in a user's words: 'a number', 'text', 'a list', 'a table'."""
    if _takes(annotation, (int, float)):
        return "a number"
    if _takes(annotation, (str,)) or get_origin(annotation) is Literal:
        return "text"
    if get_origin(annotation) is list or _takes(annotation, (list,)):
        return "a list"
    return "a table" if isinstance(annotation, type) and issubclass(annotation, BaseModel) else "another value"
