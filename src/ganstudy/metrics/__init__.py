"""Metrics: pure math (``fid``, ``inception_score``, ``kid``, ``precision_recall``), feature
backbones, the reference stage's cached real features, and the ``registry`` of what evaluate
computes.

Metric names carry their protocol: ``<kind>_<backbone>_<n>_<reference split>``, e.g.
``fid_domain_10k_test``; one value per class adds ``_class<k>`` (``PER_CLASS`` finds those).
"""

import re

PER_CLASS = re.compile(r"_class\d+$")  # fid_domain_10k_test_class3: one class's value


def count_label(n: int) -> str:
    """10000 -> "10k", 1500 -> "1500": the sample count as it appears in metric names."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def metric_name(kind: str, backbone: str, n: int, split: str | None = None) -> str:
    parts = [kind, backbone, count_label(n)] + ([split] if split else [])
    return "_".join(parts)
