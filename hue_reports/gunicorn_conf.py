"""gunicorn settings for the API, shared by `make run` and the container image.

    gunicorn --config python:hue_reports.gunicorn_conf --bind 0.0.0.0:8000 wsgi:app

Residents upload photos from phones on slow networks: a 60 MB request can take
minutes to arrive. Threaded workers keep one slow upload from holding a whole
process, and the timeout leaves it time. In production, a buffering reverse
proxy (nginx with request buffering) in front is still the better defence.
"""

import multiprocessing

worker_class = "gthread"
workers = min(4, 2 * multiprocessing.cpu_count())
threads = 8
timeout = 300  # seconds a worker may be silent (a slow upload) before it is restarted
graceful_timeout = 30
keepalive = 5
accesslog = "-"
control_socket_disable = True  # gunicorn 27's control socket: an unused admin surface
