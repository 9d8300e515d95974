"""Runs on disk and what is reported of them: the run directory
(`rundir`, `checkpoints`), the engine that fills it (`engine`), its summary
(`summary`), comparisons (`compare`) and loggers (`loggers`, `wandb_logger`).
"""
