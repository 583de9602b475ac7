# Ring buffer of readings in preallocated bytearrays.
#
# Each slot holds ticks (u32, masked ms, see clock.py) and distance (u16).  Sequence
# numbers are implicit: the slot of seq s is s % capacity, and the buffer holds the
# consecutive seqs oldest .. next-1.  Readings leave only when acknowledged; when
# full, the oldest is dropped and counted.  push() allocates nothing.
# The slots live in blocks of 256 readings (1.5 KB): a small heap that is fragmented
# may not have one 18 KB block free when it has 18 KB free.

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


SLOT_SIZE = const(6)
SEQ_MASK = const(0xFFFFFFFF)
# A boot gives seqs below this: they and next stay MicroPython small ints (31-bit signed on
# 32-bit ports: a larger one would allocate in the sampling loop) and never reach the wire's
# u32 wrap.  A board that gets here carries on as a new boot (app.Board.renew_boot): about
# 620 days of sampling at 20 Hz, 250 days at 50 Hz.
SEQ_LIMIT = const(0x3FFFFFFF)
_BLOCK_SHIFT = const(8)  # 256 readings a block
_BLOCK_MASK = const(0xFF)


class ReadingRing:
    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError("ring capacity must be >= 1")
        self.capacity = capacity
        nblocks = (capacity + _BLOCK_MASK) >> _BLOCK_SHIFT
        self.blocks = [bytearray((_BLOCK_MASK + 1) * SLOT_SIZE) for _ in range(nblocks)]
        self.oldest = 0  # oldest held (unacknowledged) seq
        self.next = 0  # seq the next reading gets
        self.cursor = 0  # next seq to send
        self.dropped = 0

    def fill(self):
        return self.next - self.oldest

    def unsent(self):
        return self.next - self.cursor

    def used_up(self):
        """This boot has given its last seq: no reading may be pushed until a new boot."""
        return self.next >= SEQ_LIMIT

    def push(self, ticks, distance):
        """Store a reading; returns its seq.  Drops the oldest when full."""
        if self.next - self.oldest >= self.capacity:
            self.oldest += 1
            self.dropped += 1
            if self.cursor < self.oldest:
                self.cursor = self.oldest
        seq = self.next
        slot = seq % self.capacity
        b = self.blocks[slot >> _BLOCK_SHIFT]
        i = (slot & _BLOCK_MASK) * SLOT_SIZE
        b[i] = ticks & 0xFF
        b[i + 1] = (ticks >> 8) & 0xFF
        b[i + 2] = (ticks >> 16) & 0xFF
        b[i + 3] = (ticks >> 24) & 0xFF
        b[i + 4] = distance & 0xFF
        b[i + 5] = (distance >> 8) & 0xFF
        self.next = seq + 1
        return seq

    def ticks_at(self, seq):
        slot = seq % self.capacity
        b = self.blocks[slot >> _BLOCK_SHIFT]
        i = (slot & _BLOCK_MASK) * SLOT_SIZE
        return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)

    def distance_at(self, seq):
        slot = seq % self.capacity
        b = self.blocks[slot >> _BLOCK_SHIFT]
        i = (slot & _BLOCK_MASK) * SLOT_SIZE + 4
        return b[i] | (b[i + 1] << 8)

    def holds(self, seq):
        return self.oldest <= seq < self.next

    def ack(self, seq):
        """Release readings <= seq.  False (nothing changes) if seq was never produced."""
        if seq >= self.next:
            return False
        if seq >= self.oldest:
            self.oldest = seq + 1
            if self.cursor < self.oldest:
                self.cursor = self.oldest
        return True

    def resume(self, seq):
        """Acknowledge everything before seq and send again from seq (or from the oldest
        held reading if seq was dropped).  False if seq > next."""
        if seq > self.next:
            return False
        if seq > self.oldest:
            self.oldest = seq
        self.cursor = seq if seq > self.oldest else self.oldest
        return True

    def rewind(self):
        """A new connection: everything unacknowledged is sent again."""
        self.cursor = self.oldest

    def advance(self, count):
        self.cursor += count

    def reset(self):
        self.oldest = self.next = self.cursor = 0
        self.dropped = 0
