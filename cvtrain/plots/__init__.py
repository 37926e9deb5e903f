"""Drawing, and nothing else: matplotlib figures (`figures.py`) and PIL pictures (`draw.py`) from plain arrays.

It knows no task, metric or engine: metrics describe what to plot with `cvtrain.contracts.plots`, tasks draw their
previews with `draw.py`, and the engine writes the files (`cvtrain/engine/plotting.py`).
"""
