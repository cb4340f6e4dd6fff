"""Guardrails every command shares: atomic files and folders, the output-path rule, the top-level error handler.

The bottom layer: it imports none of the project's other packages, and every stage may import it.
"""
