"""The model folder for the runtime: ONNX graphs, quantisation, the typed manifest and verification against torch."""
