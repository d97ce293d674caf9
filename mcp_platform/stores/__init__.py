"""State stores: interfaces in `base.py`, with in-memory and SQL implementations beside them."""
