"""Scripts that print figures (speeds, agreement between two renders, a student's share of its
teacher's lead), not a library and not installed: each runs from the repository root as
``python -m measure.NAME [OPTIONS]`` (``--help`` lists its options), with no ``sys.path`` edits,
and every figure in the docs that one of them printed names the command that printed it.
"""
