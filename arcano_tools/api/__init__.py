"""HTTP routes of the design contract."""
