"""`stedi sim` commands: each lives beside the part of the simulator it starts."""

import typer

from simulator.board.cli import board
from simulator.fleet_cli import fleet
from simulator.radio.cli import radio

app = typer.Typer(no_args_is_help=True)
app.command("board", help="Run a virtual board that the real mpremote can flash.")(board)
app.command("radio", help="Run the virtual BLE radio: the shared air between boards and gateways.")(radio)
app.command("fleet", help="Write landing data for a fleet of simulated customers into a lake.")(fleet)
