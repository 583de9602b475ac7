"""`stedi sim fleet`."""

from stedi.unbuilt import unbuilt_command

fleet = unbuilt_command("The fleet generator", 6)
