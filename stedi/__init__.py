"""STEDI step trainer: shared contract, lake access and the `stedi` command."""

__version__ = "0.1.0"
