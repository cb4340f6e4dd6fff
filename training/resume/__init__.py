"""What both engines decide when a run meets a save folder, one rule for the local engine and the cluster
path: what a checkpoint records of itself (``recorded_args``), whether its checkpoints are this run's
(``run_identity``), and how a resumed run's learning-rate schedule continues (``schedule_resume``).
"""
