"""The shared core: lake contract, lake storage, settings, typed state records and small tools; imports no part."""

__version__ = "0.1.0"
