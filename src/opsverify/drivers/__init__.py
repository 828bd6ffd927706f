"""Drivers: how opsverify reaches each external system. One module per system, plain functions.

Checks say *what* must hold; drivers know *how* to ask. Every call has a timeout.
"""
