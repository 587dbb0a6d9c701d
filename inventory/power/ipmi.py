"""The ipmi driver (being written)."""
