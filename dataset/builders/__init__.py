"""Example data builders: OctoPack-style pairs (``octopack_format``) from a local git history
(``python -m dataset.commits_to_jsonl``; ``git_history``, ``git_runner``) and from docstrings
(``python -m dataset.docstring_pairs``), raw source files for continued pretraining
(``python -m dataset.code_to_jsonl``), and a byte-level BPE tokenizer with StarCoder's special tokens
(``python -m dataset.train_tokenizer``).
"""
