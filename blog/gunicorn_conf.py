"""Production gunicorn settings (`gunicorn -c python:blog.gunicorn_conf`); `blog serve` uses them."""

import os

import gunicorn.http.wsgi

# Tor readers pay a round trip for every new connection, so connections are kept alive: gthread
# workers keep idle keep-alive connections in a selector instead of tying up a thread each.
worker_class = "gthread"
workers = int(os.environ.get("BLOG_WORKERS", "2"))
threads = int(os.environ.get("BLOG_THREADS", "8"))
keepalive = 20
timeout = 30
graceful_timeout = 20
max_requests = 0

# Small limits: nothing this site serves needs long request lines or many headers.
limit_request_line = 4096
limit_request_fields = 50
limit_request_field_size = 8190

# Never log client addresses: the access log has time, method, path (no query), status, size, duration.
accesslog = os.environ.get("BLOG_ACCESS_LOG", "-")
access_log_format = '%(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
errorlog = "-"
loglevel = os.environ.get("BLOG_LOG_LEVEL", "info")
proc_name = "engineering-log"
forwarded_allow_ips = ""
control_socket_disable = True


def _headers_without_banner(self):  # type: ignore[no-untyped-def]
    """Drop gunicorn's `Server:` line: the banner tells a scanner what to try."""
    return [h for h in _original_default_headers(self) if not h.startswith("Server:")]


_original_default_headers = gunicorn.http.wsgi.Response.default_headers
gunicorn.http.wsgi.Response.default_headers = _headers_without_banner
