"""`stedi sim` commands."""

from stedi.unbuilt import unbuilt_group

app = unbuilt_group("The simulator commands", 4)
