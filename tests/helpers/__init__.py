"""One home for what tests share: constants, scripted stand-ins and small helpers.

Test modules import what they share from here (fixtures come from a conftest.py), never from one
another, so a test module can change its own internals without breaking another:

- `paths`: the repository root and the hostile/honest candidate programs;
- `sandbox_jobs`: a minimal module, training settings and job limits, `ScriptedBackend` (a backend
  that runs nothing and returns what a test scripts);
- `graph`: the scripted roles and evaluator that drive the compiled graph in a second;
- `prompts`: a task, candidates, a window and a suggestion for the prompt builders;
- `runs`: a whole `agent.run`'s environment with the fake model, its checkpoint, a kill mid-run;
- `archive`: a finished run's archive written without a search;
- `gguf`: a tiny random GGUF model that llama-server loads in a second.

The fakes of outside services (an OpenAI server, a model hub, small models) are in tests/fakes.
"""
