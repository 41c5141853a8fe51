"""Reply templates in the sandbox: variables, the raw message, and what is refused."""

from __future__ import annotations

import pytest

from admin.tickets import replies

VIEWS = dict(ticket=replies.TicketView(7, "Slow", "new", "low", "question"),
             customer=replies.CustomerView("Anna", "C1", "anna@example.at"), agent=replies.AgentView("Max"),
             message=replies.MessageView("<b>help</b> & thanks"))


def test_variables_and_the_raw_message_as_written() -> None:
    text = replies.render("Hi {{ customer.name }}, #{{ ticket.id }}: {{ ticketMessage.message | raw }} -- "
                          "{{ agent.name }}", **VIEWS)  # type: ignore[arg-type]
    assert text == "Hi Anna, #7: <b>help</b> & thanks -- Max\n"  # plain text: nothing escaped


@pytest.mark.parametrize(("source", "says"), [
    ("{{ ticket.nope }}", "has no attribute"),
    ("{% for %}", "line 1"),
    ("{{ ''.__class__ }}", "refused"),
    ("{% for i in range(100000) %}{{ i }}{% endfor %}", "refused"),
    ("{{ 'x' * 10**9 }}", "refused"),
])
def test_a_bad_template_is_refused_with_a_reason(source: str, says: str) -> None:
    with pytest.raises(replies.ReplyError, match=says):
        replies.render(source, **VIEWS)  # type: ignore[arg-type]
    assert replies.problems(source)


def test_a_good_template_has_no_problems() -> None:
    assert replies.problems("Dear {{ customer.name }}, about {{ ticket.subject }}") == []
