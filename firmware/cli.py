"""`stedi firmware` commands."""

from stedi.unbuilt import unbuilt_group

app = unbuilt_group("Firmware commands", 3)
