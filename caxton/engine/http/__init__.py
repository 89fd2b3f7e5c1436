"""The engine's HTTP surface (FastAPI): the application, its routes by resource, the OpenAPI document.

- ``app``: ``create_app`` (middleware, error handlers, mounting) and the agent, health and state routes.
- ``applies``, ``reconcile``, ``rollouts``, ``memory``, ``backups``: the routes of each resource.
- ``openapi``: the OpenAPI document (operation ids, error responses, security schemes).
"""
