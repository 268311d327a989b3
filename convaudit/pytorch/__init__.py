"""The torch side: the model builder, verify and bench. Every module here imports torch."""
