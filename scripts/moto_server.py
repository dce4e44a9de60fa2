"""moto's server (DynamoDB and SQS) for the tests, with DynamoDB requests applied one at a time.

moto serves every request on a thread of its own and takes no lock around DynamoDB writes: a
TransactWriteItems that has checked its conditions can interleave with a DeleteItem of an item it
is about to update, which DynamoDB never allows (a transaction is isolated from every other write
to its items). The repository contract's "joins racing a remove leave no orphans" caught moto
doing so. Serialising DynamoDB requests gives each one the isolation DynamoDB gives it; SQS
requests, whose long polls wait for messages, still run side by side.

    .venv/bin/python scripts/moto_server.py -p 5005
"""

import argparse
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

DYNAMODB_REQUESTS = threading.Lock()


def one_dynamodb_request_at_a_time(app):
    def serve(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with DYNAMODB_REQUESTS:
                # The whole response is produced under the lock: moto applies the request while
                # building it.
                return list(app(environ, start_response))
        return app(environ, start_response)

    return serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        one_dynamodb_request_at_a_time(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
