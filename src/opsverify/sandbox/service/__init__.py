"""cronos-ai, the sandbox's reference web service, and the webhook receiver behind Alertmanager.

Both run as their own processes under the sandbox supervisord; nothing here is imported by
the engine.
"""
