"""Handbook › Pre-Production Checklist › Application › "Configuration validated": every
configuration the profile names passes its own validator (promtool, nginx -t, amtool, …)."""

from opsverify import family, message
from opsverify.drivers import commands

config_check = family(
    category="infrastructure",
    controls=["SOC2:CC8.1", "ISO27001:A.8.9"],
    runbook="runbooks/configuration.md",
    cadences=["predeploy", "daily"],
)


@config_check("CFG-001", "Configuration passes its validator", severity="high")
def test_configuration_validated(config_command, evidence):
    outcome = commands.run(config_command)
    evidence.json("command", {"name": config_command.name, **outcome.evidence()})
    shown = " ".join(outcome.argv)
    assert outcome.start_error is None, f"{shown}: could not start: {outcome.start_error}"
    assert not outcome.timed_out, (
        f"{shown}: no answer within {config_command.timeout}, killed: "
        + message.tail(outcome.output, 300)
    )
    assert outcome.ok, f"{shown} exited {outcome.exit_code}: {message.tail(outcome.output, 500)}"
