"""advml: how secure is this model?

Attacks a machine-learning model as real adversaries do, applies the defences a careful
owner would, measures both and reports the result.
"""

from advml.errors import (
    AdvmlError,
    DatasetUnavailableError,
    QueryBudgetExceededError,
    UnsupportedModelError,
    UntrustedFileError,
)

__version__ = "0.1.0"

__all__ = [
    "AdvmlError",
    "DatasetUnavailableError",
    "QueryBudgetExceededError",
    "UnsupportedModelError",
    "UntrustedFileError",
    "__version__",
]
