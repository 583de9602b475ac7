"""Hardware-free twins of everything physical (boards, radio, person, phone, fleets): imports the core only."""
