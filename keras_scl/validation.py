"""Argument checks shared by the public classes, with one message shape:
"Expected `name` to be ... Received: name=value"."""

import math


def check_number(name, value, *, minimum, strict, maximum=None, strict_maximum=False, reason=""):
    """Returns `float(value)` if it is a finite real number within the bounds.

    Args:
        name: the argument's name, for the message.
        value: the value received.
        minimum: the lower bound.
        strict: whether `value` must exceed `minimum` (`>`) or may equal it (`>=`).
        maximum: the upper bound, or `None` for none.
        strict_maximum: whether `value` must stay below `maximum` (`<`) or
            may equal it (`<=`).
        reason: optional clause explaining the bound, e.g. ", so that ...".
    """
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and (value > minimum if strict else value >= minimum)
        and (maximum is None or (value < maximum if strict_maximum else value <= maximum))
    )
    if not ok:
        bound = f"{'>' if strict else '>='} {minimum:g}"
        if maximum is not None:
            bound += f" and {'<' if strict_maximum else '<='} {maximum:g}"
        raise ValueError(f"Expected `{name}` to be a finite number {bound}{reason}. Received: {name}={value!r}")
    return float(value)


def check_int(name, value, *, minimum, allow_none=False):
    """Returns `value` if it is an int >= `minimum` (or `None` when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = f"an int >= {minimum}" + (" or None" if allow_none else "")
        raise ValueError(f"Expected `{name}` to be {expected}. Received: {name}={value!r}")
    return value
