"""Implicit Q-Learning: networks, losses, presets and the agent."""

from iql_sweep.iql.agent import IQLAgent
from iql_sweep.iql.config import PRESETS, IQLConfig, make_config, preset_for_dataset

__all__ = ["IQLAgent", "IQLConfig", "PRESETS", "make_config", "preset_for_dataset"]
