"""The augmentation study of GANs in Action ch. 11 (Frid-Adar et al. 2018): does adding GAN-made
images to a small, classically augmented training set make a classifier better?"""

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
