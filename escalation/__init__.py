"""Time: the working-day calendar, deadline policies and (later) the escalation ladder."""
