"""``reelgate webhooks``: endpoints made, listed, rotated, disabled and enabled from the
command line against a real database; secrets shown once and verifiable."""

from __future__ import annotations

import json
import time
from pathlib import Path

from standardwebhooks.webhooks import Webhook
from typer.testing import CliRunner

from reelgate.cli.main import app
from reelgate.webhooks.signing import headers


def test_endpoint_lifecycle_from_the_command_line(sqlite_url: str, tmp_path: Path) -> None:
    env = {
        "REELGATE_DATABASE_URL": sqlite_url,
        "REELGATE_DATA_DIR": str(tmp_path),
        "REELGATE_FETCH_ALLOW_PRIVATE": '["127.0.0.0/8"]',
        "REELGATE_FETCH_ALLOW_PORTS": "[9999]",
    }
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    account = json.loads(run("accounts", "create", "hooks", "--json"))["id"]
    made = json.loads(
        run(
            "webhooks",
            "create",
            account,
            "http://127.0.0.1:9999/in",
            "--event",
            "video.completed",
            "--json",
        )
    )
    secret = made["secret"]
    assert made["events"] == ["video.completed"] and made["status"] == "enabled"
    # the secret works with the Standard Webhooks library
    body = b'{"type":"video.completed"}'
    signed = headers([secret], "msg_1", int(time.time()), body)
    assert Webhook(secret).verify(body, signed) == {"type": "video.completed"}

    listed = json.loads(run("webhooks", "list", account, "--json"))
    assert [e["id"] for e in listed] == [made["id"]] and "secret" not in listed[0]

    rotated = json.loads(run("webhooks", "rotate", made["id"], "--json"))
    assert rotated["secret"] != secret and rotated["previous_secret_valid_until"]
    assert "disabled" in run("webhooks", "disable", made["id"])
    assert "enabled" in run("webhooks", "enable", made["id"])

    first = run("webhooks", "default-secret", account).strip()
    assert (
        first.startswith("whsec_") and run("webhooks", "default-secret", account).strip() == first
    )
    assert run("webhooks", "default-secret", account, "--rotate").strip() != first

    private = runner.invoke(app, ["webhooks", "create", account, "http://10.0.0.1/x"], env=env)
    assert private.exit_code == 1 and "url_not_allowed" in private.stdout
    unknown = runner.invoke(
        app, ["webhooks", "create", account, "http://127.0.0.1:9999/x", "--event", "x"], env=env
    )
    assert unknown.exit_code == 1 and "video.completed" in unknown.stdout
    assert (
        "no account"
        in runner.invoke(
            app, ["webhooks", "create", "acct_nope", "http://127.0.0.1:9999/x"], env=env
        ).stdout
    )
