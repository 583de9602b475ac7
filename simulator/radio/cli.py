"""`stedi sim radio`."""

from stedi.unbuilt import unbuilt_command

radio = unbuilt_command("The virtual radio", 4)
