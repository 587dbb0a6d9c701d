from rest_framework import parsers
from rest_framework.exceptions import ParseError

# Deeper than any document the portal stores; well below what Python can decode, encode and
# hand to PostgreSQL with the stack a request has left.
MAX_DEPTH = 100


def depth(value):
    """How deeply arrays and objects nest in a decoded JSON document (a scalar is 0)."""
    deepest, pending = 0, [(value, 0)]
    while pending:  # no recursion: that is what is being measured
        item, level = pending.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            deepest = max(deepest, level)
            continue
        deepest = max(deepest, level + 1)
        pending.extend((child, level + 1) for child in item)
    return deepest


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, but a document nested too deeply is a 400: Python's decoder gives up
    with a RecursionError (a 500) on a few kilobytes of brackets."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH}.") from None
        if depth(data) > MAX_DEPTH:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH}.")
        return data
