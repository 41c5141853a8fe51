"""The helpdesk: tickets, email-to-ticket, automation, SLA."""
