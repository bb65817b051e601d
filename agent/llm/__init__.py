"""The embedded llama.cpp server: its build (build.py), the model it runs (models.py), the process
(server.py, `python -m agent serve`) and its settings (settings.py)."""
