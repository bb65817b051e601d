"""Every prompt nasloop sends: the Generator's (paper and short styles, edit requests), the
Improver's, the repair request and the resample's note, and what they share (`common`).

Written for small local models (down to ~135M parameters): short sentences, one job per prompt,
the output format stated last and shown, no section that says nothing. Each optional part of a
prompt (best code, last attempt, suggestion, window, constraints) appears exactly when the caller
gives it: ablations pass `best=None`, `window=[]` or `suggestion=""` and leave no trace.
"""

from agent.prompts.common import ERROR_CHARS, SUGGESTION_CHARS, constraints_text, outcome_text
from agent.prompts.generator import generator_messages
from agent.prompts.improver import improver_messages

__all__ = [
    "ERROR_CHARS",
    "SUGGESTION_CHARS",
    "constraints_text",
    "generator_messages",
    "improver_messages",
    "outcome_text",
]
