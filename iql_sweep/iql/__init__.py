"""Implicit Q-Learning: the losses (once), the stages, the networks, presets and the learner.

Read in this order: ``reference.py`` (one configuration, CORL-like and linear) -> ``losses.py``
(each objective once) -> ``stages.py`` (the three stages of an update on stacked networks) ->
``learner.py`` (K configurations, optimisers, Polyak, the speed settings). This package imports
only torch, numpy and pydantic (import-linter checks it), and importing it imports nothing heavy:
validating a spec needs only ``iql.config``.
"""
