"""Visualisation: video files, grids, plots and ipywidgets.

video.py      frame stacks to mp4/gif          widgets.py    frame player, comparison player, action controller,
plots.py      matplotlib figures and tables                  parameter panel
explorer.py   side-by-side rollout player      classroom.py  MuJoCo vs model under parameter sliders, OOD flagged
notebook.py   small-size switch, the model a   scaling.py    training configs compared, launch commands,
              notebook uses (shipped or tiny)                resolved config
"""
