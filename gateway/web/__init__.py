"""The HTTP face: handlers, middlewares (access log, tracing, errors, guard), the
``/_gateway`` admin sub-app, typed app state."""
