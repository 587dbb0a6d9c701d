"""xCAT-style node ranges, parsed without touching the database.

    node01                    a host name, or a tag if no server is called that
    node[01-20]               node01 … node20 (a leading zero sets the width)
    rack1-node[1-3]           rack1-node1, rack1-node2, rack1-node3
    r[1-2]n[1,5-6]            r1n1, r1n5, r1n6, r2n1, r2n5, r2n6
    node[01-04],db1,compute   comma lists mix all of the above

A word without brackets is a host name or a tag: which one is for the selector to decide
(inventory.selectors.resolve_noderange), since it depends on what exists.
"""

import itertools
import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

MAX_NAMES = 10000
WORD = re.compile(r"[a-z0-9._:-]+")
RANGE = re.compile(r"(?P<start>[0-9]+)(?:-(?P<end>[0-9]+))?")


@dataclass(frozen=True)
class Term:
    text: str
    names: tuple  # what the term expands to
    expanded: bool  # True when brackets made the names (host names only, never tags)


def _split_top_level(text):
    """Split on commas outside brackets; brackets must balance and not nest."""
    parts, current, depth = [], [], 0
    for char in text:
        if char == "[":
            if depth:
                raise ValidationError(f"Nested '[' in the node range {text!r}.", code="invalid")
            depth = 1
        elif char == "]":
            if not depth:
                raise ValidationError(f"Unmatched ']' in the node range {text!r}.", code="invalid")
            depth = 0
        elif char == "," and not depth:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if depth:
        raise ValidationError(f"Unclosed '[' in the node range {text!r}.", code="invalid")
    parts.append("".join(current))
    return parts


def _numbers(spec, term):
    """'01-03,7' -> ['01', '02', '03', '7']."""
    out = []
    for part in spec.split(","):
        match = RANGE.fullmatch(part.strip())
        if not match:
            raise ValidationError(
                f"{term!r}: [{spec}] is not a number range such as [1-20] or [01-04,07].",
                code="invalid",
            )
        start, end = match["start"], match["end"] or match["start"]
        low, high = int(start), int(end)
        if low > high:
            raise ValidationError(f"{term!r}: the range [{part}] runs backwards.", code="invalid")
        if high - low >= MAX_NAMES:
            raise ValidationError(
                f"{term!r}: [{part}] names more than {MAX_NAMES} nodes.", code="invalid"
            )
        # node[01-20] keeps the width of its zero-padded start; node[1-20] has none.
        width = len(start) if len(start) > 1 and start.startswith("0") else 0
        out.extend(str(number).zfill(width) for number in range(low, high + 1))
    return out


def _expand(term):
    pieces = re.split(r"(\[[^\]]*\])", term)
    choices = []
    for piece in pieces:
        if piece.startswith("["):
            choices.append(_numbers(piece[1:-1], term))
        elif piece:
            if not WORD.fullmatch(piece):
                raise ValidationError(
                    f"{term!r}: only letters, digits, '.', '-', '_' and ':' may appear "
                    "outside brackets.",
                    code="invalid",
                )
            choices.append([piece])
    total = 1
    for options in choices:
        total *= len(options)
        if total > MAX_NAMES:
            raise ValidationError(f"{term!r} names more than {MAX_NAMES} nodes.", code="invalid")
    return tuple("".join(parts) for parts in itertools.product(*choices))


def parse(text):
    """The terms of a node range, in order. Raises ValidationError on malformed input."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("An empty node range names no node.", code="invalid")
    terms, total = [], 0
    for raw in _split_top_level(text.strip().lower()):
        term = raw.strip()
        if not term:
            raise ValidationError(
                f"Empty item in the node range {text!r} (two commas in a row?).", code="invalid"
            )
        names = _expand(term)
        total += len(names)
        if total > MAX_NAMES:
            raise ValidationError(
                f"The node range {text!r} names more than {MAX_NAMES} nodes.", code="invalid"
            )
        terms.append(Term(term, names, expanded="[" in term))
    return terms


def expand(text):
    """Every name a node range spells, in order, without duplicates (tags stay as words)."""
    return list(dict.fromkeys(name for term in parse(text) for name in term.names))
