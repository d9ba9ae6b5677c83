"""driftgate_tasks: what ansible-runner's events leave out, for driftgate's plan.

ansible-runner's ``runner_on_skipped`` event carries no result, so it cannot
tell a task check mode skipped (its effect is unknown) from one whose ``when``
was false; and no event says that a task has ``check_mode: false`` (it runs
for real, even in check mode). This callback writes one JSON line per task
result to the file named by ``$DRIFTGATE_TASK_FACTS``: host, task uuid (the
key of ansible-runner's events), the task's effective ``check_mode``, and why
a skipped task was skipped. Booleans and fixed words only: nothing of the
result (which may hold secrets) leaves Ansible through here.

Enabled by `driftgate.ansible` through ``ANSIBLE_CALLBACK_PLUGINS`` and
``ANSIBLE_CALLBACKS_ENABLED``; runs inside ansible-playbook.
"""

from __future__ import annotations

import json
import os
import re

from ansible.plugins.callback import CallbackBase

# A skip that says the task would not run anyway: creates/removes already hold.
_PREDICTED_SKIP = re.compile(r"matching (creates|removes) option|^skipped, since .* exists")
_CONDITION_KEYS = ("skip_reason", "skipped_reason", "false_condition")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "driftgate_tasks"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._out = None
        path = os.environ.get("DRIFTGATE_TASK_FACTS")
        if path:
            self._out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run
            self._write({"driftgate_tasks": 1})  # the reader checks that the callback ran at all

    def _write(self, line: dict) -> None:
        if self._out is not None:
            self._out.write(json.dumps(line) + "\n")
            self._out.flush()

    def _note(self, result, skip: str = "") -> None:
        task = result._task
        self._write(
            {
                "host": result._host.get_name(),
                "uuid": str(task._uuid),
                "check_mode": task.check_mode if isinstance(task.check_mode, bool) else None,
                "skip": skip,
            }
        )

    def v2_runner_on_ok(self, result) -> None:
        self._note(result)

    def v2_runner_on_skipped(self, result) -> None:
        self._note(result, skip=_skip_kind(result._task, result._result))

    def v2_playbook_on_stats(self, stats) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def _skip_kind(task, res: dict) -> str:
    """'check-mode' when check mode is why the task did not run (its effect at
    apply is unknown), 'condition' when it would not run at apply either,
    'hidden' when no_log hid the reason from a task that has a condition."""
    conditions = [str(condition) for condition in (task.when or ())]
    if any("ansible_check_mode" in condition for condition in conditions):
        return "check-mode"  # `when: not ansible_check_mode`: skipped *because* this is a check
    if "censored" in res:  # no_log hides skip_reason along with everything else
        return "hidden" if conditions else "check-mode"
    items = res.get("results")
    if isinstance(items, list) and items:  # a loop: skipped as a whole when every item was
        kinds = [_skip_kind_of_result(item) for item in items if isinstance(item, dict)]
        return "check-mode" if "check-mode" in kinds else "condition"
    return _skip_kind_of_result(res)


def _skip_kind_of_result(res: dict) -> str:
    if any(key in res for key in _CONDITION_KEYS):
        return "condition"
    if _PREDICTED_SKIP.search(str(res.get("msg", ""))):
        return "condition"
    return "check-mode"  # "Command would have run if not in check mode", "does not support check mode", censored, ...
