"""Reading messy small-model replies: the Generator's module and the Improver's advice."""

from __future__ import annotations

import ast
import random
import textwrap
import time

import pytest

from agent.replies.advice import parse_improvement
from agent.replies.code import extract_code

NET = """import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)  # (B, 32, 32, 32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)  # (B, 64, 16, 16)
        self.fc = nn.Linear(64, num_classes)  # (B, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 32, 16, 16)
        x = F.relu(self.conv2(x)).mean((2, 3))  # (B, 64)
        return self.fc(x)
"""

NET_V2 = NET.replace("64", "96")


def _parses_with_net(code: str | None) -> bool:
    assert code is not None
    tree = ast.parse(code)
    return any(isinstance(n, ast.ClassDef) and n.name == "Net" for n in tree.body)


# --------------------------------------------------------------------------- extract_code


class TestExtractCode:
    def test_prose_around_a_python_fence(self) -> None:
        reply = f"Sure! Here is an improved network:\n\n```python\n{NET}```\n\nIt uses two convs."
        assert extract_code(reply) == NET

    @pytest.mark.parametrize("tag", ["py", "Python", "python3", "", "pytorch"])
    def test_fence_tags(self, tag: str) -> None:
        assert extract_code(f"```{tag}\n{NET}```") == NET

    def test_tilde_fence(self) -> None:
        assert extract_code(f"~~~python\n{NET}~~~\n") == NET

    def test_no_fence_at_all(self) -> None:
        assert extract_code(NET) == NET

    def test_bare_code_wrapped_in_prose_paragraphs(self) -> None:
        reply = (
            f"Here is the model you asked for.\n\n{NET}\nThis network is small.\nIt trains fast."
        )
        assert extract_code(reply) == NET

    def test_language_tag_line_inside_an_untagged_fence(self) -> None:
        assert extract_code(f"```\npython\n{NET}```") == NET

    def test_language_tag_line_before_bare_code(self) -> None:
        assert extract_code(f"python\n{NET}") == NET

    def test_unclosed_fence(self) -> None:
        assert extract_code(f"Here you go:\n```python\n{NET}") == NET

    def test_unclosed_fence_followed_by_explanation(self) -> None:
        reply = f"```python\n{NET}\nThis model uses two convolution layers and global pooling.\n"
        assert extract_code(reply) == NET

    def test_bare_code_with_prose_between_parts(self) -> None:
        head, net = NET.split("\n\n\n", 1)
        reply = f"{head}\n\nNow the model itself, which uses two layers:\n\n{net}\nDone, enjoy."
        code = extract_code(reply)
        assert _parses_with_net(code)
        assert code is not None and "enjoy" not in code

    def test_stray_closing_fence_after_bare_code(self) -> None:
        assert extract_code(f"{NET}```\n\nExplanation: two conv layers.") == NET

    def test_fence_opened_at_the_end_of_a_prose_line(self) -> None:
        assert extract_code(f"The code is:```python\n{NET}```") == NET

    def test_fence_closed_at_the_end_of_a_code_line(self) -> None:
        reply = f"```python\n{NET.rstrip()}```\nDone."
        assert extract_code(reply) == NET

    def test_indented_fence_in_a_list_item(self) -> None:
        reply = "1. The network:\n   ```python\n" + textwrap.indent(NET, "   ") + "   ```\n"
        assert extract_code(reply) == NET

    def test_windows_line_endings(self) -> None:
        assert extract_code(f"```python\r\n{NET}```".replace("\n", "\r\n")) == NET

    def test_codellama_python_tags(self) -> None:
        assert extract_code(f"[PYTHON]\n{NET}[/PYTHON]") == NET

    def test_two_complete_versions_take_the_last(self) -> None:
        reply = f"First try:\n```python\n{NET}```\nBetter version:\n```python\n{NET_V2}```\n"
        assert extract_code(reply) == NET_V2

    def test_full_module_beats_a_later_snippet_without_imports(self) -> None:
        snippet = NET[NET.index("class Net") :]
        reply = f"```python\n{NET_V2}```\nThe key part again:\n```python\n{snippet}```"
        assert extract_code(reply) == NET_V2

    def test_usage_example_after_the_module_is_ignored(self) -> None:
        usage = "net = Net()\nprint(net(torch.zeros(2, 3, 32, 32)).shape)\n"
        reply = f"```python\n{NET}```\nTest it with:\n```python\n{usage}```"
        assert extract_code(reply) == NET

    def test_fragments_are_joined_when_the_net_block_needs_them(self) -> None:
        imports = "import torch\nimport torch.nn as nn\n"
        block = textwrap.dedent(
            """\
            class Block(nn.Module):
                def __init__(self, c):
                    super().__init__()
                    self.conv = nn.Conv2d(c, c, 3, padding=1)

                def forward(self, x):
                    return torch.relu(self.conv(x))
            """
        )
        net = textwrap.dedent(
            """\
            class Net(nn.Module):
                def __init__(self, num_classes=10):
                    super().__init__()
                    self.block = Block(3)
                    self.fc = nn.Linear(3, num_classes)

                def forward(self, x):
                    return self.fc(self.block(x).mean((2, 3)))
            """
        )
        usage = "print(Net()(torch.zeros(1, 3, 32, 32)).shape)\n"
        reply = (
            f"Imports:\n```python\n{imports}```\nA residual block:\n```python\n{block}```\n"
            f"The network:\n```python\n{net}```\nCheck:\n```python\n{usage}```"
        )
        code = extract_code(reply)
        assert _parses_with_net(code)
        assert code is not None
        assert "class Block" in code and "import torch.nn as nn" in code
        assert "print(" not in code  # a usage demo is not a fragment
        assert code.index("import torch") < code.index("class Block") < code.index("class Net")

    def test_fragments_are_not_joined_when_the_net_block_is_complete(self) -> None:
        reply = f"```python\nimport os\nSEED = 1\n```\n```python\n{NET}```"
        assert extract_code(reply) == NET

    def test_broken_fenced_code_is_still_returned(self) -> None:
        broken = "import torch.nn as nn\n\nclass Net(nn.Module:\n    pass\n"
        code = extract_code(f"Here:\n```python\n{broken}```\nHope it helps!")
        assert code == broken  # the sandbox must see and classify the syntax error

    def test_good_block_preferred_to_a_broken_one(self) -> None:
        broken = "class Net(nn.Module:\n    pass\n"
        assert extract_code(f"```python\n{NET}```\n```python\n{broken}```") == NET

    def test_fenced_code_without_net_is_returned_for_the_sandbox(self) -> None:
        code = "import torch\nmodel = torch.nn.Linear(3, 10)\n"
        assert extract_code(f"```python\n{code}```") == code

    def test_non_python_fences_are_not_code(self) -> None:
        assert extract_code("Install first:\n```bash\npip install torch\n```") is None
        assert extract_code('```json\n{"problem": "x", "suggestion": "y"}\n```') is None

    def test_other_tag_but_defines_net(self) -> None:
        assert extract_code(f"```text\n{NET}```") == NET

    def test_reasoning_draft_is_skipped(self) -> None:
        draft = "class Net(nn.Module):\n    pass\n"
        reply = f"<think>Maybe:\n```python\n{draft}```\nNo, bigger.</think>\n```python\n{NET}```"
        assert extract_code(reply) == NET

    def test_bare_broken_code_that_starts_like_python(self) -> None:
        broken = "import torch\nclass Net(torch.nn.Module)\n    def forward(self, x): return x\n"
        assert extract_code(broken) == broken

    @pytest.mark.parametrize(
        "reply",
        [
            "",
            "   \n\t ",
            "I think you should add more convolution layers and use batch normalization.",
            "Net",
            "The class Net should have three conv layers.",
            "```\n```",
            "```python\n```",
            "Error: I cannot help with that.",
            "{'problem': 'x', 'suggestion': 'y'}",
            "\x00\x01\x02 binary \xff junk",
        ],
    )
    def test_no_usable_code(self, reply: str) -> None:
        assert extract_code(reply) is None

    def test_not_a_string(self) -> None:
        assert extract_code(None) is None  # type: ignore[arg-type]
        assert extract_code(b"class Net: pass") is None  # type: ignore[arg-type]

    def test_huge_inputs_are_quick_and_never_raise(self) -> None:
        rng = random.Random(0)
        noise = "".join(rng.choice("abc{}()[]`'\":\n #=") for _ in range(300_000))
        huge = [
            "{" * 500_000,
            "```python\n" * 50_000,
            "import os\n\n" * 100_000,
            "class Net:\n" * 50_000 + "prose at the end",
            "x" * 3_000_000,
            noise,
            f"```python\n{NET}```\n" + "blah " * 200_000,
        ]
        for text in huge:
            start = time.perf_counter()
            extract_code(text)
            assert time.perf_counter() - start < 5

    def test_never_executes_anything(self) -> None:
        marker = "extract_must_not_run_this"
        hostile = f"import builtins\nbuiltins.{marker} = True\nclass Net: pass\n"
        assert extract_code(f"```python\n{hostile}```") == hostile
        import builtins

        assert not hasattr(builtins, marker)


# --------------------------------------------------------------------------- parse_improvement

EXPECTED = {"problem": "The first Linear expects 2048 inputs.", "suggestion": "Use 1568 inputs."}


class TestParseImprovement:
    def test_plain_json(self) -> None:
        reply = (
            '{"problem": "The first Linear expects 2048 inputs.", "suggestion": "Use 1568 inputs."}'
        )
        assert parse_improvement(reply) == EXPECTED

    def test_json_fence_with_chatter(self) -> None:
        reply = (
            "Let me analyse the error.\n\n```json\n{\n"
            '  "problem": "The first Linear expects 2048 inputs.",\n'
            '  "suggestion": "Use 1568 inputs."\n}\n```\n\nLet me know if this helps!'
        )
        assert parse_improvement(reply) == EXPECTED

    def test_object_inside_prose_without_fence(self) -> None:
        reply = (
            'My answer is {"problem": "The first Linear expects 2048 inputs.", '
            '"suggestion": "Use 1568 inputs."} and that is all.'
        )
        assert parse_improvement(reply) == EXPECTED

    def test_single_quotes_and_apostrophes(self) -> None:
        reply = "{'problem': \"The net's head is too wide\", 'suggestion': 'Use 64 channels.'}"
        assert parse_improvement(reply) == {
            "problem": "The net's head is too wide",
            "suggestion": "Use 64 channels.",
        }

    def test_single_quoted_value_with_an_apostrophe(self) -> None:
        reply = "{'problem': 'the net's head is too wide', 'suggestion': 'use 64 channels',}"
        assert parse_improvement(reply) == {
            "problem": "the net's head is too wide",
            "suggestion": "use 64 channels",
        }

    def test_trailing_commas(self) -> None:
        reply = '```json\n{"problem": "slow", "suggestion": "downsample earlier",}\n```'
        assert parse_improvement(reply) == {"problem": "slow", "suggestion": "downsample earlier"}

    def test_unquoted_keys_and_python_literals(self) -> None:
        reply = '{problem: "too deep", suggestion: "remove one block", final: True}'
        assert parse_improvement(reply) == {"problem": "too deep", "suggestion": "remove one block"}

    def test_smart_quotes(self) -> None:
        reply = "{<problem>: <x is wrong>, <suggestion>: <fix x>}"
        reply = reply.replace("<", "\u201c").replace(">", "\u201d")
        assert parse_improvement(reply) == {"problem": "x is wrong", "suggestion": "fix x"}

    @pytest.mark.parametrize(
        ("problem_key", "suggestion_key"),
        [
            ("diagnosis", "suggestions"),
            ("issue", "fix"),
            ("Problem", "Improvement"),
            ("root cause", "recommended_change"),
            ("error", "solution"),
        ],
    )
    def test_renamed_keys(self, problem_key: str, suggestion_key: str) -> None:
        reply = f'{{"{problem_key}": "too few channels", "{suggestion_key}": "double them"}}'
        assert parse_improvement(reply) == {
            "problem": "too few channels",
            "suggestion": "double them",
        }

    def test_list_of_suggestions_is_joined(self) -> None:
        reply = '{"diagnosis": "underfits", "suggestions": ["Add BatchNorm.", "Widen conv2."]}'
        assert parse_improvement(reply) == {
            "problem": "underfits",
            "suggestion": "Add BatchNorm. Widen conv2.",
        }

    def test_list_without_punctuation_is_joined_with_semicolons(self) -> None:
        reply = '{"problem": "underfits", "suggestions": ["add BatchNorm", "widen conv2"]}'
        result = parse_improvement(reply)
        assert result is not None
        assert result["suggestion"] == "add BatchNorm; widen conv2"

    def test_nested_object(self) -> None:
        reply = '{"analysis": {"problem": "too small", "suggestion": "add a block"}}'
        assert parse_improvement(reply) == {"problem": "too small", "suggestion": "add a block"}

    def test_values_are_stripped(self) -> None:
        reply = '{"problem": "  too small \\n", "suggestion": "\\t add a block  "}'
        assert parse_improvement(reply) == {"problem": "too small", "suggestion": "add a block"}

    def test_missing_problem_is_empty(self) -> None:
        assert parse_improvement('{"suggestion": "add dropout"}') == {
            "problem": "",
            "suggestion": "add dropout",
        }

    def test_first_usable_object_wins_over_braces_in_code(self) -> None:
        reply = (
            'Your code has f"{x}" and d = {1: 2}.\n'
            '{"problem": "too small", "suggestion": "add a block"}\n'
            '{"problem": "other", "suggestion": "other"}'
        )
        assert parse_improvement(reply) == {"problem": "too small", "suggestion": "add a block"}

    def test_echoed_template_is_not_advice(self) -> None:
        reply = '{"problem": "<what is wrong>", "suggestion": "<the one change to make>"}'
        assert parse_improvement(reply) is None
        assert parse_improvement('{"problem": "...", "suggestion": "..."}') is None

    def test_plain_text_labels(self) -> None:
        reply = (
            "Problem: The first Linear expects 2048 inputs.\n"
            "Suggestion: Use 1568 inputs.\n\nGood luck!"
        )
        assert parse_improvement(reply) == EXPECTED

    def test_markdown_labels_and_multiline_values(self) -> None:
        reply = (
            "**Diagnosis:** the network underfits.\n\n"
            "**Suggestions:**\n- add BatchNorm after each conv\n- widen conv2 to 64\n\n"
            "These changes should help."
        )
        assert parse_improvement(reply) == {
            "problem": "the network underfits.",
            "suggestion": "add BatchNorm after each conv; widen conv2 to 64",
        }

    def test_json_lines_without_braces(self) -> None:
        reply = '"problem": "too slow",\n"suggestion": "use stride 2 in the first conv",'
        assert parse_improvement(reply) == {
            "problem": "too slow",
            "suggestion": "use stride 2 in the first conv",
        }

    def test_reasoning_is_skipped(self) -> None:
        reply = (
            '<think>{"problem": "draft", "suggestion": "draft"}</think>\n'
            '{"problem": "final", "suggestion": "final fix"}'
        )
        assert parse_improvement(reply) == {"problem": "final", "suggestion": "final fix"}

    def test_reasoning_with_an_empty_answer_falls_back_to_the_whole_text(self) -> None:
        reply = '<think>{"problem": "p", "suggestion": "s"}</think>\n  \n'
        assert parse_improvement(reply) == {"problem": "p", "suggestion": "s"}

    @pytest.mark.parametrize(
        "reply",
        [
            "",
            "  \n ",
            "I am not sure what to do here.",
            "{}",
            '{"problem": "only a problem"}',
            "{'a': 1, 'b': [2, 3]}",
            "{{{{ ]]]] '''' \"\"\"",
            "Problem: only a problem, no advice.",
        ],
    )
    def test_nothing_usable(self, reply: str) -> None:
        assert parse_improvement(reply) is None

    def test_number_value_becomes_text(self) -> None:
        assert parse_improvement('{"suggestion": 12, "problem": null}') == {
            "problem": "",
            "suggestion": "12",
        }

    def test_not_a_string(self) -> None:
        assert parse_improvement(None) is None  # type: ignore[arg-type]
        assert parse_improvement(42) is None  # type: ignore[arg-type]

    def test_huge_inputs_are_quick_and_never_raise(self) -> None:
        rng = random.Random(1)
        noise = "".join(rng.choice("{}[]'\":,\\ abcTrue\n") for _ in range(300_000))
        huge = [
            "{" * 500_000,
            "{'a': 'b', " * 100_000,
            "Problem: " + "x" * 2_000_000,
            '{"suggestion": "' + "y" * 1_000_000 + '"}',
            "[" * 100_000 + "]" * 100_000,
            noise,
        ]
        for text in huge:
            start = time.perf_counter()
            parse_improvement(text)
            assert time.perf_counter() - start < 5

    def test_deeply_nested_literal_does_not_raise(self) -> None:
        assert parse_improvement("{'a': " * 5000 + "1" + "}" * 5000) is None
