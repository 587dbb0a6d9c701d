"""Attribute queries over Server.attributes (JSONB), one syntax for the API, the portal and the CLI.

    cpu.cores__gte=8          numbers compare as numbers
    vendor=Dell               equality; the value is JSON when it parses (8, true, null, {...}),
                              else a plain string
    disks__contains="sda"     an array holding the element; {"k": v} / [..] is JSON containment
    rack__exists              the key is present (rack__exists=false: absent)
    role__in=web,db           any of a comma list (or a JSON array: role__in=["a,b","c"])
    disks.0.size__gt=100      a numeric segment is an array index

Lookups: eq (default), ne, gt, gte, lt, lte, contains, icontains, exists, in. Several
expressions AND together. Anything malformed raises ValidationError: a query that cannot be
understood must never fall back to matching everything.

`parse()` is pure. `to_q()` turns conditions into a Q built from expressions on the jsonb column
only (no models, no queryset), so it serves any queryset whose model has the field, e.g.
`to_q(conditions, field="server__attributes")` for interfaces.
"""

import json
import math
import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import F, Func, JSONField, Q, TextField, Value
from django.db.models.fields.json import DataContains, HasKey
from django.db.models.functions import Cast
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IContains,
    IsNull,
    LessThan,
    LessThanOrEqual,
)

LOOKUPS = ("eq", "ne", "gt", "gte", "lt", "lte", "contains", "icontains", "exists", "in")
COMPARISONS = {
    "gt": GreaterThan,
    "gte": GreaterThanOrEqual,
    "lt": LessThan,
    "lte": LessThanOrEqual,
}
KEY = re.compile(r"[A-Za-z0-9_-]+")
INDEX = re.compile(r"[0-9]+")
MAX_LENGTH = 2000
MAX_DEPTH = 16
MAX_IN_VALUES = 500
SYNTAX = "expected path__lookup=value, e.g. cpu.cores__gte=8, vendor=Dell or rack__exists"


@dataclass(frozen=True)
class Condition:
    path: tuple  # keys; all-digit segments index arrays
    lookup: str
    value: object = None  # a tuple of values for `in`, a bool for `exists`
    expression: str = ""

    @property
    def dotted(self):
        return ".".join(self.path)

    @property
    def has_index(self):
        return any(INDEX.fullmatch(key) for key in self.path)


def _error(expression, message):
    return ValidationError(f"{expression!r}: {message}", code="invalid")


def parse_value(text, *, expression=None):
    """JSON when the text parses as JSON, else the text itself as a string.

    Text that starts like JSON ({, [ or ") but does not parse is an error rather than a string:
    it is almost always a typo, and matching the literal text would silently find nothing.
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _OutOfRange as exc:
        raise _error(expression or text, str(exc)) from None
    except ValueError as exc:
        if text[:1] in ("{", "[", '"'):
            raise _error(expression or text, f"the value is not valid JSON: {exc}") from None
        return text


class _OutOfRange(Exception):
    pass


def _finite_float(text):
    # 1e999 is valid JSON but a float infinity in Python, which PostgreSQL's jsonb refuses.
    value = float(text)
    if not math.isfinite(value):
        raise _OutOfRange(f"the number {text} is out of range")
    return value


def _refuse_constant(name):
    # NaN and Infinity are not JSON; PostgreSQL would refuse them later, as a 500.
    raise ValueError(f"{name} is not a JSON number")


def parse_path(text, *, expression=None):
    """'cpu.cores' -> ('cpu', 'cores'), validating every key."""
    expression = expression or text
    if not text:
        raise _error(expression, f"no attribute path; {SYNTAX}")
    keys = tuple(text.split("."))
    if len(keys) > MAX_DEPTH:
        raise _error(expression, f"the path is deeper than {MAX_DEPTH} keys")
    for key in keys:
        if not KEY.fullmatch(key):
            shown = key or "(empty)"
            raise _error(
                expression,
                f"invalid key {shown!r} in the path {text!r}: keys are letters, digits, "
                "'_' and '-', separated by dots",
            )
    return keys


def parse(expression):
    """One expression -> Condition, or ValidationError with a message a user can act on."""
    if not isinstance(expression, str):
        raise ValidationError("An attribute filter must be text.", code="invalid")
    expression = expression.strip()
    if not expression:
        raise ValidationError(f"Empty attribute filter; {SYNTAX}.", code="invalid")
    if len(expression) > MAX_LENGTH:
        raise _error(expression[:40] + "…", f"longer than {MAX_LENGTH} characters")
    left, has_value, raw = expression.partition("=")
    left, raw = left.strip(), raw.strip()
    if "__" in left:
        path_text, _, lookup = left.rpartition("__")
        if lookup not in LOOKUPS:
            raise _error(
                expression,
                f"unknown lookup {lookup!r}; known: {', '.join(LOOKUPS)} (for a key that "
                "contains '__', add the lookup explicitly, e.g. my__key__eq=1)",
            )
    else:
        path_text, lookup = left, "eq"
    path = parse_path(path_text, expression=expression)

    if lookup == "exists":
        if not has_value:
            return Condition(path, "exists", True, expression)
        flag = raw.lower()
        if flag not in ("true", "false"):
            raise _error(expression, "exists takes no value, or true or false")
        return Condition(path, "exists", flag == "true", expression)
    if not has_value:
        raise _error(expression, f"the {lookup} lookup needs a value; {SYNTAX}")

    if lookup == "in":
        value = _parse_in(raw, expression)
    elif lookup == "icontains":
        value = parse_value(raw, expression=expression) if raw.startswith('"') else raw
        if not isinstance(value, str) or not value:
            raise _error(expression, "icontains needs a non-empty piece of text")
    else:
        value = parse_value(raw, expression=expression)
        if lookup in COMPARISONS and (
            isinstance(value, bool) or not isinstance(value, int | float | str)
        ):
            raise _error(expression, f"{lookup} compares with a number or a string only")
    return Condition(path, lookup, value, expression)


def _parse_in(raw, expression):
    if raw.startswith("["):
        values = parse_value(raw, expression=expression)
    else:
        items = [item.strip() for item in raw.split(",")]
        if any(not item for item in items):
            raise _error(expression, "in takes a comma list without empty items, e.g. a,b,c")
        values = [parse_value(item, expression=expression) for item in items]
    if not values:
        raise _error(expression, "in needs at least one value")
    if len(values) > MAX_IN_VALUES:
        raise _error(expression, f"in takes at most {MAX_IN_VALUES} values")
    return tuple(values)


def parse_all(expressions):
    """Parse every expression; all errors are reported together."""
    conditions, errors = [], []
    for expression in expressions:
        try:
            conditions.append(parse(expression))
        except ValidationError as exc:
            errors.extend(exc.messages)
    if errors:
        raise ValidationError(errors, code="invalid")
    return conditions


def flatten(value, prefix=""):
    """(dotted path, leaf) pairs of a JSON value, in the path syntax queries use:
    {"cpu": {"cores": 8}, "disks": ["sda"]} -> ("cpu.cores", 8), ("disks.0", "sda")."""
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from flatten(child, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value and prefix:
        for index, child in enumerate(value):
            yield from flatten(child, f"{prefix}.{index}")
    elif prefix:
        yield prefix, value


# SQL -------------------------------------------------------------------------------------------


def _path_array(path):
    # A text[] literal; keys are validated to [A-Za-z0-9_-], and quoting each one keeps a key
    # spelled "null" from becoming an SQL NULL element.
    return Value("{" + ",".join(f'"{key}"' for key in path) + "}")


def _at(field, path):
    """The jsonb value at `path` (SQL NULL when absent): field #> '{a,b}'."""
    return Func(
        F(field),
        _path_array(path),
        template="(%(expressions)s)",
        arg_joiner=" #> ",
        output_field=JSONField(),
    )


def _text_at(field, path):
    return Func(
        F(field),
        _path_array(path),
        template="(%(expressions)s)",
        arg_joiner=" #>> ",
        output_field=TextField(),
    )


def _jsonb(value):
    return Cast(Value(json.dumps(value)), output_field=JSONField())


def _type_is(field, path, name):
    return Q(Exact(Func(_at(field, path), function="jsonb_typeof", output_field=TextField()), name))


def _nested(path, value):
    for key in reversed(path):
        value = {key: value}
    return value


def _contains_q(field, path, value):
    # Without array indexes in the path, containment is asked of the whole column
    # (attributes @> {"a": {"b": v}}), which the GIN index on attributes answers.
    if any(INDEX.fullmatch(key) for key in path):
        return Q(DataContains(_at(field, path), Value(value, output_field=JSONField())))
    return Q(DataContains(F(field), Value(_nested(path, value), output_field=JSONField())))


def _eq_q(field, path, value):
    if isinstance(value, dict | list):
        # Containment is not equality for objects and arrays.
        return Q(Exact(_at(field, path), _jsonb(value)))
    return _contains_q(field, path, value)


def _exists_q(field, path):
    if len(path) == 1:
        return Q(HasKey(F(field), path[0]))
    return Q(IsNull(_at(field, path), False))


def condition_q(condition, field="attributes"):
    path, lookup, value = condition.path, condition.lookup, condition.value
    if lookup == "eq":
        return _eq_q(field, path, value)
    if lookup == "ne":
        return _exists_q(field, path) & ~_eq_q(field, path, value)
    if lookup == "in":
        q = Q()
        for item in value:
            q |= _eq_q(field, path, item)
        return q
    if lookup == "exists":
        return _exists_q(field, path) if value else ~_exists_q(field, path)
    if lookup in COMPARISONS:
        # jsonb compares numbers numerically and never raises on a value of another type, and
        # the type test keeps a string "16" or a boolean out of a numeric comparison.
        kind = "string" if isinstance(value, str) else "number"
        return _type_is(field, path, kind) & Q(COMPARISONS[lookup](_at(field, path), _jsonb(value)))
    if lookup == "contains":
        if isinstance(value, list):
            return _contains_q(field, path, value)
        element = _contains_q(field, path, [value])
        if isinstance(value, dict):
            return _contains_q(field, path, value) | element
        return element
    if lookup == "icontains":
        return _type_is(field, path, "string") & Q(IContains(_text_at(field, path), value))
    raise ValueError(f"unhandled lookup {lookup}")  # parse() lets no other lookup through


def to_q(conditions, field="attributes"):
    """AND of the conditions (an empty list gives an empty Q: no restriction)."""
    q = Q()
    for condition in conditions:
        q &= condition_q(condition, field)
    return q


def filter_q(expressions, field="attributes"):
    """parse_all() then to_q(): the one call API, portal and CLI make."""
    return to_q(parse_all(expressions), field)
