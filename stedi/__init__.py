"""The shared core: lake contract, lake storage, settings, local servers and small tools; imports no part."""

__version__ = "0.1.0"
