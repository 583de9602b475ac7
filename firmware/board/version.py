# Firmware version: status characteristic and Firmware Revision String (0x2A26).
FIRMWARE_VERSION = "1.0.0"
MODEL = "STEDI-ST1"
MANUFACTURER = "STEDI"
