"""The application on top: the `stedi` command and the hardware-free demo; may import the core and every part."""
