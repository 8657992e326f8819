"""The run folder's format, shared by train (which writes it) and export (which reads it):
the TrainConfig stored in config.json and checkpoints, and the folder's files."""
