"""The whole audit plan checked before its first step, every problem reported at once.

:class:`~advml.audit.AuditConfig` checks each value as it is made (types, ranges) and reports
every bad one at once. What needs the registry, the dataset catalog or the file system --
attack and section names, the dataset, the model file, each attack's settings -- is
checked here, all of it, so that a user fixes a config in one round instead of one
audit start per mistake (a misspelt ``--attacks`` name used to surface only when the
evasion section began, after the model was loaded and trained).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from advml.errors import AdvmlError

__all__ = ["PlanError", "check_plan", "plan_problems"]


class PlanError(AdvmlError, ValueError):
    """The audit plan has problems; ``problems`` lists each one (a line apiece)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"the audit plan has {n} problem{'s' if n != 1 else ''}; nothing was run:\n{lines}"
        )


def _unknown(what: str, name: str, known: Iterable[str]) -> str:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{what}: no such name {name!r}{hint}; known: {', '.join(known)}"


def plan_problems(config: Any, *, model: bool = True, dataset: bool = True) -> list[str]:
    """Every problem of ``config``'s plan that can be seen without running it.

    Parameters
    ----------
    config : AuditConfig
        A config that was made (so its values have the right types).
    model, dataset : bool
        Check ``config.model`` / ``config.dataset`` (False when the caller passes the
        model or the data itself, which then override them).

    Returns
    -------
    list of str
        One line per problem, each naming the setting (``attacks``, ``sections``,
        ``dataset``, ``model``, ``attack_settings[NAME]``) and the fix; empty when the
        plan can run.
    """
    from advml import registry
    from advml.audit import sections as audit_sections
    from advml.audit.config import _check_attack_settings

    problems: list[str] = []
    evasion = registry.available("evasion")
    for name in config.attacks:
        if name not in evasion:
            problems.append(_unknown("attacks", name, evasion))
    if config.sections is not None:
        available = audit_sections.available_sections()
        unknown = [name for name in config.sections if name not in available]
        if unknown:
            problems.append(f"sections has unknown names {unknown}; available: {sorted(available)}")
    if dataset:
        problems.extend(_dataset_problems(config.dataset))
    path = config.model
    if model and path is not None and "://" not in str(path) and not Path(str(path)).exists():
        problems.append(f"model: the file {str(path)!r} does not exist; give an existing path")
    settings = config.attack_settings if isinstance(config.attack_settings, dict) else {}
    for name, values in settings.items():
        try:
            _check_attack_settings({name: values}, config.reference_eps)
        except (TypeError, ValueError) as err:
            problems.append(str(err))
    return problems


def _dataset_problems(dataset: Any) -> list[str]:
    """The dataset must be a built-in name (any case, ``_`` or ``-``, or an alias) or a
    path that exists (a user's own data)."""
    from advml.data import catalog

    if not isinstance(dataset, str) or Path(dataset).exists():
        return []
    names = [d.name for d in catalog.list_datasets()]
    aliases: dict[str, str] = dict(getattr(catalog, "_ALIASES", {}))
    key = dataset.strip().lower()
    if key in names or key in aliases or key.replace("_", "-") in names:
        return []
    return [_unknown("dataset", dataset, names)]


def check_plan(config: Any, *, model: bool = True, dataset: bool = True) -> None:
    """Raise :class:`PlanError` listing every problem of ``config``'s plan, if any
    (``model`` / ``dataset`` as for :func:`plan_problems`)."""
    problems = plan_problems(config, model=model, dataset=dataset)
    if problems:
        raise PlanError(problems)
