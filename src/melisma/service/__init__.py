"""``melisma serve``: an HTTP service over melisma's Python API, with long work kept as jobs.

``app.create_app(ServiceSettings)`` builds the FastAPI app; ``jobs.JobStore`` is the SQLite job table;
``worker`` runs each job in its own process; ``queue.WorkQueue`` bounds the conversions in flight;
``tasks`` holds what each job kind calls in the library.  Needs the ``server`` extra (fastapi, uvicorn).
"""
