"""Wire front-ends of the emulated devices: pty and TCP servers speaking real protocols."""
