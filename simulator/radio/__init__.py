"""The virtual BLE radio: a bumble hub, the shared air between boards and gateways; imports nothing outside
the simulator and bumble."""
