"""The virtual BLE radio: the shared air between boards and gateways."""
