"""The permission patterns of a task's broker user, and the admin commands' errors, without a
broker (tests/integration/test_broker_users.py tries them on the real RabbitMQ)."""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from gridhpo.cli import main
from gridhpo.protocol import control_queue, events_queue, points_queue
from gridhpo.protocol.brokeradmin import BrokerAdminError, RabbitAdmin, task_permissions, task_user
from gridhpo.protocol.routing import task_exchange


def allowed(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None  # as RabbitMQ matches a permission pattern


def test_a_tasks_user_may_touch_its_own_names_only() -> None:
    perms = task_permissions(1)
    own = [events_queue(1), points_queue(1, "tok"), control_queue(1, "pilot.a"), task_exchange(events_queue(1))]
    others = [events_queue(12), points_queue(2, "tok"), control_queue(10, "p"), "gridhpo.task.11", "amq.default",
              "gridhpo.events.1x", "x.gridhpo.events.1", ""]
    for kind in ("configure", "write", "read"):
        assert all(allowed(perms[kind], n) for n in own), kind
        assert not any(allowed(perms[kind], n) for n in others), kind
    assert allowed(perms["write"], "gridhpo.dead-letter") and not allowed(perms["read"], "gridhpo.dead-letter")


def test_users_are_named_per_virtual_host() -> None:
    assert task_user(3) == "gridhpo-task-3" and task_user(3, "team-a") == "gridhpo-task-3@team-a"
    assert RabbitAdmin("amqp://u:p@h:5672/team%2Da").vhost == "team-a"
    assert RabbitAdmin("amqp://u:p@h:5672/").api == "http://h:15672/api"


def test_per_task_users_need_rabbitmq() -> None:
    with pytest.raises(BrokerAdminError, match="need RabbitMQ"):
        RabbitAdmin("filesystem:///tmp/q")
    out = CliRunner().invoke(main, ["admin", "broker", "grant", "3", "--broker", "filesystem:///tmp/q"])
    assert out.exit_code == 1 and "need RabbitMQ" in out.output
    out = CliRunner().invoke(main, ["admin", "broker", "grant", "three", "--broker", "amqp://h/"])
    assert out.exit_code == 2 and "task id" in out.output
