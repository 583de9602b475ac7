from tests.gateway.simboard import sim_rig  # noqa: F401 - fixture for the end-to-end tests
