"""Decision trees and tree ensembles of every supported library in one view.

>>> from advml.models.trees import tree_view
>>> view = tree_view(fitted_xgb_classifier)  # doctest: +SKIP
>>> view.predict_proba(x)  # equals the library's predict_proba  # doctest: +SKIP
"""

from advml.models.trees.ensemble import Combine, Rule, Tree, TreeEnsemble
from advml.models.trees.readers import tree_model_reason, tree_view

__all__ = ["Combine", "Rule", "Tree", "TreeEnsemble", "tree_model_reason", "tree_view"]
