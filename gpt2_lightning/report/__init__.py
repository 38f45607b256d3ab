"""What a run leaves for people, and comparisons between runs.

results.json (``results``, written whole: ``atomic_files``), the console summary and report.md (``render``,
``timing``, ``diagnosis``, ``modules``, ``training``), the PNGs (``plots``, ``module_plot``), TensorBoard
(``tensorboard_logs``, ``tensorboard_summary``), everything at a run's end (``run_report``, ``next_steps``), noise
and its judgement between runs (``noise``, ``judgement``, ``repeat_summary``), comparisons and the regression gate
(``compare``, ``compare_cli``, ``gate``), history over a folder of runs (``history``, ``run_folders``) and energy,
money and time to train (``costs``).

Reads results, never makes them: may import the GPT-2 core, ``callbacks`` and ``analysis``, never ``profile`` or
``train``.
"""
