"""Stream: the wire formats the viewers receive."""
