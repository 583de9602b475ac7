"""``stedi demo``: the whole hardware-free chain in one command (issue #8)."""

from stedi.unbuilt import unbuilt_command

demo = unbuilt_command("The end-to-end demo", 8)
