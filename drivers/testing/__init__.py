"""Test harness for drivers: byte-exact protocol scripts and interface conformance suites."""
