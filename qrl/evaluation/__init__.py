"""Evaluating policies: one episode runner for every evaluation.

- :mod:`~qrl.evaluation.episodes`: the episode runner (episode ``k`` from ``seed + k``, in
  lockstep batches) and the statistics of an evaluation;
- :mod:`~qrl.evaluation.models`: saved policies on one executor (``qrl evaluate``,
  eval.json, ``qrl curve``), in one JSON shape;
- :mod:`~qrl.evaluation.comparison`: one policy under exact simulation, shots and device
  noise side by side, resumable, with dry-run costs;
- :mod:`~qrl.evaluation.report`: the text tables of a comparison.
"""
