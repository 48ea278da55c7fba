"""Detection of adversarial inputs: ``fit(model, x_clean)``, then ``detect(model, x)``.

Detectors are registered in the family ``"detection"``: ``"feature_squeezing"`` (Xu et
al. 2018) and ``"autoencoder"`` (MagNet's reconstruction error, Meng & Chen 2017).
"""

from advml.defences.detection.autoencoder import AutoencoderDetector
from advml.defences.detection.base import DetectionResult, Detector, threshold_for_fpr
from advml.defences.detection.feature_squeezing import FeatureSqueezingDetector

__all__ = [
    "AutoencoderDetector",
    "DetectionResult",
    "Detector",
    "FeatureSqueezingDetector",
    "threshold_for_fpr",
]
