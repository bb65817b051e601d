"""The LLM side: the roles' chat client and its JSON-schema replies, and the embedded llama.cpp
server: its build, the model it runs, the process (`python -m agent serve`) and its settings."""
