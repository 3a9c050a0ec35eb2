"""Training data: the scene lexicon, picture datasets, the scene generator, teacher dialogue and the corpus."""
