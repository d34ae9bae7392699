"""Training: the loop (``loop``), the checkpoint's training state and resume key
(``checkpoint``: ``TrainingState`` lists the saved entries once, for saving and resuming) and the
train stage (``run``: one path for a plan of one model or one model per class).

Above the models, games and metrics; only the studies and the CLI import it. What later stages
read from a run folder lives in ``ganstudy.runs`` and ``ganstudy.names`` (the old names stay
importable from ``training.checkpoint``, ``training.loop`` and ``training.run``).
"""
