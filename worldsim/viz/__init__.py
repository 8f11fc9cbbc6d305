"""Visualisation: video files, grids, plots and ipywidgets."""
