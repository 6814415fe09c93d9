"""The ``pushlab`` command: a thin dispatcher into each side's own entry functions."""
