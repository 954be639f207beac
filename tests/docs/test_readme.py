"""The README shows what the repository holds."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_tutorial_function_shown_is_the_one_shipped_and_tested() -> None:
    shown = re.search(r"`fn\.js` \(`examples/chat/fn\.js`\):\n\n```js\n(.*?)```", README, re.S)
    assert shown, "the README no longer shows fn.js"
    assert shown.group(1) == (ROOT / "examples" / "chat" / "fn.js").read_text()


def test_user_facing_steps_name_only_what_a_clone_has() -> None:
    for match in re.finditer(r"\.\./shared[^\s`)]*", README):
        line = README[: match.start()].count("\n") + 1
        raise AssertionError(f"README.md:{line} points outside the repository: {match.group(0)}")


def test_the_license_pyproject_names_is_there() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'license = { text = "MIT" }' in pyproject
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
