"""Defences: what a careful model owner puts around, into or after a model.

Subpackages (imported on demand, not here, so that each stays independent):

``advml.defences.preprocess``
    Input cleansing: preprocessors that transform an input before the model sees it
    (Gaussian noise, median smoothing, feature squeezing, Gaussian blur, JPEG, a
    MagNet-style denoising autoencoder), :class:`DefendedClassifier` (preprocessors +
    model, itself a Classifier) and :func:`evaluate_defence`, the honest adaptive
    evaluation (BPDA and EOT).
``advml.defences.detection``
    Detectors that flag adversarial inputs (feature-squeezing detection, autoencoder
    reconstruction error).
``advml.defences.training``
    Robust training (adversarial training, TRADES).
``advml.defences.backdoor``
    Backdoor defences (pruning, fine-pruning, activation clustering, ...).
``advml.defences.output``
    Prediction hardening (top-k, rounding, labels only).
"""
