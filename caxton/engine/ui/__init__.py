"""The web console's pages: what they show (``pages``), its charts (``charts``), templates and static files.

Served at ``/ui`` by ``caxton.engine.http.ui``; ``templates/`` (Jinja2) and
``static/`` (one stylesheet, one script) ship in the package (pyproject's
package-data).
"""
