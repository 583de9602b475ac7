"""The switchable TCP proxy lives in ``simulator.tcp_proxy`` (the fault suite uses it too)."""

from simulator.tcp_proxy import TcpProxy

__all__ = ["TcpProxy"]
