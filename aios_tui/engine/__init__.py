"""The training engine: models, PEFT, data, the train loop, checkpoints, export and sampling.

Imports torch, transformers and peft; nothing outside ``aios_tui/engine`` and the commands'
``run`` functions may import it at module level. Entry point: ``aios_tui.engine.train.run_training``.
"""
