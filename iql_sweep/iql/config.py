"""IQL hyper-parameters and the reference's per-domain presets.

The defaults are those of the official implementation (Kostrikov et al., 2021): 2x256 ReLU MLPs,
Adam 3e-4, batch 256, gamma 0.99, Polyak 0.005, AWR weights clipped at 100, a tanh-mean Gaussian
with a state-independent log-std clipped to [-5, 2], and a cosine decay of the actor's learning
rate to zero over the run. Presets change only what the reference changes per domain.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from iql_sweep.errors import ConfigError


class IQLConfig(BaseModel):
    """Every IQL hyper-parameter; unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    expectile: float = Field(0.7, gt=0.0, lt=1.0, description="tau of the value expectile")
    beta: float = Field(3.0, ge=0.0, description="inverse temperature of the AWR weights")
    discount: float = Field(0.99, gt=0.0, le=1.0)
    polyak: float = Field(0.005, gt=0.0, le=1.0, description="target-network averaging rate")
    max_awr_weight: float = Field(100.0, gt=0.0, description="clip of exp(beta * advantage)")
    hidden_dims: tuple[int, ...] = Field((256, 256), min_length=1)
    actor_lr: float = Field(3e-4, gt=0.0)
    critic_lr: float = Field(3e-4, gt=0.0)
    value_lr: float = Field(3e-4, gt=0.0)
    batch_size: int = Field(256, ge=1)
    max_steps: int = Field(1_000_000, ge=1, description="gradient steps; sets the cosine horizon")
    actor_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    cosine_actor_schedule: bool = True
    reward_norm: Literal["none", "return_range"] = Field(
        "none", description="'return_range': r * 1000 / (max - min episode return)"
    )
    reward_shift: float = Field(0.0, description="added to every reward after scaling")
    action_clip: float = Field(1.0 - 1e-5, gt=0.0, le=1.0)
    orthogonal_init: bool = True

    @field_validator("hidden_dims")
    @classmethod
    def _positive_widths(cls, dims: tuple[int, ...]) -> tuple[int, ...]:
        if any(d < 1 for d in dims):
            raise ValueError("every hidden width must be a positive integer")
        return dims


#: Overrides of the defaults per domain, as in the official configs (and CORL's for maze2d).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "locomotion": {"expectile": 0.7, "beta": 3.0, "reward_norm": "return_range"},
    "antmaze": {"expectile": 0.9, "beta": 10.0, "reward_shift": -1.0},
    "kitchen": {"expectile": 0.7, "beta": 0.5, "actor_dropout": 0.1},
    "adroit": {"expectile": 0.7, "beta": 0.5, "actor_dropout": 0.1},
    "maze": {"expectile": 0.7, "beta": 3.0},
}

_DOMAIN_PATTERNS: list[tuple[str, str]] = [
    (r"antmaze", "antmaze"),
    (r"pointmaze|maze2d", "maze"),
    (r"kitchen", "kitchen"),
    (r"(^|/)(pen|door|hammer|relocate)(/|-)", "adroit"),
    (r"hopper|halfcheetah|walker2d|(^|/)ant(/|-)|mujoco/", "locomotion"),
]


def preset_for_dataset(dataset_id: str) -> str:
    """The preset that fits a dataset's domain, or ``"default"`` when none matches."""
    lowered = dataset_id.lower()
    for pattern, preset in _DOMAIN_PATTERNS:
        if re.search(pattern, lowered):
            return preset
    return "default"


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming the field and what is allowed."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        got = e.get("input")
        detail = e["msg"]
        if e["type"] == "extra_forbidden":
            detail = "unknown field (check the spelling; see IQLConfig for the allowed fields)"
        lines.append(f"{prefix}{loc}: {detail} (got {got!r})")
    return "\n".join(lines)


def make_config(preset: str | None = None, **overrides: Any) -> IQLConfig:
    """Resolve a preset by name and apply field-by-field overrides (``None`` values are ignored)."""
    if preset is None:
        preset = "default"
    if preset not in PRESETS:
        raise ConfigError(
            f"preset: unknown preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}"
        )
    values = dict(PRESETS[preset])
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return IQLConfig(**values)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None
