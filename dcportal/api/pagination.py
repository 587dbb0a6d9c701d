from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    """Keyset pagination: constant cost at any depth and no COUNT(*) over large tables."""

    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 1000
