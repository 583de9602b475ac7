# Synthetic sensor for boards without one: a deterministic step-like pattern
# (foot up, foot down) from a reading counter, so tests can predict every value.

from sensors import ERR_TIMEOUT


class SimSensor:
    def __init__(self, low=120, high=450, period=40, error_every=0):
        self.low = low
        self.high = high
        self.period = period if period > 1 else 2
        self.error_every = error_every
        self.n = 0

    def value_at(self, n):
        """Triangle wave between low and high over `period` readings."""
        half = self.period // 2
        phase = n % self.period
        if phase > half:
            phase = self.period - phase
        return self.low + (self.high - self.low) * phase // half

    def read(self):
        n = self.n
        self.n = n + 1
        if self.error_every and n % self.error_every == self.error_every - 1:
            return ERR_TIMEOUT
        return self.value_at(n)
