"""Firmware for the STEDI step trainer board (MicroPython) and its build/flash tools (CPython)."""
