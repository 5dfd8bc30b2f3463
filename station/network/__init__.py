"""Two-station network: the live classical channel, the campaign coordinator (docs/analysis.md)."""
