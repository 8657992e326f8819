"""Per-layer sensitivity (`nfdeploy sensitivity`): PA with faults in one tensor (group) at a time.

* :mod:`.groups` -- fault targets into groups (one per tensor, or ``--group NAME=REGEX``).
* :mod:`.measure` -- the seeded trials: one full fault pattern per seed, masked per group.
* :mod:`.energy` -- each group's share of the weight-SRAM accesses; ES when some are kept nominal.
* :mod:`.report` -- ranking, keep-k curve, table and JSON.
* :mod:`.plot` -- the bar plot and the keep-k plot (matplotlib, optional).
* :mod:`.api` -- :func:`sensitivity`, the keyword-only function behind the command.

Torch-free (numpy + onnxruntime), like ``validate``.
"""
