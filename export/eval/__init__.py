"""`npc-sdk eval`: reply metrics, the held-out corpus, critic labels and the torch reference benchmark."""
