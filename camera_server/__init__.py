"""The camera server: one folder per part (see the README's Architecture section)."""
