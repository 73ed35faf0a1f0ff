"""iql-sweep: Implicit Q-Learning sweeps on Minari datasets, with Ray Tune and W&B."""

__version__ = "0.1.0"
