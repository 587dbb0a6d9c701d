"""Hypervisor drivers: plain data in, plain data out (see base.py)."""
