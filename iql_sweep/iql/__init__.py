"""Implicit Q-Learning: the losses (once), the networks, presets and the learner.

Importing this package imports nothing heavy: validating a spec needs only ``iql.config``.
"""
