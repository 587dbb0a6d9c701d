"""The one sandboxed Jinja2 environment for templates stored in the database.

Templates get plain data only (dicts, lists, strings, numbers: see deploy.rendering for the
documented context), run in an immutable sandbox (no attribute starting with "_", no method that
changes a list or dict, no file or import), with StrictUndefined so that a misspelt name is an
error rather than an empty string in a kickstart. Included snippets come from the dict the
caller passes, never from the file system. Output size and the size of values built by `*` and
`**` are bounded, so a template cannot exhaust the portal's memory.

Every failure is a TemplateError with a message and, where Jinja knows it, the line number.
"""

import contextvars
import functools
import json
import re
import shlex
import traceback

import jinja2
from jinja2 import StrictUndefined
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_OUTPUT = 4 * 1024 * 1024  # characters of rendered output
MAX_VALUE = 1024 * 1024  # length of a string or list made with * or **, and of a power
_MAIN = "<template>"

_snippets = contextvars.ContextVar("dcportal_template_snippets", default=None)


class TemplateError(Exception):
    """A template that does not compile or render. `lineno` is 1-based, or None."""

    def __init__(self, message, *, lineno=None, name=None):
        self.message = message
        self.lineno = lineno
        self.name = name if name not in (None, _MAIN) else None
        where = ""
        if self.name:
            where = f" in snippet {self.name!r}"
        if lineno:
            where += f" at line {lineno}"
        super().__init__(f"{message}{where}")


def _load_snippet(name):
    source = (_snippets.get() or {}).get(name)
    if source is None:
        return None
    # Snippets are looked up in the render that asks for them: never reuse another render's.
    return source, name, lambda: (_snippets.get() or {}).get(name) == source


_WIDTH = re.compile(r"\d+")


def _bound(size, what="value"):
    if size > MAX_VALUE:
        raise SecurityError(f"a {what} of {size} characters or items is too large")


def _check_format(fmt):
    """A %- or {}-format string may not ask for a field wider than the value bound."""
    for digits in _WIDTH.findall(str(fmt)):
        _bound(int(digits) if len(digits) < 10 else MAX_VALUE + 1, "format width")


def _size(value):
    return len(value) if isinstance(value, (str, list, tuple, dict)) else 0


def _guarded_filters(filters):
    """Jinja's filters, with the ones that can grow a value checked before they run.

    A value is at most MAX_VALUE long (every operator and filter below keeps it so), so an
    upper bound of what a filter builds can be computed from its arguments first."""
    plain = dict(filters)

    def indent(s, width=4, *args, **kwargs):
        pad = width if isinstance(width, int) else len(str(width))
        _bound(len(str(s)) + (str(s).count("\n") + 1) * pad)
        return plain["indent"](s, width, *args, **kwargs)

    def center(value, width=80):
        _bound(max(int(width), 0))
        return plain["center"](value, width)

    def replace(eval_ctx, s, old, new, count=None):
        s, old, new = str(s), str(old), str(new)
        hits = s.count(old) if old else len(s) + 1
        if count is not None:
            hits = min(hits, max(int(count), 0))
        _bound(len(s) + hits * len(new))
        return plain["replace"](eval_ctx, s, old, new, count)

    def join(eval_ctx, value, d="", attribute=None):
        items = list(value)
        _bound(sum(len(str(item)) for item in items) + len(str(d)) * len(items))
        return plain["join"](eval_ctx, items, d, attribute)

    def batch(value, linecount, fill_with=None):
        _bound(max(int(linecount), 0), "batch")
        return plain["batch"](value, linecount, fill_with)

    def slice_(value, slices, fill_with=None):
        _bound(max(int(slices), 0), "slice")
        return plain["slice"](value, slices, fill_with)

    def format_(value, *args, **kwargs):
        _check_format(value)
        return plain["format"](value, *args, **kwargs)

    def sum_(environment, iterable, attribute=None, start=0):
        items = list(iterable)
        if any(isinstance(item, (list, tuple, str)) for item in items):
            _bound(sum(_size(item) for item in items) + _size(start))
        return plain["sum"](environment, items, attribute, start)

    for name, function in (
        ("indent", indent),
        ("center", center),
        ("replace", jinja2.pass_eval_context(replace)),
        ("join", jinja2.pass_eval_context(join)),
        ("batch", batch),
        ("slice", slice_),
        ("format", format_),
        ("sum", jinja2.pass_environment(sum_)),
    ):
        filters[name] = function
    # wordwrap, truncate, tojson and the rest build no more than a small multiple of their input.


class _Generator(CodeGenerator):
    def visit_Concat(self, node, frame):
        # `a ~ b` would otherwise join without a bound, and a loop can double a value with it.
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Sandbox(ImmutableSandboxedEnvironment):
    code_generator_class = _Generator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def bounded_concat(self, parts):
        parts = [str(part) for part in parts]
        _bound(sum(map(len, parts)))
        return "".join(parts)

    def call_binop(self, context, operator, left, right):
        if operator == "**":
            if isinstance(right, int) and abs(right) > 64 and abs(left) > 1:
                raise SecurityError("the power is too large")
            return left**right
        if operator == "%":
            if isinstance(left, str):
                _check_format(left)
            return left % right
        if operator == "+":
            _bound(_size(left) + _size(right))
            return left + right
        size = 1
        for a, b in ((left, right), (right, left)):
            if isinstance(a, (str, list, tuple)) and isinstance(b, int):
                size = len(a) * b
        _bound(size)
        return left * right

    def wrap_str_format(self, value):
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None

        def checked(*args, **kwargs):
            _check_format(value.__self__)
            return wrapped(*args, **kwargs)

        return checked


def _shell_quote(value):
    return shlex.quote(str(value))


def _to_json(value, indent=None):
    return json.dumps(value, indent=indent, sort_keys=True)


@functools.lru_cache(maxsize=1)
def environment():
    env = _Sandbox(
        loader=jinja2.FunctionLoader(_load_snippet),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        auto_reload=True,
    )
    _guarded_filters(env.filters)
    env.filters["shell_quote"] = _shell_quote
    env.filters["to_json"] = _to_json
    return env


@functools.lru_cache(maxsize=512)
def _compile(source):
    return environment().from_string(source)


def _lineno_from(exc):
    """The template line a render error was raised from (Jinja maps its frames to it)."""
    name, lineno = None, getattr(exc, "lineno", None)
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == _MAIN or frame.filename in (_snippets.get() or {}):
            return frame.filename, frame.lineno
    return name, lineno


def check(source):
    """Compile `source` without rendering; raises TemplateError on a syntax error."""
    try:
        _compile(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(exc.message, lineno=exc.lineno, name=exc.name) from None


def render(source, context, *, snippets=None):
    """Render `source` with the plain-data `context`; `snippets` maps include names to sources."""
    token = _snippets.set(dict(snippets or {}))
    try:
        template = _compile(source)
        parts, size = [], 0
        for chunk in template.generate(**context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise TemplateError(f"The output is larger than {MAX_OUTPUT} characters")
            parts.append(chunk)
        return "".join(parts)
    except TemplateError:
        raise
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(exc.message, lineno=exc.lineno, name=exc.name) from None
    except jinja2.TemplateNotFound as exc:
        name, lineno = _lineno_from(exc)
        raise TemplateError(f"No snippet named {exc.name!r}", lineno=lineno, name=name) from None
    except RecursionError:
        raise TemplateError("The templates include each other without end") from None
    except jinja2.UndefinedError as exc:
        name, lineno = _lineno_from(exc)
        raise TemplateError(exc.message or "undefined", lineno=lineno, name=name) from None
    except SecurityError as exc:
        name, lineno = _lineno_from(exc)
        raise TemplateError(f"Not allowed: {exc}", lineno=lineno, name=name) from None
    except Exception as exc:  # noqa: BLE001 (any error a template's own code raises)
        name, lineno = _lineno_from(exc)
        raise TemplateError(f"{type(exc).__name__}: {exc}", lineno=lineno, name=name) from None
    finally:
        _snippets.reset(token)
