"""``scripts/profile.py``: the profile application.

Its settings (``settings``) and command line (``cli``), the run (``run``) and its three experiments
(``experiments``, built from ``trainers``), the environment measured (``environment``, ``device_startup``,
``machine``), Lightning's profilers (``profilers``), Ctrl-C and SIGTERM (``interrupts``), memory (``memory``), the
energy window (``energy``), the self-diagnosis (``diagnosis``), add-ons that may fail without losing the figures
(``addons``), a quiet console (``quiet``), sweeps (``sweep``) and repeats in fresh processes (``repeats``).

May import the GPT-2 core, ``callbacks``, ``report`` and ``analysis``; nothing imports it but ``train`` and the
scripts.
"""
