"""driftgate.yaml: lookup order, validation with one error per problem, safe paths."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from driftgate.config import ApprovalMode, find_config, load_config, parse_duration
from driftgate.errors import ConfigError
from tests.conftest import invoke_cli

VALID = {
    "defaults": {"approval": {"mode": "always", "timeout": "30m"}},
    "environments": {
        "web": {
            "source": {"repo": "./repo", "ref": "v1.2", "path": "ansible/web"},
            "target": {"kind": "ansible", "playbook": "site.yml", "inventory": "hosts.ini", "vars": {"a": 1}},
        },
        "db": {
            "source": {"repo": "https://git.example.com/x.git"},
            "target": {"kind": "ansible", "hosts": {"db1": {"ansible_host": "10.0.0.5"}}},
            "approval": {"mode": "never"},
            "sync": {"schedule": {"cron": "*/10 * * * *"}},
            "drift": {"schedule": {"interval": "5m"}, "self_heal": "report"},
        },
    },
}


def write(tmp_path: Path, data: object, name: str = "driftgate.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_valid_config_merges_defaults_and_resolves_local_repo(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    web, db = config.environment("web"), config.environment("db")
    assert web.approval.mode == ApprovalMode.ALWAYS and web.approval.timeout == timedelta(minutes=30)
    assert db.approval.mode == ApprovalMode.NEVER and db.approval.timeout == timedelta(minutes=30)
    assert web.source.repo == str(tmp_path / "repo")  # relative to the file, not the cwd
    assert db.source.repo == "https://git.example.com/x.git"
    assert db.source.ref == "main" and db.source.path == "."
    assert db.drift.schedule is not None and db.drift.schedule.interval == timedelta(minutes=5)


def test_every_problem_is_reported_with_environment_and_field(tmp_path: Path) -> None:
    broken = {
        "environments": {
            "web": {
                "source": {"repo": "./r", "path": "../../etc"},
                "target": {"kind": "ansible", "playbok": "site.yml", "inventory": "h.ini"},
                "approval": {"mode": "sometimes"},
            },
            "db": {"source": {"ref": "main"}, "target": {"kind": "terraform"}},
        }
    }
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, broken))
    problems = caught.value.problems
    assert any(p.startswith("environment 'web': source.path:") and "escapes the repository" in p for p in problems)
    assert "environment 'web': target.playbok: unknown key (check the spelling)" in problems
    assert any(p.startswith("environment 'web': approval.mode:") for p in problems)
    assert "environment 'db': source.repo: Field required" in problems
    assert "environment 'db': target: unknown kind 'terraform': use 'ansible' or 'kubernetes'" in problems
    assert len(problems) == 5
    assert str(tmp_path / "driftgate.yaml") in str(caught.value)


def test_unknown_top_level_key_and_missing_environments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, {"enviroments": {}}))
    assert "unknown key 'enviroments' at the top level" in caught.value.problems
    assert any("'environments' must map" in p for p in caught.value.problems)


@pytest.mark.parametrize(
    "target, message",
    [
        ({"kind": "ansible", "playbook": "s.yml"}, "give an inventory file or inline hosts"),
        ({"kind": "ansible", "inventory": "h", "hosts": {"a": {}}}, "not both"),
        ({"kind": "ansible", "hosts": {}}, "hosts is empty"),
        ({"kind": "ansible", "hosts": {"a": {}}, "playbook": "/etc/site.yml"}, "must be relative"),
    ],
)
def test_target_rules(tmp_path: Path, target: dict, message: str) -> None:
    data = {"environments": {"e": {"source": {"repo": "./r"}, "target": target}}}
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, data))


def test_a_target_without_kind_names_the_kinds(tmp_path: Path) -> None:
    data = {"environments": {"e": {"source": {"repo": "./r"}, "target": {"hosts": {"a": {}}}}}}
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, data))
    assert caught.value.problems == ["environment 'e': target: missing 'kind' (use 'ansible' or 'kubernetes')"]


def test_signed_commits_need_signers(tmp_path: Path) -> None:
    data = {"environments": {"e": {"source": {"repo": "./r", "require_signed_commits": True}, "target": {"kind": "ansible", "hosts": {"a": {}}}}}}
    with pytest.raises(ConfigError, match="no allowed_signers"):
        load_config(write(tmp_path, data))


def test_invalid_yaml_and_unknown_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "environments: [unclosed"))
    config = load_config(write(tmp_path, VALID))
    with pytest.raises(ConfigError, match=r"environment 'nope' is not in .* \(known: db, web\)"):
        config.environment("nope")


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = write(tmp_path, VALID, "explicit.yaml")
    from_env = write(tmp_path, VALID, "from-env.yaml")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    write(cwd, VALID)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("DRIFTGATE_CONFIG", str(from_env))
    assert find_config(explicit) == explicit
    assert find_config() == from_env
    monkeypatch.delenv("DRIFTGATE_CONFIG")
    assert find_config() == cwd / "driftgate.yaml"
    monkeypatch.chdir(tmp_path / "..")
    with pytest.raises(ConfigError, match="pass --config FILE or set DRIFTGATE_CONFIG"):
        find_config()
    monkeypatch.setenv("DRIFTGATE_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"missing.yaml \(from DRIFTGATE_CONFIG\) does not exist"):
        find_config()


@pytest.mark.parametrize("raw, seconds", [("90s", 90), ("5m", 300), ("1h", 3600), ("2d", 172800), (45, 45), ("1.5h", 5400)])
def test_durations(raw: object, seconds: float) -> None:
    assert parse_duration(raw).total_seconds() == seconds


def test_bad_duration_is_named(tmp_path: Path) -> None:
    data = {"environments": {"e": {"source": {"repo": "./r"}, "target": {"kind": "ansible", "hosts": {"a": {}}}, "approval": {"timeout": "soon"}}}}
    with pytest.raises(ConfigError, match="environment 'e': approval.timeout: 'soon' is not a duration"):
        load_config(write(tmp_path, data))


def test_cli_rejects_invalid_config_before_anything_runs(tmp_path: Path, driftgate_home: Path) -> None:
    path = write(tmp_path, {"environments": {"e": {"source": {"repo": "./r"}, "target": {"kind": "ansible"}}}})
    for command in (["plan", "e"], ["sync", "e"]):
        result = invoke_cli(*command, "--config", str(path))
        assert result.returncode == 1, result
        assert "environment 'e': target: Value error" not in result.stderr
        assert "environment 'e': target: give an inventory file or inline hosts" in result.stderr
    assert not (driftgate_home / "driftgate.db").exists()  # nothing ran, nothing recorded


def test_promote_from_names_another_environment_of_the_file(tmp_path: Path) -> None:
    web, db = VALID["environments"]["web"], VALID["environments"]["db"]
    config = load_config(write(tmp_path, {"environments": {"web": web, "db": {**db, "promote_from": "web"}}}))
    promotion = config.environment("db").promote_from
    assert promotion.environment == "web" and promotion.after == timedelta(minutes=30)  # the shorthand
    for source in ("db", "nowhere"):
        broken = {"environments": {"web": web, "db": {**db, "promote_from": {"environment": source, "after": "1h"}}}}
        with pytest.raises(ConfigError) as err:
            load_config(write(tmp_path, broken))
        assert f"environment 'db': promote_from.environment: {source!r} is not another environment of this file" in str(err.value)
