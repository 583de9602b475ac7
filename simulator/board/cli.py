"""`stedi sim board`."""

from stedi.unbuilt import unbuilt_command

board = unbuilt_command("The virtual board", 4)
