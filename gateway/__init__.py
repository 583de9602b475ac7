"""The gateway: stands in for the STEDI phone app (BLE central, consent, spool, upload, telemetry)."""
