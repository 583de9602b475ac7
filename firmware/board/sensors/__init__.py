# Distance sensors.  Every driver has read() -> distance in mm (0..65535), or a
# negative error code (no exception, no allocation) that the sampler counts.

ERR_TIMEOUT = -1
ERR_RANGE = -2
ERR_BUS = -3
ERR_BUSY = -4  # still busy with the last measurement: not measured now

# A driver's MAX_RATE_HZ (default 50, the protocol's limit) is the fastest rate it measures at;
# config.py refuses more, and so does SET_RATE.


def make_sensor(config):
    """The sensor named by config["sensor"], built from its settings."""
    kind = config["sensor"]
    if kind == "sim":
        from sensors.sim import SimSensor

        return SimSensor(**config.get("sim", {}))
    import machine

    if kind == "hcsr04":
        from sensors.hcsr04 import HCSR04

        pins = config["pins"]
        return HCSR04(machine.Pin(pins["trigger"], machine.Pin.OUT), machine.Pin(pins["echo"], machine.Pin.IN),
                      config.get("echo_timeout_us", 30000))
    if kind == "vl53l0x":
        from sensors.vl53l0x import VL53L0X

        pins = config["pins"]
        i2c = machine.I2C(config.get("i2c_bus", 0), scl=machine.Pin(pins["scl"]), sda=machine.Pin(pins["sda"]),
                          freq=400000)
        return VL53L0X(i2c, config.get("i2c_address", 0x29))
    raise ValueError("unknown sensor %r (hcsr04, vl53l0x or sim)" % kind)
