from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError

INVALID_CURSOR = "Invalid cursor: use the next or previous link of a list as it is."


def _field_at(model, path):
    """The model field at the end of an ordering path such as "server__hostname"."""
    field = None
    for name in path.split("__"):
        if model is None:
            return None
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            return None
        model = field.related_model
    return field


class CursorPagination(pagination.CursorPagination):
    """Keyset pagination: constant cost at any depth and no COUNT(*) over large tables.

    A cursor is client input: one that does not decode, or whose position does not fit the
    ordering field, is a 400 on `cursor` (DRF answers 404, or lets the database refuse it)."""

    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 1000

    def paginate_queryset(self, queryset, request, view=None):
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from None
        if cursor is not None and cursor.position is not None:
            self._check_position(cursor.position)
        return cursor

    def _check_position(self, position):
        field = _field_at(self._model, self.ordering[0].lstrip("-"))
        try:
            if "\x00" in position:
                raise ValueError("NUL")  # PostgreSQL refuses it in any text
            if field is not None:
                field.to_python(position)
        except (DjangoValidationError, ValueError, TypeError):
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from None
