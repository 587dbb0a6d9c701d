"""The one table of the portal: every list page is a Table.

A Table joins a queryset the view has already scoped to the user, a django-filter FilterSet
(column filters, including the JSON attribute filter of servers), a free-text search, sorting,
keyset pagination, the columns the user chose (remembered per user), row selection for bulk
actions the user may take, and CSV/JSON export of everything that matches.

    class ServerTable(Table):
        name = "servers"
        filterset_class = ServerFilterSet
        search_fields = ("hostname", "serial")
        default_sort = "hostname"
        columns = (
            Column("hostname", "Host name", sort="hostname", link=lambda s: s.get_absolute_url()),
            Column("status", "Status", sort="status", badge=True),
            Column("tenant", "Tenant", value="tenant.name", default=False),
        )

    def server_list(request):
        table = ServerTable(request, selectors.servers_for(request.user))
        if table.export:
            return table.export_response()
        return render(request, "inventory/server_list.html", {"table": table})

and in the template `{% include "dcportal/table.html" %}`.

Pages are keyset pages (`after=` / `before=` cursors over the sort column and the primary key),
so page 2000 of a 100k-row list costs what page 1 does; the total is counted up to
COUNT_LIMIT rows and shown as "10000+" beyond. Unknown query parameters are errors shown on
the page (and no rows), never silently ignored.
"""

import base64
import csv
import datetime
import json
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import QueryDict, StreamingHttpResponse
from django.utils import timezone
from django.utils.text import slugify

PAGE_SIZES = (25, 50, 100, 250)
DEFAULT_PAGE_SIZE = 50
COUNT_LIMIT = 10000
CONTROL_PARAMETERS = frozenset({"q", "sort", "after", "before", "size", "export", "page"})
EXPORT_CHUNK = 2000


@dataclass(frozen=True)
class Column:
    """One column. `value` is an attribute path ("tenant.name") or a function of the row; it
    gives the cell's text and the exported value. `cell` names a template fragment in
    dcportal/table/cells/ for richer HTML (badge, mono, tags, progress, bool, link)."""

    name: str
    label: str
    value: object = None
    sort: str = ""
    default: bool = True
    link: object = None  # function of the row -> URL
    cell: str = ""
    css: str = ""

    def value_of(self, row):
        getter = self.value if self.value is not None else self.name
        if callable(getter):
            return getter(row)
        for part in getter.split("."):
            if row is None:
                return None
            row = getattr(row, part, None)
            if callable(row) and not hasattr(row, "all"):
                row = row()
        return row

    def url_of(self, row):
        return self.link(row) if self.link else ""


@dataclass(frozen=True)
class BulkAction:
    """A button under the table that posts the selected ids (`ids`) to `url`."""

    name: str
    label: str
    url: str
    permission: str = ""
    fields: tuple = ()  # extra (name, label, choices or None) inputs shown beside the button
    danger: bool = False


@dataclass
class Cell:
    column: Column
    value: object
    url: str = ""

    @property
    def text(self):
        return display(self.value)


@dataclass
class Row:
    obj: object
    cells: list = field(default_factory=list)

    @property
    def pk(self):
        return self.obj.pk


def display(value):
    """How a value reads in a cell and in CSV."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime.datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list | tuple | set):
        return ", ".join(display(item) for item in value)
    if hasattr(value, "all") and callable(value.all):
        return ", ".join(str(item) for item in value.all())
    return str(value)


def plain(value):
    """A JSON-able version of a cell's value, for the JSON export."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(item) for item in value]
    if hasattr(value, "all") and callable(value.all):
        return [str(item) for item in value.all()]
    return str(value)


def _encode(values):
    raw = json.dumps([plain(value) for value in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(text):
    try:
        padded = text + "=" * (-len(text) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise ValidationError("The page link is damaged; start from the first page.") from None
    if not isinstance(values, list) or len(values) != 2:
        raise ValidationError("The page link is damaged; start from the first page.")
    return values


_TABLES = {}


def registered(name):
    """The Table class named `name` (for the column chooser), or None."""
    return _TABLES.get(name)


class Table:
    name = ""
    columns: tuple = ()
    filterset_class = None
    search_fields: tuple = ()
    default_sort = "pk"  # a field; "-field" for descending
    bulk_actions: tuple = ()
    export_name = ""
    empty_text = "Nothing matches."
    row_template = ""  # an optional per-row extra (e.g. a dialog link)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            _TABLES[cls.name] = cls

    def __init__(self, request, queryset, *, filter_form=None):
        self.request = request
        self.user = request.user
        self.params = request.GET
        self.errors = {}
        self.filter_form = filter_form
        if filter_form is not None:
            # Its own ids: a dialog's form on the same page has fields of the same names.
            filter_form.auto_id = "filter_%s"
        self.export = self.params.get("export", "")
        if self.export and self.export not in ("csv", "json"):
            self.errors["export"] = ["Export as csv or json."]
        self._unknown_parameters()
        self.search = self.params.get("q", "").strip()
        self.sort_column, self.descending = self._sort()
        self.page_size = self._page_size()
        self.visible = self._visible_columns()
        self._cursor, self._backwards = self._cursor_filter()
        self.queryset = self._filtered(queryset)
        self._rows = None

    # -- request parsing -------------------------------------------------------------------

    def _filter_names(self):
        return set(self.filterset_class.base_filters) if self.filterset_class else set()

    def _unknown_parameters(self):
        known = CONTROL_PARAMETERS | self._filter_names()
        for name in sorted(set(self.params) - known):
            self.errors[name] = ["Unknown filter. Known: " + ", ".join(sorted(known - {"page"}))]

    def _sort(self):
        wanted = self.params.get("sort", "") or self.default_sort
        descending = wanted.startswith("-")
        key = wanted.lstrip("-")
        sortable = {c.name: c.sort for c in self.columns if c.sort}
        if key in sortable:
            return sortable[key], descending
        if key == self.default_sort.lstrip("-") or key == "pk":
            return key, descending
        self.errors["sort"] = [f"Cannot sort by {key!r}; one of {', '.join(sortable)}."]
        return self.default_sort.lstrip("-"), self.default_sort.startswith("-")

    def _page_size(self):
        text = self.params.get("size", "")
        if not text:
            return DEFAULT_PAGE_SIZE
        if not text.isdigit() or int(text) not in PAGE_SIZES:
            self.errors["size"] = [f"A page holds {', '.join(map(str, PAGE_SIZES))} rows."]
            return DEFAULT_PAGE_SIZE
        return int(text)

    def _visible_columns(self):
        from dcportal import preferences

        names = {c.name for c in self.columns}
        chosen = preferences.table_columns(self.user, self.name)
        chosen = [name for name in chosen if name in names] if chosen else []
        if not chosen:
            return [c for c in self.columns if c.default]
        return [c for c in self.columns if c.name in chosen]

    # -- the rows --------------------------------------------------------------------------

    def _filtered(self, queryset):
        if self.errors:
            return queryset.none()
        if self.filterset_class is not None:
            data = QueryDict(mutable=True)
            for name in self._filter_names():
                for value in self.params.getlist(name):
                    if value != "":
                        data.appendlist(name, value)
            filterset = self.filterset_class(data, queryset=queryset, request=self.request)
            if not filterset.is_valid():
                self.errors.update({name: list(errs) for name, errs in filterset.errors.items()})
                return queryset.none()
            queryset = filterset.qs
        if self.search and self.search_fields and "q" not in self._filter_names():
            query = Q()
            for name in self.search_fields:
                query |= Q(**{f"{name}__icontains": self.search})
            queryset = queryset.filter(query)
        return queryset

    def _ordering(self, reverse=False):
        descending = self.descending != reverse
        sign = "-" if descending else ""
        if self.sort_column == "pk":
            return [f"{sign}pk"]
        return [f"{sign}{self.sort_column}", f"{sign}pk"]

    def _after(self, cursor, *, backwards):
        value, pk = _decode(cursor)
        descending = self.descending != backwards
        op = "lt" if descending else "gt"
        if self.sort_column == "pk":
            return Q(**{f"pk__{op}": pk})
        return Q(**{f"{self.sort_column}__{op}": value}) | Q(
            **{self.sort_column: value, f"pk__{op}": pk}
        )

    def _cursor_filter(self):
        """(Q or None, backwards) of the after=/before= cursor; a damaged one is an error."""
        before, after = self.params.get("before", ""), self.params.get("after", "")
        backwards = bool(before) and not after
        try:
            if after:
                return self._after(after, backwards=False), False
            if before:
                return self._after(before, backwards=True), True
        except ValidationError as exc:
            self.errors["page"] = exc.messages
        return None, backwards

    def _page(self):
        queryset = self.queryset
        if self.errors:
            return [], False, False
        before, after = self.params.get("before", ""), self.params.get("after", "")
        backwards = self._backwards
        if self._cursor is not None:
            queryset = queryset.filter(self._cursor)
        rows = list(queryset.order_by(*self._ordering(reverse=backwards))[: self.page_size + 1])
        more = len(rows) > self.page_size
        rows = rows[: self.page_size]
        if backwards:
            rows.reverse()
            return rows, more, True
        return rows, bool(after or before), more

    def _cursor_of(self, obj):
        if self.sort_column == "pk":
            return _encode([obj.pk, obj.pk])
        value = obj
        for part in self.sort_column.split("__"):
            value = getattr(value, part, None)
        return _encode([value, obj.pk])

    def _build(self):
        if self._rows is None:
            objects, has_previous, has_next = self._page()
            self._rows = [
                Row(
                    obj,
                    [Cell(c, c.value_of(obj), c.url_of(obj)) for c in self.visible],
                )
                for obj in objects
            ]
            self.has_previous, self.has_next = has_previous, has_next
        return self._rows

    @property
    def rows(self):
        return self._build()

    @property
    def count(self):
        """Matching rows, counted up to COUNT_LIMIT (then "10000+"): the page stays fast."""
        if self.errors:
            return "0"
        found = self.queryset.order_by().values("pk")[: COUNT_LIMIT + 1].count()
        return f"{COUNT_LIMIT}+" if found > COUNT_LIMIT else str(found)

    # -- links -----------------------------------------------------------------------------

    def url(self, **changes):
        """This page's query with `changes` (None removes a parameter)."""
        query = self.params.copy()
        for name in ("after", "before", "export"):
            query.pop(name, None)
        for name, value in changes.items():
            query.pop(name, None)
            if value is not None:
                query[name] = value
        encoded = query.urlencode()
        return f"?{encoded}" if encoded else "?"

    @property
    def next_url(self):
        rows = self._build()
        return self.url(after=self._cursor_of(rows[-1].obj)) if rows and self.has_next else ""

    @property
    def previous_url(self):
        rows = self._build()
        return self.url(before=self._cursor_of(rows[0].obj)) if rows and self.has_previous else ""

    @property
    def first_url(self):
        return self.url() if self.has_previous else ""

    def sort_url(self, column):
        key = column.name
        current = self.params.get("sort", "") or self.default_sort
        return self.url(sort=f"-{key}" if current == key else key)

    @property
    def headers(self):
        current = self.params.get("sort", "") or self.default_sort
        result = []
        for column in self.visible:
            state = ""
            if column.sort and current.lstrip("-") == column.name:
                state = "descending" if current.startswith("-") else "ascending"
            result.append(
                {
                    "column": column,
                    "url": self.sort_url(column) if column.sort else "",
                    "state": state,
                }
            )
        return result

    @property
    def csv_url(self):
        return self.url(export="csv")

    @property
    def json_url(self):
        return self.url(export="json")

    @property
    def choosable(self):
        shown = {c.name for c in self.visible}
        return [(c, c.name in shown) for c in self.columns]

    @property
    def actions(self):
        """The bulk actions this user may take."""
        return [
            action
            for action in self.bulk_actions
            if not action.permission or self.user.has_perm(action.permission)
        ]

    @property
    def page_sizes(self):
        return PAGE_SIZES

    @property
    def dom_id(self):
        return f"table-{slugify(self.name)}"

    @property
    def active_filters(self):
        names = self._filter_names()
        return [(name, value) for name, value in self.params.items() if name in names and value]

    # -- export ----------------------------------------------------------------------------

    def export_response(self):
        """Every matching row (not only this page) in the visible columns, streamed."""
        columns = self.visible
        rows = self.queryset.order_by(*self._ordering()).iterator(chunk_size=EXPORT_CHUNK)
        filename = f"{self.export_name or self.name}-{timezone.now():%Y%m%d-%H%M%S}"
        if self.export == "json":
            body = _json_lines(columns, rows)
            content_type = "application/json"
            filename += ".json"
        else:
            body = _csv_lines(columns, rows)
            content_type = "text/csv; charset=utf-8"
            filename += ".csv"
        response = StreamingHttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


class _Echo:
    def write(self, value):
        return value


def _csv_lines(columns, rows):
    writer = csv.writer(_Echo())
    yield writer.writerow([column.label for column in columns])
    for obj in rows:
        yield writer.writerow([_csv_safe(display(c.value_of(obj))) for c in columns])


def _csv_safe(text):
    # A cell starting with = + - @ runs as a formula in spreadsheets (CSV injection); plain
    # numbers stay numbers.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text):
        return f"'{text}"
    return text


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _json_lines(columns, rows):
    yield "["
    first = True
    for obj in rows:
        item = {c.name: plain(c.value_of(obj)) for c in columns}
        yield ("" if first else ",") + "\n" + json.dumps(item)
        first = False
    yield "\n]\n"
