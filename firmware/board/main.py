# Runs at every boot after boot.py: start the STEDI board (see app.py).
import app

app.main()
