"""Training: the loop (``loop``), the resume key (``checkpoint``) and the train stage (``run``).

Above the models, games and metrics; only the studies and the CLI import it. What later stages
read from a run folder lives in ``ganstudy.runs`` and ``ganstudy.names`` (the old names stay
importable from ``training.checkpoint``, ``training.loop`` and ``training.run``).
"""
