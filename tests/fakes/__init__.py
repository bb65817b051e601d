"""Stand-ins for outside services that tests talk to over real protocols.

`FakeOpenAIServer` is a real HTTP server speaking the OpenAI chat API on 127.0.0.1;
`MNIST5K_REPLIES` is a scripted run for the offline MNIST-5k task (input 1x28x28, 10 classes):
generator replies in a small local model's style, good nets and typical failures (a Linear sized
for 32x32, a syntax slip, prose without code, a class named Model, a comment-only duplicate), and
improver replies in the JSON shapes such models write.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.openai_server import FakeOpenAIServer, ScriptedResponder, UnknownModel

REPLIES_DIR = Path(__file__).parent / "replies"
MNIST5K_REPLIES = REPLIES_DIR / "mnist5k.json"

__all__ = [
    "MNIST5K_REPLIES",
    "REPLIES_DIR",
    "FakeOpenAIServer",
    "ScriptedResponder",
    "UnknownModel",
]
