"""The built-in end-to-end demo: a stand-in vendor model, then train -> export -> validate."""
