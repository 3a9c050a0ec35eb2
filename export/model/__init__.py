"""The reference model: image and text encoders, fusion, decoder, LoRA, chat template and the tag vocabulary."""
