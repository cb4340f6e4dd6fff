"""The files a dataset is read from and made of, each format known by one module: record files
(``jsonl_records``, ``parquet_records``, ``input_files``), the tokenizer (``text_tokenizer``), Megatron's
indexed ``.bin``/``.idx`` (``indexed_dataset``, ``indexed_concat``), a preprocessed dataset's file names and
manifest (``preprocess_outputs``, ``preprocess_manifest``) and the fork's index-map files beside it
(``index_map_files``); plus the checks that data, tokenizer and model belong together (``tokenizer_match``,
``data_vocab``). Every other part of the toolkit reads datasets through these.
"""
