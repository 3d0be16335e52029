"""``rerank-gateway serve``: listen, load the model, run the gateway until stopped.

The port is bound first (a port in use stops start-up at once), then the model is
loaded before the gateway answers, so a model that cannot load stops start-up with
one line, unless GATEWAY_SERVER__START_WITHOUT_MODEL lets it load in the background.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket

from gateway import __version__
from gateway.cli.config import ConfigError, add_settings_flags, settings_from_args, with_flags
from gateway.cli.logs import setup_logging
from gateway.errors import GatewayError
from gateway.settings import ModelBackend, OnnxModel, ServerSettings, TeiModel

log = logging.getLogger("gateway")


NAME = "serve"
HELP = "run the gateway (the default command)"
configure = add_settings_flags


def model_name(model: ModelBackend) -> str:
    if isinstance(model, TeiModel):
        return f"tei:{model.tei_url}"
    if isinstance(model, OnnxModel):
        return str(model.path) if model.path is not None else f"hub:{model.hub_id}"
    return f"pool:{','.join(model.pool_urls)}"


def runs_on(model: ModelBackend) -> str:
    """Where the model runs: MODEL__DEVICE for a local one, else the backend."""
    if isinstance(model, OnnxModel):
        return "openvino-runtime" if model.backend == "openvino" else model.device
    return model.backend


def listen(server: ServerSettings) -> socket.socket:
    """The listening socket for SERVER__HOST / SERVER__PORT; ``ConfigError`` if it cannot be."""
    try:
        family, _, _, _, address = socket.getaddrinfo(
            server.host, server.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:
        raise ConfigError([f"GATEWAY_SERVER__HOST: cannot resolve {server.host!r}"]) from exc
    try:
        return socket.create_server(address, family=family, backlog=128)
    except OSError as exc:
        where = f"{server.host}:{server.port}"
        why = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        raise ConfigError([f"GATEWAY_SERVER__PORT: cannot listen on {where} ({why})"]) from exc


def run(args: argparse.Namespace) -> int:
    from gateway.app import create_app
    from gateway.model.loader import load_encoder
    from gateway.web.access_log import redact_url
    from gateway.web.protocol import serve

    settings = settings_from_args(args)
    setup_logging(settings.log)
    sock = listen(settings.server)
    encoder = None
    model = model_name(settings.model)
    if not settings.server.start_without_model:
        try:
            encoder = load_encoder(settings.model, settings.speed)
        except GatewayError as exc:
            sock.close()
            why = with_flags(" ".join(str(exc).split()), args)
            raise ConfigError([f"model {model} cannot be used: {why}"]) from exc
    log.info(
        "rerank-gateway %s listening on http://%s:%d, upstream %s, model %s (%s)",
        __version__,
        settings.server.host,
        sock.getsockname()[1],
        ", ".join(redact_url(u) for u in settings.upstream.urls),
        model,
        runs_on(settings.model),
    )
    serve(
        create_app(settings, encoder=encoder),
        sock=sock,
        shutdown_timeout_s=settings.server.shutdown_timeout_s,
    )
    return 0
