"""``scripts/train.py``: real training with the same timing: its command line (``cli``), the run (``run``) and
checkpoints (``checkpoints``).

May import the GPT-2 core, ``callbacks``, ``profile`` (the Trainer, the data, interrupts), ``report`` and
``analysis``.
"""
