# Register-level model of a VL53L0X for the driver tests: the identification
# register, the private page holding the stop variable, continuous ranging and a
# result block that becomes ready a given number of status polls after each clear.


class FakeVL53L0X:
    def __init__(self, ranges, model_id=0xEE, stop_variable=0x3C, ready_after=0, fail_reads=0):
        self.regs = bytearray(256)
        self.private = bytearray(256)  # registers behind 0xFF=0x01 / 0x80=0x01
        self.regs[0xC0] = model_id
        self.private[0x91] = stop_variable
        self.ranges = list(ranges)
        self.ready_after = ready_after
        self.fail_reads = fail_reads
        self.polls = 0
        self.mode = 0  # SYSRANGE_START value last written
        self.log = []

    def _paged(self):
        return self.regs[0xFF] == 0x01 and self.regs[0x80] == 0x01

    def read(self, reg):
        if self.fail_reads:
            self.fail_reads -= 1
            raise OSError(5)  # EIO
        if reg == 0x91 and self._paged():
            return self.private[0x91]
        if reg == 0x13:
            if self.mode != 0x02 or not self.ranges:
                return 0
            self.polls += 1
            return 0x07 if self.polls > self.ready_after else 0
        if reg in (0x1E, 0x1F):
            mm = self.ranges[0] if self.ranges else 0
            return (mm >> 8) & 0xFF if reg == 0x1E else mm & 0xFF
        return self.regs[reg]

    def write(self, reg, value):
        self.log.append((reg, value))
        if reg == 0x91 and self._paged():
            self.private[0x91] = value
            return
        self.regs[reg] = value
        if reg == 0x00 and not (self.regs[0xFF] == 0x01):
            self.mode = value
        if reg == 0x0B and value == 0x01:  # interrupt clear: this sample is consumed
            if self.ranges and self.polls > self.ready_after:
                self.ranges.pop(0)
            self.polls = 0
