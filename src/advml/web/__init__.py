"""The interactive web demo (``advml serve``): select an image, attack it, defend it.

:class:`~advml.web.service.DemoService` does the work on one model;
:func:`~advml.web.app.create_app` serves it as a JSON API (documented at
``/openapi.json``) and one static page. FastAPI and uvicorn are imported only here, so
the rest of advml does not need them.
"""

from advml.web.app import create_app
from advml.web.service import DemoService

__all__ = ["DemoService", "create_app"]
