"""One widget per pane of the console."""
