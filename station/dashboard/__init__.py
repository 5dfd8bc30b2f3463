"""`qgs dashboard`: a read-only web page for the whole network, fed by MQTT (server.py)."""
