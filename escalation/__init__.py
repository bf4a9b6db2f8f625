"""Time: the working-day calendar, deadline policies, the escalation ladder, its sweeper and the scheduler."""
