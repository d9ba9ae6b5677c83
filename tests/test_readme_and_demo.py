"""The README's promises: its driftgate.yaml example is valid, every CLI
command it lists exists with the options it shows, and the demo (which runs
plan, sync and history as written) tells its whole story."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
import yaml

from driftgate.config import parse_config
from tests.conftest import ROOT, invoke_cli, run_cli

README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_config_examples_are_valid(tmp_path: Path) -> None:
    examples = [b for b in blocks("yaml") if "environments:" in b]
    assert len(examples) >= 2  # the reference and the Kubernetes section
    for example in examples:
        parse_config(yaml.safe_load(example), tmp_path / "driftgate.yaml")
    config = parse_config(yaml.safe_load(examples[0]), tmp_path / "driftgate.yaml")
    assert sorted(config.environments) == ["billing-vms", "demo"]
    billing = config.environment("billing-vms")
    assert billing.source.require_signed_commits and billing.target.ssh == "billing-ssh"
    assert billing.approval.mode.value == "always"


def test_readme_cli_lines_match_the_cli() -> None:
    (cli_block,) = [b for b in blocks("sh") if "driftgate plan ENV" in b]  # the CLI reference
    lines = [line.split("#")[0].split() for line in cli_block.splitlines() if line.startswith("driftgate ")]
    assert len(lines) >= 7
    for words in lines:
        command = [w for w in words[1:] if w.isidentifier() or w.isalpha()]
        command = command[: 2 if command[0] in ("blocks", "deployments", "audit") else 1]
        help_text = invoke_cli(*command, "--help")
        assert help_text.returncode == 0, (command, help_text.stderr)
        for option in re.findall(r"--[a-z-]+", " ".join(words)):
            assert option in help_text.stdout, f"README shows {option} for driftgate {' '.join(command)}"


def test_make_targets_named_in_readme_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"(?:`|^)make (\w+)", README, flags=re.M):
        assert re.search(rf"^{target}:", makefile, flags=re.M), f"README names `make {target}`"
    assert (ROOT / ".ci/run").read_text().strip().endswith("make test")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.e2e  # `driftgate demo` in its own process, with its own Prefect server
@pytest.mark.timeout(480)  # bounds a hang; the demo shares two cores with the other workers
def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    # Logs held until the end (Prefect sends a batch every 2 s by default): what the demo must
    # hand to its server before it stops it, whatever the timing.
    held = {"PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "600"}
    result = run_cli("demo", "--workdir", str(tmp_path / "demo"), "--port", str(_free_port()), env=held, timeout=420)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    # The steps run in the demo's process: what Prefect queued for its server went before
    # the server stopped (else Prefect tried the stopped server at exit, a minute and more).
    assert "Error logging to API" not in out + result.stderr, (out + result.stderr)[-2000:]
    steps = [
        "$ driftgate plan demo",
        "3 change(s) pending for demo",
        "$ driftgate sync demo",
        "applied: demo",
        "max_connections = 5",  # the hand edit
        "1 change(s) pending for demo",  # plan reports exactly that drift
        "-max_connections = 5",
        "+max_connections = 100",
        "host file host/app/app.conf: max_connections = 100",  # corrected
        "host file host/app/app.conf: max_connections = 0",  # a bad commit deployed
        "$ driftgate rollback demo --yes",
        "rolled back from: ",
        "host file host/app/app.conf: max_connections = 100",  # rolled back
        "$ driftgate unpin demo",
        "reconciled through the Kubernetes API double at http://127.0.0.1:",
        "$ driftgate plan shop",
        "5 change(s) pending for shop",
        "$ driftgate sync shop --yes",
        "approval: approve by",
        "Deployment/driftgate-demo-shop/web: apply changed, health ok (healthy: 2/2 ready)",
        "greeting = edited by hand",
        "update  ConfigMap/driftgate-demo-shop/web-config",
        "$ driftgate sync shop --yes --key",  # a signed approval, from a commit signed with the same key
        "update  ConfigMap/driftgate-demo-shop/web-config",
        "approved in advance (sync --yes --key)",
        "signed by",
        "$ driftgate history",
        "$ driftgate audit verify",
        "1 signed approval re-verified",
        "make ui",
    ]
    position = 0
    for step in steps:
        found = out.find(step, position)
        assert found >= 0, f"demo output lacks {step!r} after position {position}:\n{out[position:position + 2000]}"
        position = found
    history_rows = [line for line in out.splitlines() if re.match(r"^\d+\s+\d{4}-\d\d-\d\d", line)]
    assert [(row.split()[3], row.split()[4], row.split()[5]) for row in history_rows] == [
        ("shop", "sync", "applied"),
        ("shop", "sync", "applied"),
        ("shop", "sync", "applied"),
        ("shop", "plan", "drift"),
        ("demo", "rollback", "applied"),  # history names the run's kind
        ("demo", "sync", "applied"),  # the bad commit
        ("demo", "sync", "applied"),
        ("demo", "plan", "drift"),
        ("demo", "sync", "applied"),
        ("demo", "plan", "drift"),
    ]
