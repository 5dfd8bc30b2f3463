"""Time-tagger drivers: IDQ ID1000-style (SCPI over ZeroMQ) and the Swabian SDK adapter."""
