"""`stedi pipeline` commands and `stedi query`."""

from stedi.unbuilt import unbuilt_command, unbuilt_group

app = unbuilt_group("The pipeline commands", 6)
query = unbuilt_command("Queries over the lake", 6)
