from sandbox.code import code_hash, normalise, static_problem

NET = (
    "import torch.nn as nn\n\nclass Net(nn.Module):\n    def forward(self, x):\n        return x\n"
)


def test_comments_and_layout_do_not_change_the_hash() -> None:
    noisy = (
        "# a comment\nimport torch.nn as nn\n\n\nclass Net( nn.Module ):\n"
        "    def forward(self, x):\n        return x  # same\n"
    )
    assert code_hash(noisy) == code_hash(NET)
    assert code_hash(NET.replace("return x", "return x * 2")) != code_hash(NET)


def test_unparsable_source_is_hashed_as_text() -> None:
    assert normalise("class Net(:\n  ") == "class Net(:"


def test_static_problems() -> None:
    kind, message = static_problem("class Net(nn.Module)\n    pass\n") or ("", "")
    assert kind == "syntax" and "line 1" in message
    assert static_problem("class Model: pass\n") == (
        "no_net",
        "the module defines no `Net` (expected class Net(nn.Module))",
    )
    assert static_problem(NET) is None
    assert static_problem("from mylib import Net\n") is None
    # binding Net through globals() would need a run to tell; the policy refuses globals() first
    assert (static_problem("globals()['Net'] = object\n") or ("",))[0] == "forbidden"


def test_one_defines_net_gate_for_the_precheck_and_the_reply_reader() -> None:
    """sandbox.code.defines_net is the one static gate: a module that only *uses* Net fails
    the precheck, and the reply reader prefers the block that binds it."""
    import ast

    from agent.replies.code import extract_code
    from sandbox.code import defines_net, static_problem

    uses_only = "import torch\nmodel = Net()\n"
    binds = "import torch.nn as nn\nclass Net(nn.Module):\n    pass\n"
    assert not defines_net(ast.parse(uses_only)) and defines_net(ast.parse(binds))
    assert static_problem(uses_only) == (
        "no_net",
        "the module defines no `Net` (expected class Net(nn.Module))",
    )
    reply = f"```python\n{binds}```\nThen run it:\n```python\n{uses_only}```\n"
    assert extract_code(reply) == binds
