"""``python -m stedi_app``: the ``stedi`` command."""

from stedi_app.cli import main

main()
