"""The README's install block and .ci/run install the same way (CI runs what a reader runs)."""

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pip_installs(lines) -> list[list[str]]:
    """The argument lists of every `pip install` / `python -m pip install` command in ``lines``."""
    out = []
    for line in lines:
        for command in line.split("#")[0].split("&&"):
            words = shlex.split(command)
            if words[:3] == ["python", "-m", "pip"]:
                words = words[2:]
            if words[:2] == ["pip", "install"] and "--upgrade" not in words:
                out.append(words[2:])
    return out


def test_the_readme_install_block_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).splitlines()
    documented = pip_installs(block)
    assert ["torch", "--index-url", "https://download.pytorch.org/whl/cpu", "--extra-index-url",
            "https://pypi.org/simple"] in documented  # the CPU step, in the block
    assert pip_installs((ROOT / ".ci" / "run").read_text().splitlines()) == documented
