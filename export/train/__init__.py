"""Training: the grounding head (train/grounding.py), fusion and LoRA on dialogue and on the corpus."""
