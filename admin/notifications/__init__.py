"""Notifications: email, SMS and portal messages, their templates and rules, webhooks and the events outbox."""
