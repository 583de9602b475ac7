# A person doing the STEDI balance exercise on the step trainer, as a pure function of
# (seed, epoch ms).  Runs unchanged under MicroPython (inside a virtual board, behind the
# machine shim's sensors) and CPython (the gateway's simulated phone accelerometer), so
# both sides agree about every step without talking to each other.
#
# Only integer arithmetic until the very last division: MicroPython's unix port and CPython
# share 64-bit ints (products here stay below 2**62, so no bignum is allocated on the board)
# and IEEE doubles for the final ``mg / 1000``.
#
# Timeline: time is cut into blocks of BLOCK_MS.  A block is either a pause (the person
# rests, foot off the step) or an exercise bout with its own cadence.  Within a bout, step k
# starts at ``block_start + k * period + jitter(k)``; during a step the foot comes down onto
# the platform above the sensor (distance drops), rests, and lifts off again.

BLOCK_MS = 20000          # length of one bout or pause
ACTIVE_PERMILLE = 750     # share of blocks in which the person exercises
PERIOD_MIN_MS = 900       # fastest cadence (ms per step)
PERIOD_SPAN_MS = 600      # cadence varies from PERIOD_MIN_MS to PERIOD_MIN_MS + PERIOD_SPAN_MS
JITTER_DIV = 10           # step start jitter is within +- period / JITTER_DIV
DROPOUT_PERMILLE = 8      # share of samples the sensor loses (returns None)
NOISE_MM = 3              # +- noise on the distance, in mm
SAMPLE_SLOT_MS = 10       # noise and dropouts change every SAMPLE_SLOT_MS

_M32 = 0xFFFFFFFF

# sin(2*pi*i/32) * 1000, rounded: a table rather than math.sin so both interpreters agree.
_SIN = (0, 195, 383, 556, 707, 831, 924, 981, 1000, 981, 924, 831, 707, 556, 383, 195,
        0, -195, -383, -556, -707, -831, -924, -981, -1000, -981, -924, -831, -707, -556, -383, -195)


def _mix(x):
    # 32-bit integer hash (a well-known avalanche mix); 0x45D9F3B has 27 bits, so
    # the products stay below 2**59.
    x &= _M32
    x = ((x >> 16) ^ x) * 0x45D9F3B & _M32
    x = ((x >> 16) ^ x) * 0x45D9F3B & _M32
    return (x >> 16) ^ x


def _h(seed, a, b=0):
    # Hash of (seed, a, b) for a and b that may exceed 32 bits (epoch ms).
    return _mix(seed ^ _mix((a & _M32) ^ _mix((a >> 32) ^ _mix(b & _M32 ^ 0x9E37))))


def seed_for_serial(serial):
    """FNV-1a (32-bit) of the serial's UTF-8 bytes: the board and the gateway derive the
    same person from the step trainer's serial number."""
    h = 0x811C9DC5
    for c in serial.encode():
        h = ((h ^ c) * 0x01000193) & _M32
    return h


def baseline_mm(seed):
    """Distance the sensor reads with no foot on the step (260-299 mm, fixed per trainer)."""
    return 260 + _h(seed, 1) % 40


def _block(seed, b):
    # (active, period_ms, depth_mm) of block b.
    r = _h(seed, b, 2)
    active = r % 1000 < ACTIVE_PERMILLE
    period = PERIOD_MIN_MS + (r >> 10) % PERIOD_SPAN_MS
    depth = 45 + (r >> 20) % 30
    return active, period, depth


def _step_start(seed, b, period, k):
    # Step k of bout b; the bout's steps start half a period in, so jitter never moves a
    # step into the previous block.
    j = period // JITTER_DIV
    return b * BLOCK_MS + period // 2 + k * period + (_h(seed, b * 4096 + k, 3) % (2 * j + 1)) - j


def _fits(s, period, b):
    # A step is taken only if a whole period fits before the bout ends: no half steps at
    # the boundary, so the first step of the next bout cannot follow too closely.
    return s + period <= (b + 1) * BLOCK_MS


def step_at(seed, t_ms):
    """The step the person is taking at ``t_ms``: (start_ms, duration_ms, depth_mm), or None
    during a pause or between bouts."""
    b = t_ms // BLOCK_MS
    active, period, depth = _block(seed, b)
    if not active:
        return None
    k = (t_ms - b * BLOCK_MS - period // 2) // period
    # Jitter moves a step start by at most period/JITTER_DIV, so t lies in step k-1, k or k+1.
    s = _step_start(seed, b, period, k)
    if t_ms < s:
        k -= 1
        s = _step_start(seed, b, period, k)
    else:
        s1 = _step_start(seed, b, period, k + 1)
        if t_ms >= s1:
            k += 1
            s = s1
    if k < 0 or not _fits(s, period, b):
        return None
    dur = min(_step_start(seed, b, period, k + 1) - s, period)
    if t_ms >= s + dur:
        return None
    # A step's own depth varies a little around the bout's depth: variability of the gait.
    d = depth + _h(seed, s, 4) % 11 - 5
    return s, dur, d


def steps_between(seed, t0_ms, t1_ms):
    """Start times of every step beginning in [t0_ms, t1_ms): the ground truth for tests and
    for labelling simulated data."""
    out = []
    b = t0_ms // BLOCK_MS
    while b * BLOCK_MS < t1_ms:
        active, period, _ = _block(seed, b)
        if active:
            k = 0
            while True:
                s = _step_start(seed, b, period, k)
                if not _fits(s, period, b) or s >= t1_ms:
                    break
                if s >= t0_ms:
                    out.append(s)
                k += 1
        b += 1
    return out


def _foot_permille(phase):
    # How far the foot is down (0-1000) at phase 0-999 of a step: down quickly, rest, lift.
    if phase < 250:
        return phase * 4
    if phase < 550:
        return 1000
    if phase < 800:
        return (800 - phase) * 4
    return 0


def distance_mm(seed, t_ms):
    """What the distance sensor reads at ``t_ms``, in millimetres (about 200-300), or None
    when the sample is lost (no echo / out of range)."""
    slot = t_ms // SAMPLE_SLOT_MS
    r = _h(seed, slot, 5)
    if r % 1000 < DROPOUT_PERMILLE:
        return None
    base = baseline_mm(seed)
    noise = (r >> 10) % (2 * NOISE_MM + 1) - NOISE_MM
    step = step_at(seed, t_ms)
    if step is None:
        return base + noise
    s, dur, depth = step
    phase = (t_ms - s) * 1000 // dur
    return base - depth * _foot_permille(phase) // 1000 + noise


def accel_mg(seed, t_ms):
    """The phone's accelerometer (held by the person) at ``t_ms`` in milli-g: (x, y, z),
    z vertical.  A step shows as a push (z above 1 g) while the foot goes down and a dip
    while it lifts; x and y sway slowly."""
    r = _h(seed, t_ms // SAMPLE_SLOT_MS, 6)
    nx = r % 21 - 10
    ny = (r >> 8) % 21 - 10
    nz = (r >> 16) % 31 - 15
    sway = _SIN[(t_ms // 125) % 32]
    x = sway * 40 // 1000 + nx
    y = _SIN[(t_ms // 190 + 8) % 32] * 25 // 1000 + ny
    z = 1000 + nz
    step = step_at(seed, t_ms)
    if step is not None:
        s, dur, depth = step
        i = (t_ms - s) * 32 // dur
        amp = 150 + depth * 3
        z += _SIN[i] * amp // 1000
        x += _SIN[(i * 2) % 32] * 60 // 1000
    return x, y, z


def accel_g(seed, t_ms):
    """``accel_mg`` in g (floats), like a phone's accelerometer API."""
    x, y, z = accel_mg(seed, t_ms)
    return x / 1000, y / 1000, z / 1000
