"""Radio faults: what can go wrong in the air, seeded so that a failing test replays."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Faults:
    """Fault settings of the air.  Change them at start (CLI flags) or at run time (the
    ``faults`` control frame, or :meth:`simulator.radio.server.Radio.set_faults`).

    - ``loss``: probability that an unacknowledged packet is lost: an advertisement, a
      notification or a write without response.  Acknowledged ATT operations (reads, writes
      with response, indications) are retried by the link layer on real radios, so they are
      delayed, not lost.
    - ``disconnect_per_s``: probability per second that each live link drops (supervision
      timeout); both ends see the disconnect.
    - ``latency_ms`` / ``jitter_ms``: delivery delay of every frame, order kept per receiver.
    - ``out_of_range``: board ids or addresses that nobody can hear: their links drop, their
      advertisements are not received and connections to them time out.
    - ``conn_interval_ms`` / ``packets_per_event``: the airtime budget of every link: at most
      ``packets_per_event`` ACL packets (one 240-byte notification each, with 251-byte LE data
      packets) per connection interval; ``conn_interval_ms`` 0 leaves the link unlimited.
    """

    loss: float = 0.0
    disconnect_per_s: float = 0.0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    out_of_range: set[str] = field(default_factory=set)
    conn_interval_ms: float = 0.0
    packets_per_event: int = 6

    def update(self, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if key == "out_of_range":
                self.out_of_range = {str(v) for v in value}
            elif key in ("loss", "disconnect_per_s", "latency_ms", "jitter_ms"):
                number = float(value)
                if number < 0 or (key in ("loss", "disconnect_per_s") and number > 1):
                    raise ValueError(f"fault {key}={value!r} out of range")
                setattr(self, key, number)
            elif key == "conn_interval_ms":
                number = float(value)
                # Core Spec Vol 6 Part B 4.5.1: connInterval is 7.5 ms to 4 s (0 here: no budget).
                if number != 0 and not 7.5 <= number <= 4000:
                    raise ValueError(f"fault {key}={value!r}: 0 or 7.5..4000 ms")
                self.conn_interval_ms = number
            elif key == "packets_per_event":
                count = int(value)
                if count < 1:
                    raise ValueError(f"fault {key}={value!r}: at least 1")
                self.packets_per_event = count
            else:
                raise ValueError(f"unknown fault {key!r}")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_of_range"] = sorted(self.out_of_range)
        return d
