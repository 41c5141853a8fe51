"""Canned replies and reply templates: an operator's text with variables, rendered in the
notifications' sandbox (admin/notifications/sandbox.py: no Python internals, a budget of steps
and of text), as plain text. Pure.

The variables: ``ticket`` (``id``, ``subject``, ``status``, ``priority``, ``type``), ``customer``
(``name``, ``number``, ``email``; empty for an unknown sender), ``agent`` (``name``) and
``ticketMessage`` (``message``: the text of the ticket's last message from the customer, as
written). ``{{ ticketMessage.message | raw }}`` gives that text as it is: a reply is plain text,
nothing is escaped, and ``raw`` is there so templates written for other helpdesks work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2

from admin.notifications import sandbox


@dataclass(frozen=True, slots=True)
class TicketView:
    id: int
    subject: str
    status: str
    priority: str
    type: str


@dataclass(frozen=True, slots=True)
class CustomerView:
    name: str = ""
    number: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True)
class AgentView:
    name: str = ""


@dataclass(frozen=True, slots=True)
class MessageView:
    message: str = ""


class ReplyError(ValueError):
    """The template cannot be rendered: one line saying why."""


SAMPLE = {"ticket": TicketView(1234, "No internet since this morning", "waiting_customer", "medium", "incident"),
          "customer": CustomerView("Anna Bauer", "C000042", "anna@example.at"), "agent": AgentView("Max"),
          "message": MessageView("My router's light is red.\nWhat can I do?")}
"""What "check" renders a template with."""


def _environment() -> jinja2.Environment:
    env = sandbox.MessageSandbox(autoescape=False, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                 lstrip_blocks=True)
    env.filters["raw"] = lambda value: value
    return env


_ENV = _environment()


def render(source: str, *, ticket: TicketView, customer: CustomerView, agent: AgentView,
           message: MessageView) -> str:
    """The reply's text. Raises :class:`ReplyError` for a template that does not compile, names
    what it is not given, or runs past the sandbox's budget."""
    try:
        template = sandbox.guarded(_ENV, source)
        context: dict[str, Any] = {"ticket": ticket, "customer": customer, "agent": agent, "ticketMessage": message,
                                   sandbox.BUDGET: sandbox.Budget()}
        return template.render(context).strip() + "\n"
    except jinja2.TemplateSyntaxError as e:
        raise ReplyError(f"line {e.lineno}: {e.message}") from None
    except jinja2.UndefinedError as e:
        raise ReplyError(f"{e.message}") from None
    except jinja2.exceptions.SecurityError as e:
        raise ReplyError(f"refused: {e}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as e:
        raise ReplyError(f"{type(e).__name__}: {e}") from None


def problems(source: str) -> list[str]:
    """Why ``source`` cannot be saved as a reply template (rendered with :data:`SAMPLE`)."""
    try:
        render(source, **SAMPLE)  # type: ignore[arg-type]
    except ReplyError as e:
        return [str(e)]
    return []
