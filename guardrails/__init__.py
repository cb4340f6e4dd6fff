"""Guardrails every command shares: atomic files and folders, the output-path rule and the records that prove an
output is a command's own, one writer per run folder, the top-level error handler.

The bottom layer: it imports none of the project's other packages, and every stage may import it.
"""
