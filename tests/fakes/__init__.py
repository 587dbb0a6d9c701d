"""Servers of the project's own that stand in for peers no machine here can run."""
