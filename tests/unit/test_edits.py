"""Edit blocks (agent/replies/edits.py), read from replies written the way small models write them:
fences, CRLF, prose and an example-usage tail around the blocks, snippets copied without their
indentation, paraphrased or ambiguous SEARCH text, a whole module instead of blocks."""

from __future__ import annotations

import ast

import pytest

from agent.replies.edits import (
    MAX_BLOCKS,
    MAX_REPLY_CHARS,
    EditContext,
    code_from_reply,
    edit_diff,
    has_edit_blocks,
)
from tests.helpers.prompts import BASE

MODULE = """Here is a better network:

```python
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.head = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    def forward(self, x):
        return self.head(x)
```
"""


def block(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE"


def test_a_fenced_crlf_block_with_prose_and_an_example_tail_is_applied() -> None:
    reply = (
        "I will add batch normalisation after the first convolution.\n\n```python\n"
        + block(
            "            nn.Conv2d(1, 32, 3, padding=1),   ",  # trailing spaces: ignored
            "            nn.Conv2d(1, 32, 3, padding=1),\n            nn.BatchNorm2d(32),",
        )
        + "\n```\n\nExample usage:\n```python\nmodel = Net()\n"
        + "print(model(torch.randn(1, 1, 28, 28)))\n```\n"
    ).replace("\n", "\r\n")
    code, error = code_from_reply(reply, BASE, "diff")
    assert error is None and code is not None
    assert code == BASE.replace(
        "padding=1),\n            nn.ReLU(),\n            nn.MaxPool2d(2),\n"
        "            nn.Conv2d(32",
        "padding=1),\n            nn.BatchNorm2d(32),\n            nn.ReLU(),\n"
        "            nn.MaxPool2d(2),\n            nn.Conv2d(32",
        1,
    )
    assert "model = Net()" not in code and "\r" not in code  # the tail is not part of the edit
    diff = edit_diff(BASE, code)
    assert "+            nn.BatchNorm2d(32),\n" in diff and diff.startswith("--- a/candidate.py")


def test_several_blocks_apply_in_order_each_to_what_the_last_left() -> None:
    reply = "\n\n".join(
        [
            block(
                "            nn.Conv2d(32, 64, 3, padding=1),",
                "            nn.Conv2d(32, 96, 3, padding=1),",
            ),
            block(
                "        self.head = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))",
                "        self.head = nn.Sequential(\n"
                "            nn.Flatten(), nn.Dropout(0.2), nn.LazyLinear(num_classes)\n        )",
            ),
            # block 3 edits a line block 1 wrote
            block(
                "            nn.Conv2d(32, 96, 3, padding=1),",
                "            nn.Conv2d(32, 128, 3, padding=1),",
            ),
        ]
    )
    code, error = code_from_reply(reply, BASE, "diff")
    assert error is None and code is not None
    assert "nn.Conv2d(32, 128, 3, padding=1)" in code and "nn.Dropout(0.2)" in code
    assert "96" not in code and "64" not in code
    ast.parse(code)


def test_a_snippet_copied_without_its_indentation_matches_by_the_documented_shift_rule() -> None:
    # the model dedented the lines it copied out of the class (a uniform shift): the REPLACE is
    # shifted back by the same amount, so the module still parses
    reply = block(
        "def forward(self, x):  # x: (B, 1, 28, 28)\n"
        "    return self.head(self.features(x))  # (B, 10)",
        "def forward(self, x):  # x: (B, 1, 28, 28)\n"
        "    x = self.features(x)\n    return self.head(x)",
    )
    code, error = code_from_reply(reply, BASE, "diff")
    assert error is None and code is not None
    assert "        x = self.features(x)\n        return self.head(x)\n" in code
    ast.parse(code)


def test_wrong_relative_indentation_fails_and_says_so() -> None:
    reply = block(
        "    def forward(self, x):  # x: (B, 1, 28, 28)\n"
        "    return self.head(self.features(x))  # (B, 10)",
        "    def forward(self, x):\n        return self.head(x)",
    )
    code, error = code_from_reply(reply, BASE, "diff")
    assert code is None and error is not None
    assert error.startswith("edit block 1: its SEARCH text is not in the code shown")
    assert "not together with this indentation" in error


def test_a_paraphrased_search_line_fails_naming_the_block_the_line_and_the_closest() -> None:
    reply = "\n".join(
        [
            block(
                "            nn.MaxPool2d(2),\n        )", "            nn.AvgPool2d(2),\n        )"
            ),
            block(
                "        self.features = nn.Sequential(\n"
                "            nn.Conv2d(1, 32, kernel_size=3, padding=1),",
                "        self.features = nn.Sequential(\n"
                "            nn.Conv2d(1, 48, 3, padding=1),",
            ),
        ]
    )
    code, error = code_from_reply(reply, BASE, "diff")
    assert code is None
    assert error == (
        "edit block 2: its SEARCH text is not in the code shown (first line: "
        "'self.features = nn.Sequential('); its line 2 'nn.Conv2d(1, 32, kernel_size=3, "
        "padding=1),' matches no whole line of the code; the closest line of the code is "
        "'nn.Conv2d(1, 32, 3, padding=1),'"
    )


def test_a_search_that_occurs_twice_fails_and_asks_for_more_lines() -> None:
    reply = block("            nn.ReLU(),\n            nn.MaxPool2d(2),", "            nn.GELU(),")
    code, error = code_from_reply(reply, BASE, "diff")
    assert code is None and error is not None
    assert error.startswith("edit block 1: its SEARCH text occurs 2 times in the code shown")
    assert "copy more lines" in error
    # also when only the shift rule finds it (twice)
    shifted = block("nn.ReLU(),\nnn.MaxPool2d(2),", "nn.GELU(),")
    assert "occurs 2 times" in str(code_from_reply(shifted, BASE, "diff").error)


def test_a_whole_module_is_read_in_auto_mode_and_is_a_bad_edit_in_diff_mode() -> None:
    auto = code_from_reply(MODULE, BASE, "auto")
    assert auto.error is None and auto.code is not None and "class Net" in auto.code
    diff = code_from_reply(MODULE, BASE, "diff")
    assert diff.code is None
    assert diff.error is not None and diff.error.startswith("the reply holds no edit blocks")
    # full mode is today's protocol: the module, whatever mode the reply was written in
    assert code_from_reply(MODULE, BASE, "full") == auto


def test_with_no_code_shown_a_module_is_read_and_blocks_are_a_bad_edit() -> None:
    for mode in ("diff", "auto"):
        assert code_from_reply(MODULE, None, mode) == code_from_reply(MODULE, None, "full")
        blocks = code_from_reply(block("import torch", "import torch, math"), None, mode)
        assert blocks.code is None and "no code was shown to edit" in str(blocks.error)


def test_blocks_win_over_a_module_in_auto_mode() -> None:
    reply = (
        MODULE
        + "\nOr, smaller:\n"
        + block(
            "            nn.ReLU(),\n            nn.MaxPool2d(2),\n            nn.Conv2d(32", "x"
        )
    )
    assert "occurs" not in str(code_from_reply(reply, BASE, "auto").error)
    assert code_from_reply(reply, BASE, "auto").code is None  # the blocks were meant


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            "<<<<<<< SEARCH\n        super().__init__()\n=======\n        super().__init__()\n",
            "edit block 1 is not closed: no >>>>>>> REPLACE line (was the reply cut short?)",
        ),
        (
            "<<<<<<< SEARCH\n        super().__init__()\n>>>>>>> REPLACE",
            "edit block 1 has no ======= line between its SEARCH and REPLACE parts",
        ),
        (
            "<<<<<<< SEARCH\n\n=======\nimport math\n>>>>>>> REPLACE",
            "edit block 1: its SEARCH part is empty; copy the lines to change from the code shown",
        ),
        (
            block("import torch", "import torch")
            + "\n<<<<<<< SEARCH\nimport torch\n=======\n=======\n>>>>>>> REPLACE",
            "edit block 2 has a second ======= line",
        ),
        (
            block("import torch", "import torch"),
            "the edit blocks change nothing: each REPLACE part equals its SEARCH part",
        ),
        (
            block("import torch", "import torch") + "\n<<<<<<< SEARCH\nimport torch\n",
            "edit block 2 is not closed: no >>>>>>> REPLACE line (was the reply cut short?)",
        ),
        (
            "<<<<<<< SEARCH\nimport torch\n<<<<<<< SEARCH\n",
            "edit block 1 is not closed before the next SEARCH line",
        ),
    ],
)
def test_malformed_blocks_are_clear_errors(reply: str, message: str) -> None:
    assert code_from_reply(reply, BASE, "auto") == (None, message)


def test_markers_are_read_with_five_to_nine_characters_in_any_case() -> None:
    reply = (
        "<<<<< search\n        super().__init__()\n=========\n"
        "        super().__init__()\n        self.scale = 1.0\n>>>>>>>>> Replace"
    )
    code, error = code_from_reply(reply, BASE, "diff")
    assert error is None and code is not None and "        self.scale = 1.0\n" in code


def test_untrusted_replies_are_bounded_and_never_raise() -> None:
    many = "\n".join(block(f"# {n}", f"# {n}!") for n in range(MAX_BLOCKS + 1))
    assert f"more than {MAX_BLOCKS} edit blocks" in str(code_from_reply(many, BASE, "diff").error)
    huge = block("import torch", "import torch" + " " * MAX_REPLY_CHARS)
    assert "over 200,000 characters" in str(code_from_reply(huge, BASE, "diff").error)
    # a pathological base: every line the same, the SEARCH dedented so only the shift rule looks
    same = "    x = 1\n" * 20_000
    slow = block("x = 1\n" * 150 + "y = 2", "z = 3")
    assert code_from_reply(slow, same, "diff").code is None
    for junk in ("", "=======", ">>>>>>> REPLACE", "<<<<<<< SEARCH", "\x00" * 10, "```"):
        code_from_reply(junk, BASE, "diff")
        code_from_reply(junk, None, "auto")


def test_has_edit_blocks_and_the_context_diff() -> None:
    assert has_edit_blocks("text\n  <<<<<<< SEARCH\n") and not has_edit_blocks("<<<<<<< HEAD\n")
    assert EditContext(None).diff("anything") == ""
    assert EditContext(BASE).diff(BASE.replace("32", "48")).count("+") > 2
