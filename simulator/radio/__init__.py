"""The virtual BLE radio: the shared air between boards and gateways; imports nothing outside the simulator."""
