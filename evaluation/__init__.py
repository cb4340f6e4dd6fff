"""Evaluation: did the fine-tune help? HumanEval pass@k in a bubblewrap sandbox, infilling, commit fixes, held-out loss.

Works on any Hugging Face GPT-BigCode folder. Command line: ``python -m evaluation --help``. May import
``conversion`` and ``dataset``; nothing in the project imports ``evaluation``.
"""
