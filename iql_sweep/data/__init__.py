"""Minari I/O, the project's own dataset generators and score normalisation."""
