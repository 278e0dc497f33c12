"""Browser viewer (viser) for every splat asset the toolkit reads or writes."""
