"""The heart of Banjie: tickets, departments, users, the workflow, intake pages and the JSON API."""
