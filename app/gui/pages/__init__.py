"""One module per page of the main window; each is a thin shell over `recommender` / `routing`."""
