"""Modules that shadow MicroPython built-ins on a virtual board's MICROPYPATH.

They are written for MicroPython; only ``stedi_physics`` is also meant for CPython
(through ``simulator.physics``).
"""
