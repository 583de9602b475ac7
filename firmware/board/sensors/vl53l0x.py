# VL53L0X time-of-flight ranger over I2C, continuous back-to-back mode.
# Register numbers from ST's VL53L0X API (vl53l0x_device.h).  The init is the
# reduced sequence (2V8 I/O, stop variable, limit checks, interrupt on new sample);
# ST's SPAD and reference calibration are not run, which costs some accuracy at
# long range but needs no calibration tables on the board.

import time

from sensors import ERR_BUS, ERR_RANGE, ERR_TIMEOUT

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


SYSRANGE_START = const(0x00)
SYSTEM_SEQUENCE_CONFIG = const(0x01)
SYSTEM_INTERRUPT_CONFIG_GPIO = const(0x0A)
SYSTEM_INTERRUPT_CLEAR = const(0x0B)
RESULT_INTERRUPT_STATUS = const(0x13)
RESULT_RANGE_STATUS = const(0x14)  # range in mm is big-endian at +10 (0x1E)
MSRC_CONFIG_CONTROL = const(0x60)
GPIO_HV_MUX_ACTIVE_HIGH = const(0x84)
VHV_CONFIG_PAD_SCL_SDA_EXTSUP_HV = const(0x89)
IDENTIFICATION_MODEL_ID = const(0xC0)
MODEL_ID = const(0xEE)
OUT_OF_RANGE_MM = const(8190)  # the device reports 8190/8191 when nothing is in range
MAX_POLLS = const(20)


class VL53L0X:
    # Back-to-back ranging completes one measurement per timing budget, about 33 ms by default
    # (Pololu-derived drivers; this driver keeps the default): read() faster than 30 Hz finds no
    # new sample within its MAX_POLLS and times out.
    MAX_RATE_HZ = 30

    def __init__(self, i2c, address=0x29):
        self.i2c = i2c
        self.address = address
        self._b1 = bytearray(1)
        self._b12 = bytearray(12)
        self.stop_variable = 0
        model = self._read(IDENTIFICATION_MODEL_ID)
        if model != MODEL_ID:
            raise OSError("VL53L0X not found at 0x%02x (model id 0x%02x)" % (address, model))
        self._init()

    def _read(self, reg):
        self.i2c.readfrom_mem_into(self.address, reg, self._b1)
        return self._b1[0]

    def _write(self, reg, value):
        self._b1[0] = value
        self.i2c.writeto_mem(self.address, reg, self._b1)

    def _write_seq(self, pairs):
        for reg, value in pairs:
            self._write(reg, value)

    def _init(self):
        # 2V8 I/O levels, standard I2C mode
        self._write(VHV_CONFIG_PAD_SCL_SDA_EXTSUP_HV, self._read(VHV_CONFIG_PAD_SCL_SDA_EXTSUP_HV) | 0x01)
        self._write(0x88, 0x00)
        # the stop variable, read behind the private register page
        self._write_seq(((0x80, 0x01), (0xFF, 0x01), (0x00, 0x00)))
        self.stop_variable = self._read(0x91)
        self._write_seq(((0x00, 0x01), (0xFF, 0x00), (0x80, 0x00)))
        # disable the MSRC and pre-range signal-rate limit checks
        self._write(MSRC_CONFIG_CONTROL, self._read(MSRC_CONFIG_CONTROL) | 0x12)
        # interrupt when a new sample is ready, active low
        self._write(SYSTEM_INTERRUPT_CONFIG_GPIO, 0x04)
        self._write(GPIO_HV_MUX_ACTIVE_HIGH, self._read(GPIO_HV_MUX_ACTIVE_HIGH) & 0xEF)
        self._write(SYSTEM_INTERRUPT_CLEAR, 0x01)
        self._write(SYSTEM_SEQUENCE_CONFIG, 0xE8)
        self.start()

    def start(self):
        """Continuous back-to-back ranging."""
        self._write_seq(((0x80, 0x01), (0xFF, 0x01), (0x00, 0x00), (0x91, self.stop_variable),
                         (0x00, 0x01), (0xFF, 0x00), (0x80, 0x00)))
        self._write(SYSRANGE_START, 0x02)

    def stop(self):
        self._write(SYSRANGE_START, 0x01)

    def read(self):
        try:
            polls = 0
            while (self._read(RESULT_INTERRUPT_STATUS) & 0x07) == 0:
                polls += 1
                if polls >= MAX_POLLS:
                    return ERR_TIMEOUT
                time.sleep_us(250)
            self.i2c.readfrom_mem_into(self.address, RESULT_RANGE_STATUS, self._b12)
            self._write(SYSTEM_INTERRUPT_CLEAR, 0x01)
        except OSError:
            return ERR_BUS
        mm = (self._b12[10] << 8) | self._b12[11]
        if mm >= OUT_OF_RANGE_MM:
            return ERR_RANGE
        return mm
