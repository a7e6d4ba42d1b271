"""The Textual console. Nothing here imports torch, transformers or peft: runs are processes."""
