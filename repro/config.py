"""Strict configuration dataclasses: a misspelled key, a value of the wrong type and a value outside its valid
range are each an error that names the field and what is valid, never silently accepted."""

import collections.abc
import functools
import math
import numbers
import re
import types
import typing
from dataclasses import fields
from typing import ClassVar


def choice(name: str, value, valid) -> None:
    """Raise a ValueError naming `name`, the bad `value` and the valid choices."""
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(map(repr, valid))}")


INTERVAL = re.compile(r"^([\[(])\s*([^,\s]+)\s*,\s*([^,\s]+)\s*([\])])$")


class StrictConfig:
    """Mixin for `@dataclass` configs.

    `from_dict` rejects unknown keys and names the valid ones. On construction every field is checked against its
    annotation (an `int` takes neither 2.5 nor True, a `float` no string, a `tuple` a list or tuple of the right
    elements, since JSON has no tuples) and, where the class lists it in `RANGES`, against its interval; only then
    does the class's own `__post_init__` run, so its cross-field checks see well-typed values.

    An interval is written "[low, high]", a round bracket for an open end; a bound is a number, `inf`, or the name
    of another field of the config ("[0, steps]"). A field that is None skips its interval.
    """

    RANGES: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_dict(cls, values: dict):
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; valid keys: {known}")
        return cls(**values)

    def __post_init__(self):
        check_fields(self)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A config's own __post_init__ replaces the mixin's; wrapped, it still runs after the field checks.
        own = cls.__dict__.get("__post_init__")
        if own is not None:
            @functools.wraps(own)
            def checked_post_init(self, *init_vars):
                check_fields(self)
                own(self, *init_vars)

            cls.__post_init__ = checked_post_init


def check_fields(config) -> None:
    """Raise a ValueError naming the first field of `config` whose value has the wrong type or lies outside its
    interval in `RANGES`, with the type or interval expected."""
    cls = type(config)
    annotations = _annotations(cls)
    for name in cls.RANGES:
        if name not in annotations:
            raise TypeError(f"{cls.__name__}.RANGES names {name!r}, which is not one of its fields")
    for f in fields(cls):
        value = getattr(config, f.name)
        if not _accepts(value, annotations[f.name]):
            raise ValueError(f"{cls.__name__}.{f.name} must be {_describe(annotations[f.name])}, "
                             f"got {value!r} ({type(value).__name__})")
        if f.name in cls.RANGES and value is not None:
            _check_interval(config, f.name, value, cls.RANGES[f.name])


@functools.cache
def _annotations(cls) -> dict:
    return typing.get_type_hints(cls)


def _accepts(value, annotation) -> bool:
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(value, argument) for argument in arguments)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        if origin is list or (len(arguments) == 2 and arguments[1] is Ellipsis):
            return all(_accepts(item, arguments[0]) for item in value) if arguments else True
        return len(value) == len(arguments) and all(map(_accepts, value, arguments))
    if origin is dict:
        return isinstance(value, dict) and (not arguments or all(
            _accepts(k, arguments[0]) and _accepts(v, arguments[1]) for k, v in value.items()))
    if origin is collections.abc.Callable:
        return callable(value)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    raise TypeError(f"StrictConfig cannot check a field annotated {annotation!r}; annotate it with plain types")


def _describe(annotation) -> str:
    """The type a value needs, in words."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(argument) for argument in arguments)
    words = {type(None): "None", bool: "True or False", int: "an integer", float: "a number", str: "a string"}
    if annotation in words:
        return words[annotation]
    if origin in (tuple, list):
        return f"a list or tuple {annotation}"
    return f"a {getattr(origin or annotation, '__name__', annotation)}"


def _check_interval(config, name: str, value, interval: str) -> None:
    match = INTERVAL.match(interval)
    if match is None:
        raise TypeError(f"{type(config).__name__}.RANGES[{name!r}] = {interval!r} is not an interval like '[0, 1)'")
    left, low, high, right = match.groups()
    low_value, high_value = _bound(config, low), _bound(config, high)
    inside = (low_value < value if left == "(" else low_value <= value) and \
             (value < high_value if right == ")" else value <= high_value)
    if not inside:
        # Half lines read as ">= 0"; a bound that is another field is shown with its value.
        if high_value == math.inf and right == ")":
            valid = f"{'>' if left == '(' else '>='} {low}"
        else:
            valid = f"in {interval}"
        resolved = [f"{bound} = {_bound(config, bound)}" for bound in (low, high) if _is_field(bound)]
        raise ValueError(f"{type(config).__name__}.{name} must be {valid}"
                         + (f" ({', '.join(resolved)})" if resolved else "") + f", got {value!r}")


def _is_field(bound: str) -> bool:
    return bound.isidentifier() and bound != "inf"


def _bound(config, bound: str) -> float:
    return getattr(config, bound) if _is_field(bound) else float(bound)
