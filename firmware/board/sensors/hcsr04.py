# HC-SR04 ultrasonic ranger: a 10 us pulse on TRIG starts a measurement; ECHO then
# stays high for the sound's round trip (HC-SR04 datasheet: 58 us per cm).

import time

import machine

from sensors import ERR_RANGE, ERR_TIMEOUT

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
    def __init__(self, trigger, echo, timeout_us=30000):
        self.trigger = trigger
        self.echo = echo
        self.timeout_us = timeout_us
        self.last_pulse_us = 0
        trigger.value(0)

    def read(self):
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
