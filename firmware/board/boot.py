# Runs first at every boot.  Keep it minimal: main.py starts the firmware.
import gc

gc.collect()
