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
import shlex
import traceback

import jinja2
from jinja2 import StrictUndefined
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


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        if operator == "**":
            if isinstance(right, int) and abs(right) > 64 and abs(left) > 1:
                raise SecurityError("the power is too large")
            return left**right
        size = 1
        for a, b in ((left, right), (right, left)):
            if isinstance(a, (str, list, tuple)) and isinstance(b, int):
                size = len(a) * b
        if size > MAX_VALUE:
            raise SecurityError(f"a value of {size} items is too large")
        return left * right


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
