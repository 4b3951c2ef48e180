"""Field readers that raise ProtocolError naming the dotted path of the bad field."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import ProtocolError

_MISSING = object()


def _path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def req_obj(obj: Mapping[str, Any], key: str, parent: str) -> dict[str, Any]:
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        raise ProtocolError("is required", field=_path(parent, key))
    if not isinstance(value, dict):
        raise ProtocolError("must be an object", field=_path(parent, key))
    return value


def opt_obj(obj: Mapping[str, Any], key: str, parent: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolError("must be an object", field=_path(parent, key))
    return value


def req_str(obj: Mapping[str, Any], key: str, parent: str, *, allow_empty: bool = False) -> str:
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        raise ProtocolError("is required", field=_path(parent, key))
    if not isinstance(value, str):
        raise ProtocolError("must be a string", field=_path(parent, key))
    if not value and not allow_empty:
        raise ProtocolError("must not be empty", field=_path(parent, key))
    return value


def opt_str(obj: Mapping[str, Any], key: str, parent: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError("must be a string", field=_path(parent, key))
    return value


def req_str_list(obj: Mapping[str, Any], key: str, parent: str) -> list[str]:
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        raise ProtocolError("is required", field=_path(parent, key))
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ProtocolError("must be a list of non-empty strings", field=_path(parent, key))
    return value


def opt_num(
    obj: Mapping[str, Any],
    key: str,
    parent: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    field = _path(parent, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError("must be a number", field=field)
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        finite = False
    if not finite:
        raise ProtocolError("must be a finite number", field=field)
    if minimum is not None:
        if exclusive_minimum and value <= minimum:
            raise ProtocolError(f"must be greater than {minimum:g}", field=field)
        if not exclusive_minimum and value < minimum:
            raise ProtocolError(f"must be at least {minimum:g}", field=field)
    if maximum is not None and value > maximum:
        raise ProtocolError(f"must be at most {maximum:g}", field=field)
    return float(value)


def opt_int(
    obj: Mapping[str, Any], key: str, parent: str, *, minimum: int, maximum: int
) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    field = _path(parent, key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("must be an integer", field=field)
    if not minimum <= value <= maximum:
        raise ProtocolError(f"must be between {minimum} and {maximum}", field=field)
    return value


def opt_bool(obj: Mapping[str, Any], key: str, parent: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ProtocolError("must be true or false", field=_path(parent, key))
    return value
