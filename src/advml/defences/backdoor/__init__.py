"""Backdoor analysis and defences.

Each defence says which data it uses (the class attribute ``uses``); none of them looks
at triggered test inputs or test labels to choose its own settings.

- :func:`activation_profile` — backdoor-neuron analysis (needs triggered inputs: an
  auditor's tool, not a defence);
- :class:`Pruning`, :class:`FinePruning` — Liu et al. 2018, clean validation data;
- :class:`ActivationClustering` (Chen et al. 2019), :class:`SpectralSignatures`
  (Tran et al. 2018) — the training set the defender holds;
- :class:`NeuralCleanse` (Wang et al. 2019) — clean validation inputs;
- :class:`STRIP` (Gao et al. 2019) — clean inputs, run time.
"""

from advml.defences.backdoor.activation_clustering import ActivationClustering
from advml.defences.backdoor.base import (
    BackdoorDefence,
    PoisonDetection,
    bake_masks,
    block_output,
    default_layer,
)
from advml.defences.backdoor.evaluate import DefenceRun, KnownBackdoor, run_defence
from advml.defences.backdoor.fine_pruning import FinePruning, FinePruningResult
from advml.defences.backdoor.neural_cleanse import NeuralCleanse, NeuralCleanseResult
from advml.defences.backdoor.neuron_analysis import ActivationProfile, activation_profile
from advml.defences.backdoor.pruning import Pruning, PruningCurve, PruningResult, RepairCheck
from advml.defences.backdoor.spectral_signatures import SpectralSignatures
from advml.defences.backdoor.strip import STRIP, STRIPDetector, STRIPResult

__all__ = [
    "STRIP",
    "ActivationClustering",
    "ActivationProfile",
    "BackdoorDefence",
    "DefenceRun",
    "FinePruning",
    "FinePruningResult",
    "KnownBackdoor",
    "NeuralCleanse",
    "NeuralCleanseResult",
    "PoisonDetection",
    "Pruning",
    "PruningCurve",
    "PruningResult",
    "RepairCheck",
    "STRIPDetector",
    "STRIPResult",
    "SpectralSignatures",
    "activation_profile",
    "bake_masks",
    "block_output",
    "default_layer",
    "run_defence",
]
