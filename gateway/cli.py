"""`stedi gateway` commands."""

from stedi.unbuilt import unbuilt_group

app = unbuilt_group("The gateway commands", 5)
