"""A user's own portal settings: which columns each table shows. Not audited (nobody else's
data changes) and never shared between users."""

from django.core.exceptions import ValidationError

from dcportal.models import UserPreference

MAX_COLUMNS = 64


def _key(table):
    return f"table:{table}:columns"


def table_columns(user, table):
    """The column names the user chose for `table`, or [] for the table's defaults."""
    if not user.is_authenticated:
        return []
    cache = user.__dict__.setdefault("_dcportal_preferences", {})
    key = _key(table)
    if key not in cache:
        row = UserPreference.objects.filter(user=user, key=key).values_list("value", flat=True)
        value = row.first()
        cache[key] = value if isinstance(value, list) else []
    return cache[key]


def set_table_columns(user, table, columns, *, allowed):
    """Remember `columns` (names out of `allowed`) for `table`; [] returns to the defaults."""
    columns = list(dict.fromkeys(columns))
    unknown = sorted(set(columns) - set(allowed))
    if unknown:
        raise ValidationError({"columns": f"No such column: {', '.join(unknown)}."})
    if len(columns) > MAX_COLUMNS:
        raise ValidationError({"columns": "Too many columns."})
    key = _key(table)
    if columns:
        UserPreference.objects.update_or_create(user=user, key=key, defaults={"value": columns})
    else:
        UserPreference.objects.filter(user=user, key=key).delete()
    user.__dict__.setdefault("_dcportal_preferences", {})[key] = columns
    return columns
