"""The PySide6 desktop GUI: a thin shell over `recommender` and `routing` (the only Qt code)."""
