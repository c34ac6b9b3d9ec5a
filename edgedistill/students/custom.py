"""Bring your own student: a factory the user names (`mymodels.py:resnet`, `mypkg.models:resnet`) builds the body.

The factory is called as `factory(num_classes=K, **kwargs)`, plus `in_channels=C` and / or `input_shape=(C, H, W)`
when its signature names those parameters. It must return an `nn.Module` mapping a `(N, *input_shape)` batch to
`(N, K)` logits; that is checked on a dry run here, before anything trains or is written. Every failure is a
ConfigError of one paragraph (the user's traceback is not shown).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from edgedistill.errors import ConfigError
from edgedistill.user_code import import_factory

RESERVED = ("num_classes", "in_channels", "input_shape", "vocab_size")


def _signature(fn) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins / C callables have none: pass only num_classes
        return None


def _call_args(fn, spec: str, input_shape: tuple[int, ...], num_classes: int, kwargs: dict,
               extra: dict | None = None) -> dict:
    sig = _signature(fn)
    params = {} if sig is None else sig.parameters
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if sig is not None and "num_classes" not in params and not var_kw:
        raise ConfigError(f"Student factory {spec!r} must accept a `num_classes` argument (the data has "
                          f"{num_classes} classes); its signature is {spec.rpartition(':')[2]}{sig}.")
    args = {"num_classes": num_classes}
    if "in_channels" in params:
        args["in_channels"] = int(input_shape[0])
    if "input_shape" in params:
        args["input_shape"] = tuple(int(v) for v in input_shape)
    for name, value in (extra or {}).items():  # vocab_size for text data
        if name in params or var_kw:
            args[name] = value
    unknown = [k for k in kwargs if k not in params] if sig is not None and not var_kw else []
    if unknown:
        valid = [n for n, p in params.items() if n not in RESERVED and p.kind in
                 (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
        raise ConfigError(f"Student factory {spec!r} takes no argument {', '.join(map(repr, unknown))}; its "
                          f"keyword arguments are: {', '.join(valid) or '(none besides num_classes)'}.")
    return {**args, **kwargs}


def build_custom(spec: str, kwargs: dict, input_shape: tuple[int, ...], num_classes: int,
                 extra: dict | None = None) -> nn.Module:
    """Import and call the user's factory; check it returns an nn.Module producing `(N, num_classes)` logits.
    `extra` (vocab_size for text) is passed when the factory names the parameter."""
    fn = import_factory(spec, ConfigError)
    args = _call_args(fn, spec, input_shape, num_classes, kwargs, extra)
    try:
        module = fn(**args)
    except Exception as exc:  # the user's code failed: say where and why, in one paragraph
        shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
        raise ConfigError(f"Student factory {spec!r} raised {type(exc).__name__} when called with ({shown}): "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else '(no message)'}") from None
    if not isinstance(module, nn.Module):
        raise ConfigError(f"Student factory {spec!r} returned a {type(module).__name__}, not a torch.nn.Module.")
    _dry_run(module, spec, input_shape, num_classes, text=bool(extra))
    return module


def _dry_run(module: nn.Module, spec: str, input_shape: tuple[int, ...], num_classes: int, text: bool = False) -> None:
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros(2, *input_shape, dtype=torch.int32 if text else torch.float32))
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"The student built by {spec!r} cannot run on the data's samples (a batch of shape "
                          f"(N, {', '.join(map(str, input_shape))})): {type(exc).__name__}: {msg[:300]}") from None
    finally:
        module.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"The student built by {spec!r} returns {got} per sample; it must return one logit per "
                          f"class ({num_classes},) as a single tensor.")
