from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

# Query parameters that are not filters but are understood by every list endpoint.
CONTROL_PARAMETERS = {"cursor", "page_size", "ordering", "format"}


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter, but an unknown query parameter is a 400, never silently ignored."""

    def filter_queryset(self, request, queryset, view):
        if getattr(view, "action", None) == "list" or request.method == "GET":
            filterset_class = self.get_filterset_class(view, queryset)
            known = set(CONTROL_PARAMETERS)
            if filterset_class is not None:
                known.update(filterset_class.base_filters)
            unknown = sorted(set(request.query_params) - known)
            if unknown:
                raise ValidationError(
                    {
                        name: ["Unknown filter. Known: " + ", ".join(sorted(known))]
                        for name in unknown
                    }
                )
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        if not filterset.is_valid():
            # The form's own rendering of its messages: django-filter's re-formats each one with
            # `%`, which breaks on a message that quotes input holding a "%".
            raise ValidationError(
                {name: list(messages) for name, messages in filterset.errors.items()}
            )
        return filterset.qs
