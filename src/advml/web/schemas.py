"""The web demo's request and response bodies (the JSON API's schema).

Request bodies refuse unknown fields (a misspelt ``"atack"`` is named, not ignored),
and their numbers are strict: ``true`` is not an index and ``NaN`` is not an ε. What
only the service can know (a dataset's size, the model's input shape and bounds) it
checks itself, naming the field the same way (``image.index``, ``image.pixels``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AttackName",
    "AttackRequest",
    "AttackResponse",
    "DefenceName",
    "DefendRequest",
    "DefendResponse",
    "Error",
    "GalleryView",
    "ImageRef",
    "Perturbation",
    "PredictRequest",
    "Strength",
    "UploadView",
    "View",
]

AttackName = Literal["fgsm", "pgd", "cw_l2", "greedy_pixel", "square"]
DefenceName = Literal[
    "gaussian_noise", "median_smoothing", "feature_squeezing", "jpeg", "autoencoder"
]
Strength = Literal["low", "medium", "high"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageRef(_Request):
    """An input: a gallery image (``dataset`` and ``index``) or explicit ``pixels``."""

    dataset: str | None = Field(None, description="gallery dataset, e.g. 'mnist-5k'")
    index: int | None = Field(
        None, ge=0, strict=True, description="index in the dataset's test split"
    )
    pixels: list[Any] | None = Field(
        None,
        description="the input itself, nested lists of shape input_shape within the "
        "model's bounds (as returned in every view)",
    )


class AttackRequest(_Request):
    image: ImageRef
    attack: AttackName = Field(description="evasion attack")
    strength: Strength = Field("medium", description="preset strength")
    eps: float | None = Field(
        None,
        gt=0,
        le=1,
        strict=True,
        allow_inf_nan=False,
        description="L-inf budget as a fraction of the input range; overrides the "
        "strength's eps (fgsm, pgd, square only)",
    )


class DefendRequest(_Request):
    image: ImageRef = Field(description="the input to cleanse, usually the adversarial one")
    defence: DefenceName = Field(description="input-cleansing defence")
    strength: Strength = Field("medium", description="preset strength")
    original: ImageRef | None = Field(
        None, description="the original the input was attacked from, to say if restored"
    )


class AdaptiveRequest(_Request):
    image: ImageRef = Field(description="the ORIGINAL input (the adaptive attack starts over)")
    defence: DefenceName = Field(description="the defence the attacker now knows about")
    strength: Strength = Field("medium", description="the defence's preset strength")
    attack_strength: Strength = Field("medium", description="PGD's preset strength")
    eps: float | None = Field(
        None,
        gt=0,
        le=1,
        strict=True,
        allow_inf_nan=False,
        description="L-inf budget as a fraction of the input range; overrides the strength's",
    )


class PredictRequest(_Request):
    image: ImageRef


class View(BaseModel):
    """One input as the page shows it."""

    image: str = Field(description="PNG data URL at the input's native size")
    pixels: list[Any] = Field(description="the input, shape input_shape")
    label: int = Field(description="the model's label")
    label_name: str
    confidence: float | None = Field(description="the model's probability of its label")
    confidences: list[float] | None = Field(description="probability of every class")


class GalleryView(View):
    dataset: str
    index: int
    true_label: int
    true_label_name: str


class UploadView(View):
    kind: Literal["png", "jpeg", "npz"]


class Perturbation(BaseModel):
    image: str = Field(description="PNG data URL: red = pixel up, blue = down")
    magnification: float = Field(description="factor the perturbation is magnified by")
    linf: float = Field(description="largest change, as a fraction of the input range")
    l2: float = Field(description="L2 norm of the change, in units of the input range")
    l0: int = Field(description="number of input values changed")


class AttackResponse(BaseModel):
    attack: str
    strength: str
    settings: dict[str, Any] = Field(description="the attack's settings as run")
    original: View
    adversarial: View
    label_changed: bool
    perturbation: Perturbation
    queries: int = Field(description="model evaluations the attack used")
    seconds: float


class DefendResponse(BaseModel):
    defence: str
    strength: str
    settings: dict[str, Any]
    input: View
    defended: View
    original_label: int | None = None
    restored: bool | None = Field(None, description="defended label == original's label")
    seconds: float


class AdaptiveResponse(BaseModel):
    defence: str
    strength: str
    method: str = Field(description="how gradients pass the defence: BPDA, EOT, both, or exact")
    settings: dict[str, Any] = Field(description="PGD's settings as run")
    original: View
    adversarial: View = Field(description="the adaptive adversarial input, before the defence")
    defended: View = Field(description="that input after the defence, as deployed")
    defence_broken: bool = Field(description="the defended label differs from the original's")
    queries: int
    seconds: float


class Error(BaseModel):
    detail: str
