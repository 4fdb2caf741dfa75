"""Deadlines: working-day calendar, the service and legal clocks of each case, accusés de
réception, reminders and escalation."""
