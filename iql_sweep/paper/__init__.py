"""The IQL paper's own figures, reproduced: the expectile regression figure (``expectiles``) and
the stitching analysis with its independent optimal values (``stitching``, ``stitching_plots``)."""
