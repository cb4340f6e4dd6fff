"""Weighted split files and what the fork samples from them: the files' bytes (``split_files``), writing,
checking and planning them (``python -m dataset.splits``: ``splits``, ``split_planner``,
``gpt_split_planner``, ``split_overlap``), and the index maps the fork builds from document sizes alone
(``packed_index`` for packed MTF, ``gpt_index`` for GPT samples, ``blending``; ``memory_budget`` refuses an
absurd size up front).
"""
