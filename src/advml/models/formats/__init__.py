"""Model file formats other than advml's own, and what a file does not carry.

:func:`advml.models.load_model` recognises the format from the file's content and uses
these modules: :mod:`~advml.models.formats.torch_files` (TorchScript, ``torch.export``,
state dicts with a factory), :mod:`~advml.models.formats.onnx` (converted to PyTorch, or
run by onnxruntime), :mod:`~advml.models.formats.boosters` (XGBoost, LightGBM,
CatBoost), :mod:`~advml.models.formats.spec` (flags, sidecar, the load report).
"""
