"""One home for what tests share: constants, scripted stand-ins and small helpers.

Test modules import what they share from here (fixtures come from a conftest.py), never from one
another, so a test module can change its own internals without breaking another:

- `paths`: the repository root and the candidate programs (tests/candidates);
- `sandbox_jobs`: a minimal module, training settings and job limits, the kinds decided without
  a sandbox, and `ScriptedBackend`, a backend that runs nothing and returns what a test scripts;
- `graph`: the scripted roles and evaluator that drive the compiled graph in a second;
- `prompts`: a task, candidates, a window and a suggestion for the prompt builders;
- `archive`: a finished run's archive written without a search;
- `agent_cli`: `python -m agent.run` as a user runs it, its environment (`fake_model_env`: both
  roles served by a fake OpenAI server), and the fake server as a process;
- `probe_run`: `agent.run` with a probe that logs what each sandbox job was handed;
- `runs`: a run's checkpoint read back, and a kill at a random moment;
- `leftovers`: what a test's sandbox jobs may have left on the host, scoped to its own process;
- `ray_cluster`: a throwaway local Ray cluster;
- `results_check`: a run's summary numbers recomputed with their own SQL;
- `gguf`: a tiny random GGUF that llama-server loads in a second.

The fakes of outside services (an OpenAI server, a model hub, small models) are in tests/fakes.
"""
