"""The threat-model config file (YAML) of an audit: read with line-exact errors, written back.

The file describes the model, the data, what the adversary can do, which checks to run
and the thresholds a CI pipeline enforces::

    model:
      file: model.pt            # omit for a reference model trained on the dataset
      trust: false              # pickle/joblib files only with trust: true
      architecture: cnn         # reference architecture (cnn, mlp)
      factory: null             # state dicts: package.module:callable (docs/models.md)
      kwargs: null              # its keyword arguments, e.g. {num_classes: 10}
      input_shape: null         # what the file does not carry: [3, 32, 32]
      classes: null             # a count or a list of names
      bounds: null              # [min, max]
      mean: null                # normalisation inside the model, per channel
      std: null
    data:
      dataset: mnist-5k
      n_samples: 500            # test inputs attacked
      label_column: null        # CSV/Parquet tables: the label column
      limit: null               # at most N samples per split (stratified, seeded)
      bounds: null              # [low, high], per-feature lists, "data" or a bounds file
    adversary:
      access: white-box         # white-box, scores (prediction API with scores), labels
      queries_per_input: 1000   # budget of query-based attacks
      constraints: null         # tabular data: {immutable: [0, 1], switch_on: [5]}
    evasion:
      attacks: [fgsm, pgd]
      eps: [0, 0.05, 0.1, 0.2, 0.3]
      reference_eps: 0.1
      eps_scale: relative       # eps as a fraction of each feature's range (or absolute)
      attack_settings: {pgd: {steps: 40}}
      examples: 8
    sections:
      run: null                 # null: every section the model allows; or a list
      settings: {backdoor: {fraction: 0.1}}   # the share the adversary can poison (0: cannot)
    thresholds:
      fail_under: {robust_accuracy: 0.5}
      fail_over: {}
    seed: 0
    profile: default            # or quick
    hardware:
      device: auto              # auto (the GPU when there is one), cpu, cuda, cuda:N
      precision: float32        # or bf16 (autocast)
    compute:
      executor: local           # local, process or ray (docs/scale.md)
      ray_address: null         # ray: auto, ray://host:10001; null: a local Ray
      workers: null             # processes / CPUs of a local Ray
    report:
      save_examples: false      # per-input records (Parquet) beside report.json

``advml audit --print-config`` writes the effective config in this form, so a run can be
repeated exactly with ``advml audit --config FILE``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from advml.audit.config import AuditConfig, ConfigValidationError

__all__ = ["ConfigError", "config_to_yaml", "load_config", "parse_config"]

# YAML path -> AuditConfig field.
_FIELDS: dict[tuple[str, ...], str] = {
    ("model", "file"): "model",
    ("model", "trust"): "trust_model_file",
    ("model", "architecture"): "architecture",
    ("model", "factory"): "model_factory",
    ("model", "kwargs"): "model_kwargs",
    ("model", "input_shape"): "model_input_shape",
    ("model", "classes"): "model_classes",
    ("model", "bounds"): "model_bounds",
    ("model", "mean"): "model_mean",
    ("model", "std"): "model_std",
    ("model", "target_url"): "target_url",
    ("model", "target_config"): "target_config",
    ("adversary", "max_queries"): "max_queries",
    ("data", "dataset"): "dataset",
    ("data", "n_samples"): "n_samples",
    ("adversary", "access"): "access",
    ("adversary", "queries_per_input"): "queries_per_input",
    ("adversary", "constraints"): "constraints",
    ("evasion", "attacks"): "attacks",
    ("evasion", "eps"): "eps",
    ("evasion", "reference_eps"): "reference_eps",
    ("evasion", "attack_settings"): "attack_settings",
    ("evasion", "examples"): "examples",
    ("sections", "run"): "sections",
    ("sections", "settings"): "section_settings",
    ("thresholds", "fail_under"): "fail_under",
    ("thresholds", "fail_over"): "fail_over",
    ("seed",): "seed",
    ("profile",): "profile",
    ("data", "label_column"): "label_column",
    ("data", "limit"): "limit",
    ("data", "bounds"): "data_bounds",
    ("evasion", "eps_scale"): "eps_scale",
    ("hardware", "device"): "device",
    ("hardware", "precision"): "precision",
    ("compute", "executor"): "executor",
    ("compute", "ray_address"): "ray_address",
    ("compute", "workers"): "workers",
    ("report", "save_examples"): "save_examples",
}
_GROUPS = sorted({p[0] for p in _FIELDS})


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, line and key."""


def load_config(path: str | os.PathLike[str]) -> AuditConfig:
    """Read an audit config file (YAML); see the module docstring for its keys."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {str(p)!r} does not exist")
    return parse_config(p.read_text(), source=str(p))


def parse_config(text: str, *, source: str = "<config>") -> AuditConfig:
    """An :class:`AuditConfig` from YAML text; errors name ``source``, the line and key."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None
    finally:
        loader.dispose()
    if root is None:
        return AuditConfig()
    _refuse_duplicate_keys(root, source)
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    nested: dict[str, int] = {}
    # Every problem in the file is reported at once, each with its line: unknown keys
    # while walking the file, then every bad value (AuditConfig, a pydantic dataclass,
    # collects all of them with the field each belongs to).
    problems: list[tuple[int | None, str]] = []
    _walk(root, (), source, values, lines, nested, problems)
    try:
        config = AuditConfig(**values)
    except ConfigValidationError as err:
        problems += [_located(path, text, lines, nested) for path, text in err.problems]
    if not problems:
        return config
    problems.sort(key=lambda p: (p[0] is None, p[0] or 0))
    if len(problems) > 1:
        listed = "\n".join(
            f"  line {line}: {text}" if line else f"  {text}" for line, text in problems
        )
        raise ConfigError(f"{source}: {len(problems)} problems:\n{listed}")
    line, text = problems[0]
    raise ConfigError(f"{source}, line {line}: {text}" if line else f"{source}: {text}")


_YAML_PATHS = {field_name: ".".join(path) for path, field_name in _FIELDS.items()}


def _located(
    path: str, message: str, lines: dict[str, int], nested: dict[str, int]
) -> tuple[int | None, str]:
    """The line of the key a problem belongs to (None when the file has none) and the
    message, prefixed with that key's path in the file."""
    if "must be True or False" in message:
        message += " (in YAML write true or false, without quotes)"
    # A nested setting (attack_settings['pgd']['steps']): the line of the deepest
    # key the message names.
    for text in sorted(nested, key=len, reverse=True):
        if message.startswith(text):
            return nested[text], message
    field_name = re.split(r"[.\[]", path, maxsplit=1)[0]
    if field_name in lines:
        return lines[field_name], f"{_YAML_PATHS[field_name]}: {message}"
    # A problem without a field (none today): point at the key the message names, the
    # field's own name first ("trust_model_file" must not match the key "model.file").
    for use_key in (False, True):
        for keys, name in _FIELDS.items():
            word = keys[-1] if use_key else name
            if name in lines and re.search(rf"\b{re.escape(word)}\b", message):
                return lines[name], f"{'.'.join(keys)}: {message}"
    return None, message


def _walk(
    node: yaml.Node,
    path: tuple[str, ...],
    source: str,
    values: dict[str, Any],
    lines: dict[str, int],
    nested: dict[str, int],
    problems: list[tuple[int | None, str]],
) -> None:
    if not isinstance(node, yaml.MappingNode):
        name = ".".join(path) or "the file"
        problems.append((node.start_mark.line + 1, f"{name} must be a mapping of keys to values"))
        return
    for key_node, value_node in node.value:
        key = key_node.value
        line = key_node.start_mark.line + 1
        sub = (*path, str(key))
        if sub in _FIELDS:
            value = _construct(value_node)
            field_name = _FIELDS[sub]
            if isinstance(value, list) and field_name in ("attacks", "eps", "sections"):
                value = tuple(value)
            if value is None and field_name in ("attack_settings", "section_settings"):
                value = {}
            values[field_name] = value
            lines[field_name] = line
            if field_name in ("attack_settings", "section_settings"):
                _nested_lines(value_node, field_name, nested)
        elif not path and key in _GROUPS:
            _walk(value_node, sub, source, values, lines, nested, problems)
        else:
            known = (
                sorted(p[-1] for p in _FIELDS if p[:-1] == path)
                if path
                else sorted({*_GROUPS, "seed", "profile"})
            )
            where_key = ".".join(path) or "the top level"
            problems.append((line, f"unknown key {key!r} in {where_key}; known: {known}"))


def _nested_lines(node: yaml.Node, prefix: str, nested: dict[str, int]) -> None:
    """Lines of ``prefix['name']`` and ``prefix['name']['key']``, as errors spell them."""
    if not isinstance(node, yaml.MappingNode):
        return
    for name_node, settings_node in node.value:
        name = f"{prefix}[{_construct(name_node)!r}]"
        nested[name] = name_node.start_mark.line + 1
        if isinstance(settings_node, yaml.MappingNode):
            for key_node, _ in settings_node.value:
                nested[f"{name}[{_construct(key_node)!r}]"] = key_node.start_mark.line + 1


def _refuse_duplicate_keys(node: yaml.Node, source: str) -> None:
    """A key given twice in one mapping is an error: YAML loaders keep the last silently,
    so one of two intended settings would be lost without a word."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = _construct(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise ConfigError(
                        f"{source}, line {line}: key {key!r} is given twice (lines "
                        f"{seen[key]} and {line}); keep one"
                    )
                seen[key] = line
            _refuse_duplicate_keys(value_node, source)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(item, source)


def _construct(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def config_to_yaml(config: AuditConfig) -> str:
    """The config as a YAML file that :func:`load_config` reads back to an equal config."""
    d = config.to_dict()
    doc: dict[str, Any] = {}
    for path, field_name in _FIELDS.items():
        target = doc
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = d[field_name]
    header = (
        "# advml audit config: run it again with `advml audit --config THIS_FILE`.\n"
        "# Keys: see `advml audit --help` and docs/audit.md.\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=88)
