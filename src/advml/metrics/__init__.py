"""Numbers that say how a model fares: accuracy, robust and backdoor success, norms."""

from advml.metrics.backdoor import backdoor_success_rate
from advml.metrics.classification import accuracy, attack_success_rate, robust_accuracy
from advml.metrics.norms import perturbation_norms

__all__ = [
    "accuracy",
    "attack_success_rate",
    "backdoor_success_rate",
    "perturbation_norms",
    "robust_accuracy",
]
