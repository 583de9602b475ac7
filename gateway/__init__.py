"""The gateway, the phone-app stand-in (BLE central, consent, spool, upload, telemetry): imports the core and the firmware's protocol module."""
