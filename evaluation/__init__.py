"""Evaluation: did the fine-tune help? HumanEval(-X/Pack) pass@k in Python, Go and Rust in a sandbox, a report.

Works on any Hugging Face GPT-BigCode folder. Command line: ``python -m evaluation --help``. May import
``conversion`` and ``dataset``; nothing in the project imports ``evaluation``.
"""
