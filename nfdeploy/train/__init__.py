"""EOPM training of a generator against a frozen vendor model (torch)."""
