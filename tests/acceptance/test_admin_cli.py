"""The operator's commands, run as a person would: accounts, keys, credits."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.acceptance.conftest import REELGATE, process_env


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*REELGATE, *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_accounts_keys_and_credits_from_the_command_line(tmp_path: Path) -> None:
    env = process_env(data_dir=str(tmp_path / "data"))
    _cli(env, "db", "upgrade")
    created = json.loads(
        _cli(
            env,
            "accounts",
            "create",
            "acme",
            "--credits",
            "12.5",
            "--allow-model",
            "sora-2",
            "--json",
        )
    )
    account = created["id"]
    assert created["balance"] == "12.500"
    assert created["flags"]["allowed_models"] == ["sora-2"]

    out = _cli(env, "keys", "create", account, "--scope", "jobs:read")
    key = out.strip().splitlines()[-1]
    assert key.startswith("rg_")
    keys = json.loads(_cli(env, "keys", "list", account, "--json"))
    assert [k["scopes"] for k in keys] == [["jobs:read"]]
    assert key not in json.dumps(keys)

    _cli(env, "keys", "revoke", keys[0]["id"])
    keys = json.loads(_cli(env, "keys", "list", account, "--json"))
    assert keys[0]["revoked_at"] is not None

    granted = _cli(env, "credits", "grant", account, "7.5")
    assert "balance 20.000 credits (USD 0.20)" in granted  # and what they are worth
    flags = json.loads(_cli(env, "accounts", "flags", account, "--prc-opt-in"))
    assert flags["prc_opt_in"] is True

    bad = subprocess.run(
        [*REELGATE, "credits", "grant", account, "--", "-100"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "insufficient_credits" in bad.stdout
