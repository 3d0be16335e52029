"""The HTTP face: handlers, middlewares, the access log, the access guard, typed app state."""
