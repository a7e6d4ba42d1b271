"""HRM ACTv1: the hierarchical recurrent model, its ACT training loss, brain bundles and decoding.

``model`` (config, blocks, the segment recurrence), ``act`` (the ACT loss), ``task`` (the
engine's ``Task`` for it), ``bundle`` (brain bundles), ``generate`` (ACT-aware decoding).
"""
