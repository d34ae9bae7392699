"""The paper-table studies: a study file (``studies/<name>.yaml``, read by ``studies.py``) names
the variants, seeds and sizes; ``augmentation.py`` and ``classifier.py`` hold the downstream
classifier of the augmentation study (GANs in Action ch. 11, Frid-Adar et al. 2018);
``augmentation.py`` also runs the study's arms (the downstream stage); ``section.py`` and the
``*_page.py`` modules write each study kind's section of a page (augmentation, classifier head,
variants), picked by kind in ``pages.py``; ``publish.py`` makes ``docs/results/<study>/``;
``registry.py`` registers the champion generator and closes a study execution's MLflow parent
run; ``provenance.py`` records what produced a report (command, git and DVC revisions, runs)."""

from ganstudy.study.classifier import (
    ClassifierFit,
    EvalRecord,
    StudyCNN,
    classification_metrics,
    confusion_matrix,
    predict_proba,
    train_classifier,
)

__all__ = [
    "ClassifierFit",
    "EvalRecord",
    "StudyCNN",
    "classification_metrics",
    "confusion_matrix",
    "predict_proba",
    "train_classifier",
]
