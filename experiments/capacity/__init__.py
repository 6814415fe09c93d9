"""The capacity search (issue 18): where each transport breaks on this machine, and what it costs.

``cells`` holds the data (rows, step ladders, the service level, the records' shapes);
``search`` runs the steps of one row against one server process until the level breaks;
``knee`` picks each row's knee from saved steps; ``calibration`` measures the machine's ceiling
(one ``send`` per socket per event) and ``request_floor`` each polling stack's cost of a bare
request; ``report`` and ``plot`` read only the saved results; ``cli`` is ``pushlab capacity``.
"""
