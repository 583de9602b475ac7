# HC-SR04 ultrasonic ranger: a 10 us pulse on TRIG starts a measurement; ECHO then
# stays high for the sound's round trip (HC-SR04 datasheet: 58 us per cm).

import time

import machine

from sensors import ERR_BUSY, ERR_RANGE, ERR_TIMEOUT

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


MIN_MM = const(20)  # datasheet range 2 cm .. 400 cm
MAX_MM = const(4000)


def pulse_to_mm(pulse_us):
    # sound at 20 C: 343 m/s = 0.343 mm/us, halved for the round trip
    return (pulse_us * 343) // 2000


class HCSR04:
    # With no echo the sensor holds ECHO high about 38 ms, and it ignores a trigger until ECHO
    # falls: at 20 Hz (50 ms) a ping never starts inside the last one's echo, with time to spare
    # for a late sample.  (The datasheet suggests a 60 ms cycle; above 20 Hz pings collide.)
    MAX_RATE_HZ = 20

    def __init__(self, trigger, echo, timeout_us=30000):
        self.trigger = trigger
        self.echo = echo
        self.timeout_us = timeout_us
        self.last_pulse_us = 0
        trigger.value(0)

    def read(self):
        if self.echo.value():
            # ECHO still high from the last ping (its echo outlasted our timeout, or there was
            # none): the sensor ignores a trigger now, and time_pulse_us would start timing at
            # once (the pin is already high) and report the pulse's leftover tail as a distance.
            return ERR_BUSY
        t = self.trigger
        t.value(0)
        time.sleep_us(5)
        t.value(1)
        time.sleep_us(10)
        t.value(0)
        pulse = machine.time_pulse_us(self.echo, 1, self.timeout_us)
        self.last_pulse_us = pulse
        if pulse < 0:  # -1: echo never rose, -2: echo never fell (no object in range)
            return ERR_TIMEOUT
        mm = pulse_to_mm(pulse)
        if mm < MIN_MM or mm > MAX_MM:
            return ERR_RANGE
        return mm
